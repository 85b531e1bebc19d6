"""The class grader with the gradebook where large courses keep it: PostgreSQL, written the
way nbgrader's documentation writes it, shared by several commands at once (two
assignments' batches and an export; three shards of one class in three working copies),
configured where nbgrader looks for configuration. Its totals are ``nbgrader export``'s,
late penalties included, and equal to the same class graded into SQLite.

The PostgreSQL tests start a server of their own on 127.0.0.1 (``tests/postgres.py``) and
are skipped, saying why, where PostgreSQL is not installed."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time

import pytest

import postgres
from conftest import ROOT, course_environ, once, run
from submissions import SUBMISSIONS, source_notebook

A = "01-gradient-descent"
B = "02-momentum"
CLASS = [s for s in SUBMISSIONS if s.assignment == A][:4]
CLASS_B = [s for s in SUBMISSIONS if s.assignment == B and s.name in ("reference", "blank", "momentum-not-squared")]


def test_the_configuration_is_read_from_nbgraders_search_path_then_the_course(tmp_path, monkeypatch):
    from autograder.batch import course_config

    shared = tmp_path / "jupyter"
    shared.mkdir()
    (shared / "nbgrader_config.py").write_text(
        'c.CourseDirectory.db_url = "postgresql://grader@db.example/course"\n'
        'c.LateSubmissionPlugin.penalty_method = "zero"\n'
        'c.CourseDirectory.course_id = "not-this-one"\n')
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(shared))
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    config = course_config(course)
    assert config.CourseDirectory.db_url == "postgresql://grader@db.example/course"
    assert config.LateSubmissionPlugin.penalty_method == "zero"
    assert config.CourseDirectory.course_id == "gd2adam", "the course's own file takes precedence"


@pytest.mark.parametrize("name, student, notebook", [
    ("bobjones_late_123456_7890123_gradient-descent-1.ipynb", "bobjones", "gradient-descent"),
    ("bobjones_late_123456_7890123_gradient-descent-12.ipynb", "bobjones", "gradient-descent"),
    ("ada_123_gradient-descent.ipynb", "ada", "gradient-descent"),
    ("ada_fast-adam.ipynb", "ada", "fast-adam"),
])
def test_an_lms_renamed_resubmission_is_collected_as_the_assignments_notebook(name, student, notebook):
    from nbgrader.plugins import FileNameCollectorPlugin

    from autograder.batch import course_config

    found = FileNameCollectorPlugin(config=course_config(ROOT)).collect(f"/downloads/archive/{name}")
    assert (found["student_id"], found["file_id"]) == (student, notebook)


def test_shards_split_a_class_into_disjoint_shares():
    from autograder.batch import in_shard, shard

    learners = [f"learner{i}" for i in range(300)]
    shares = [[s for s in learners if in_shard(s, index, 3)] for index in range(3)]
    assert sorted(sum(shares, [])) == sorted(learners)
    assert all(60 < len(share) < 140 for share in shares)
    assert shard("2/3") == (2, 3)
    for wrong in ("3/3", "x", "-1/2"):
        with pytest.raises(Exception):
            shard(wrong)


# --- PostgreSQL ------------------------------------------------------------------------

@pytest.fixture
def server():
    why = postgres.unavailable()
    if why:
        pytest.skip(why)
    with postgres.server() as url:
        yield url


def graded_cache(folder) -> dict:
    """The results of every distinct submission of CLASS and CLASS_B, graded once in an
    SQLite course, so the PostgreSQL tests below exercise recording, not the sandbox."""
    course = folder / "course"
    course_with(course, [A, B])
    for submission in CLASS + CLASS_B:
        submission.write(course / "submitted" / submission.name / submission.assignment
                         / source_notebook(submission.assignment).name)
    result = run([sys.executable, "-m", "autograder.batch", A, B, "--workers", "2"], cwd=course,
                 timeout=1800, check=False)
    return {"returncode": result.returncode, "stderr": result.stderr[-3000:]}


@pytest.fixture
def cache(tmp_path_factory, worker_id):
    folder, outcome = once(tmp_path_factory, worker_id, "gradebook-cache", graded_cache)
    assert outcome["returncode"] == 0, outcome["stderr"]
    return folder / "course" / ".autograder-cache"


def course_with(course, assignments, duedate=None, db_url=None) -> None:
    """A course folder with ``assignments`` in its gradebook (the one the configuration
    names, or ``db_url`` set in the course's file)."""
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    if db_url:
        with open(course / "nbgrader_config.py", "a") as handle:
            handle.write(f'\nc.CourseDirectory.db_url = "{db_url}"\n')
    for assignment in assignments:
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
        if duedate:
            run(["nbgrader", "db", "assignment", "add", assignment, f"--duedate={duedate}"], cwd=course)
        run(["nbgrader", "generate_assignment", assignment], cwd=course)


def submit(course, learners, names=None) -> None:
    for submission in learners:
        for name in names or [submission.name]:
            submission.write(course / "submitted" / name / submission.assignment
                             / source_notebook(submission.assignment).name)


def gradebook_grades(db_url, assignment) -> dict[str, dict[str, float]]:
    """Each learner's autograded scores, failing if the gradebook holds a learner twice."""
    from nbgrader.api import Gradebook

    grades = {}
    with Gradebook(db_url) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            assert submission.student.id not in grades, f"{submission.student.id} recorded twice"
            (notebook,) = submission.notebooks
            grades[submission.student.id] = {g.name: g.score for g in notebook.grades if g.cell_type == "code"}
    return grades


def exported(course) -> dict[str, dict]:
    run(["nbgrader", "export", "--to", "grades.csv"], cwd=course)
    with open(course / "grades.csv", newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def results_csv(course, assignment) -> dict[str, dict]:
    with open(course / "results" / assignment / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def use_gradebook(tmp_path, monkeypatch, url) -> None:
    """Point nbgrader at ``url`` the way nbgrader's documentation has several instructors
    share settings: in the user's ``nbgrader_config.py``, not the course's file."""
    shared = tmp_path / "jupyter"
    shared.mkdir(exist_ok=True)
    (shared / "nbgrader_config.py").write_text(f'c.CourseDirectory.db_url = "{url}"\n'
                                                'c.LateSubmissionPlugin.penalty_method = "zero"\n')
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(shared))


def postgres_course(server, cache, tmp_path, monkeypatch, assignments):
    """A course folder with ``assignments`` in a new PostgreSQL gradebook that the user's
    configuration names, and the class's results cached: (the gradebook's URL, the folder)."""
    url = postgres.create_database(server, "gradebook")
    use_gradebook(tmp_path, monkeypatch, url)
    course = tmp_path / "course"
    course_with(course, assignments)
    shutil.copytree(cache, course / ".autograder-cache")
    return url, course


@pytest.mark.slow
class TestOneClass:
    """A test of its own class, so that xdist (``--dist loadscope``) runs it beside the others."""

    def test_a_class_graded_into_postgresql_agrees_with_export_and_with_sqlite(self, server, cache, tmp_path,
                                                                               monkeypatch):
        url = postgres.create_database(server, "gradebook")
        assert url.startswith("postgresql://"), "nbgrader's documented form, no +driver"
        use_gradebook(tmp_path, monkeypatch, url)
        course = tmp_path / "course"
        course_with(course, [A], duedate="2026-01-01 00:00:00 UTC")
        shutil.copytree(cache, course / ".autograder-cache")
        submit(course, CLASS)
        (reference,) = [s for s in CLASS if s.name == "reference"]
        submit(course, [reference], names=["latecomer"])
        (course / "submitted" / "latecomer" / A / "timestamp.txt").write_text("2026-02-01 00:00:00 UTC")
        wrong = next(s for s in CLASS if s.name not in ("reference", "blank"))
        download = tmp_path / "bobjones_late_123456_7890123_gradient-descent-1.ipynb"
        wrong.write(download)
        result = run([sys.executable, "-m", "autograder.batch", A, "--workers", "2", "--zip", str(download)],
                     cwd=course, timeout=1800, check=False)
        assert result.returncode == 0, result.stderr
        assert not (course / "gradebook.db").exists()

        predicted = {s.name: s.scores for s in CLASS} | {"latecomer": reference.scores, "bobjones": wrong.scores}
        assert gradebook_grades(url, A) == {name: pytest.approx(scores) for name, scores in predicted.items()}
        export, results = exported(course), results_csv(course, A)
        assert set(export) == set(results) == set(predicted)
        for name, row in export.items():
            assert float(results[name]["total"]) == pytest.approx(float(row["score"])), name
        assert float(export["latecomer"]["raw_score"]) == pytest.approx(reference.total)
        assert float(export["latecomer"]["score"]) == 0.0
        assert float(results["latecomer"]["late_penalty"]) == pytest.approx(reference.total)

        # The same class into SQLite: the same results, learner by learner.
        lite = tmp_path / "sqlite-course"
        course_with(lite, [A], duedate="2026-01-01 00:00:00 UTC", db_url="sqlite:///gradebook.db")
        shutil.copytree(course / "submitted", lite / "submitted")
        shutil.copytree(course / ".autograder-cache", lite / ".autograder-cache")
        result = run([sys.executable, "-m", "autograder.batch", A, "--workers", "2"], cwd=lite, timeout=1800,
                     check=False)
        assert result.returncode == 0, result.stderr
        assert gradebook_grades(f"sqlite:///{lite / 'gradebook.db'}", A) == gradebook_grades(url, A)
        drop = ("problem",)
        assert ({n: {k: v for k, v in r.items() if k not in drop} for n, r in results_csv(lite, A).items()}
                == {n: {k: v for k, v in r.items() if k not in drop} for n, r in results.items()})

        # One learner regraded, the cache ignored: graded afresh, recorded once.
        result = run([sys.executable, "-m", "autograder.batch", A, "--workers", "1", "--student", "bobjones",
                      "--ignore-cache"], cwd=course, timeout=900, check=False)
        assert result.returncode == 0, result.stderr
        assert "Grading 1 submission(s)" in result.stderr and "Done: 1 graded (0 from earlier runs)" in result.stderr
        assert gradebook_grades(url, A) == {name: pytest.approx(scores) for name, scores in predicted.items()}


def batch(course, *arguments) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autograder.batch", *arguments], cwd=course,
                            env=course_environ(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
class TestConcurrentCommands:
    """A test of its own class, so that xdist (``--dist loadscope``) runs it beside the others."""

    def test_two_batches_and_an_export_at_once_lose_and_duplicate_no_grade(self, server, cache, tmp_path,
                                                                           monkeypatch):
        url, course = postgres_course(server, cache, tmp_path, monkeypatch, [A, B])
        # Learners new to the gradebook, most of them in both assignments: both batches
        # create the same learners while exports read (each is graded afresh: a result is
        # cached per learner, so copies are few).
        names = {s.name: [f"{s.name}-{i}" for i in range(4)] for s in CLASS + CLASS_B}
        for learners in (CLASS, CLASS_B):
            for submission in learners:
                submit(course, [submission], names=names[submission.name])
        first, second = batch(course, A, "--workers", "1"), batch(course, B, "--workers", "1")
        exports = 0
        while first.poll() is None or second.poll() is None:
            run(["nbgrader", "export", "--to", f"export-{exports}.csv"], cwd=course)
            exports += 1
            time.sleep(0.5)
        for process in (first, second):
            _, errors = process.communicate()
            assert process.returncode == 0, errors
        assert exports >= 1
        for assignment, learners in ((A, CLASS), (B, CLASS_B)):
            expected = {name: pytest.approx(s.scores) for s in learners for name in names[s.name]}
            assert gradebook_grades(url, assignment) == expected


@pytest.mark.slow
@pytest.mark.release
class TestShards:
    """A test of its own class, so that xdist (``--dist loadscope``) runs it beside the others."""

    def test_three_shards_in_three_working_copies_grade_as_one_batch(self, server, cache, tmp_path, monkeypatch):
        url = postgres.create_database(server, "gradebook")
        use_gradebook(tmp_path, monkeypatch, url)
        course = tmp_path / "course"
        course_with(course, [A])
        names = {s.name: [f"{s.name}-{i}" for i in range(3)] for s in CLASS}
        for submission in CLASS:
            submit(course, [submission], names=names[submission.name])
        shutil.copytree(cache, course / ".autograder-cache")
        copies = []
        for index in range(3):
            copy = tmp_path / f"copy-{index}"
            shutil.copytree(course, copy)
            copies.append(batch(copy, A, "--workers", "1", "--shard", f"{index}/3"))
        for process in copies:
            _, errors = process.communicate()
            assert process.returncode == 0, errors
        expected = {name: pytest.approx(s.scores) for s in CLASS for name in names[s.name]}
        assert gradebook_grades(url, A) == expected


# --- The batch's recorder against nbgrader's converter -------------------------------

def gradebook_rows(db_url, assignment) -> dict[str, dict]:
    """Every value nbgrader keeps of each learner's submission: its timestamp, and per
    notebook the late penalty, the flag, each grade (auto, manual, extra credit, needs a
    manual grade) and each comment (auto, manual), by cell name."""
    from nbgrader.api import Gradebook

    rows = {}
    with Gradebook(db_url) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            rows[submission.student.id] = {"timestamp": submission.timestamp, "notebooks": {
                notebook.name: {
                    "late_penalty": notebook.late_submission_penalty, "flagged": notebook.flagged,
                    "grades": {g.name: (g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                               for g in notebook.grades},
                    "comments": {c.name: (c.auto_comment, c.manual_comment) for c in notebook.comments}}
                for notebook in submission.notebooks}}
    return rows


def autograded_files(course) -> dict[str, tuple[bytes, int]]:
    folder = course / "autograded"
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
class TestRecorders:
    """A test of its own class, so that xdist (``--dist loadscope``) runs it beside the others."""

    def test_the_batchs_recorder_leaves_what_nbgraders_converter_leaves(self, cache, tmp_path):
        from nbgrader.api import Gradebook

        (reference,) = [s for s in CLASS if s.name == "reference"]
        wrong = next(s for s in CLASS if s.name not in ("reference", "blank"))
        outcomes = {}
        for way in ("batch", "nbgrader"):
            course = tmp_path / way
            course_with(course, [A], duedate="2026-01-01 00:00:00 UTC", db_url="sqlite:///gradebook.db")
            with open(course / "nbgrader_config.py", "a") as handle:
                handle.write('c.LateSubmissionPlugin.penalty_method = "zero"\n')
            # Both courses record the same results: the second takes the first's cache.
            shutil.copytree(tmp_path / "batch" / ".autograder-cache" if way == "nbgrader" else cache,
                            course / ".autograder-cache")
            submit(course, CLASS)
            submit(course, [reference], names=["latecomer"])
            (course / "submitted" / "latecomer" / A / "timestamp.txt").write_text("2026-02-01 00:00:00 UTC")
            submit(course, [reference], names=["garbled-timestamp"])
            (course / "submitted" / "garbled-timestamp" / A / "timestamp.txt").write_text("the day after")
            (course / "submitted" / "unreadable" / A).mkdir(parents=True)
            (course / "submitted" / "unreadable" / A / source_notebook(A).name).write_text("{not json")
            command = [sys.executable, "-m", "autograder.batch", A, "--workers", "2"]
            command += ["--record-with-nbgrader"] if way == "nbgrader" else []
            first = run(command, cwd=course, timeout=1800, check=False)
            # A grader's manual score and comment, then the class recorded again over them.
            url = f"sqlite:///{course / 'gradebook.db'}"
            with Gradebook(url) as gradebook:
                notebook = gradebook.find_submission_notebook(source_notebook(A).stem, A, wrong.name)
                notebook.grades[0].manual_score, notebook.grades[0].extra_credit = 1.5, 0.5
                notebook.comments[0].manual_comment = "see me"
                gradebook.db.commit()
            second = run(command, cwd=course, timeout=1800, check=False)
            outcomes[way] = (first.returncode, second.returncode, gradebook_rows(url, A), autograded_files(course),
                             results_csv(course, A))
        batch, nbgrader = outcomes["batch"], outcomes["nbgrader"]
        assert batch[:2] == nbgrader[:2] == (1, 1), "the unreadable notebook is reported, both ways"
        assert batch[2] == nbgrader[2]
        assert batch[3].keys() == nbgrader[3].keys()
        for name in batch[3]:
            assert batch[3][name] == nbgrader[3][name], name
        assert batch[4] == nbgrader[4]
        # What the comparison covered: a late penalty, a manual grade kept, a learner not graded.
        rows = batch[2]
        (late,) = rows["latecomer"]["notebooks"].values()
        assert late["late_penalty"] == pytest.approx(reference.total)
        (kept,) = rows[wrong.name]["notebooks"].values()
        assert any(grade[1:] == (1.5, 0.5, True) for grade in kept["grades"].values())
        (unread,) = rows["unreadable"]["notebooks"].values()
        assert all(grade[0] is None for grade in unread["grades"].values())
        assert "latecomer/01-gradient-descent/timestamp.txt" in batch[3]
        assert not any(name.startswith(("unreadable/", "garbled-timestamp/")) for name in batch[3])
        assert "garbled-timestamp" not in rows, "nbgrader's converter stops before writing its submission"
        assert {row["student"] for row in batch[4].values()} >= {"garbled-timestamp", "reference"}


RACING_RECORDER = """
import sys, time
from pathlib import Path
from sqlalchemy import text
from autograder import batch, record

written = record._write_chunk
def held(gradebook, *arguments):
    written(gradebook, *arguments)
    gradebook.db.flush()
    if sys.argv[2] == "hold":
        # The transaction stays open, its new rows unseen by others, until another
        # command waits on them.
        print("holding", flush=True)
        deadline = time.monotonic() + 240
        with gradebook.engine.connect() as connection:
            while time.monotonic() < deadline:
                waiting = connection.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar()
                connection.rollback()  # the view is a snapshot per transaction
                if waiting:
                    break
                time.sleep(0.1)
record._write_chunk = held
root = Path(sys.argv[1])
config = batch.course_config(root)
students = sys.argv[3:]
sys.exit(0 if batch.record_bulk(root, config, "01-gradient-descent", students) else 1)
"""


@pytest.mark.slow
class TestRecordingRace:
    """A test of its own class, so that xdist (``--dist loadscope``) runs it beside the others."""

    def test_two_commands_recording_the_same_learners_at_once_record_each_once(self, server, cache, tmp_path,
                                                                                 monkeypatch):
        from nbgrader.api import Gradebook

        url, course = postgres_course(server, cache, tmp_path, monkeypatch, [A])
        submit(course, CLASS)
        result = run([sys.executable, "-m", "autograder.batch", A, "--workers", "2"], cwd=course, timeout=1800,
                     check=False)
        assert result.returncode == 0, result.stderr
        learners = sorted(s.name for s in CLASS)
        with Gradebook(url) as gradebook:  # graded, the learners known, no submission recorded
            for name in learners:
                gradebook.remove_submission(A, name)
        assert gradebook_grades(url, A) == {}
        # The first holds its new submissions uncommitted until the second waits to write
        # the same ones: the second must meet the first's rows, and record over them.
        def recorder(hold: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-c", RACING_RECORDER, str(course), hold, *learners],
                                    env=course_environ(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        first = recorder("hold")
        assert first.stdout.readline().strip() == "holding", first.communicate()[0]
        second = recorder("go")
        for process in (first, second):
            output, _ = process.communicate(timeout=300)
            assert process.returncode == 0, output
        log = (course / "results" / "nbgrader.log").read_text()
        assert "trying again" in log and "IntegrityError" in log, log[-3000:]
        assert gradebook_grades(url, A) == {s.name: pytest.approx(s.scores) for s in CLASS}

        # A learner the database refuses (an id past its 128-character column) is left out
        # alone: the class is recorded around it, and the batch says so.
        from autograder import batch

        refused = "x" * 129
        for folder in ("submitted", "autograded"):
            shutil.copytree(course / folder / "reference", course / folder / refused)
        with Gradebook(url) as gradebook:
            for name in learners:
                gradebook.remove_submission(A, name)
        assert not batch.record_bulk(course, batch.course_config(course), A, sorted([*learners, refused]))
        assert gradebook_grades(url, A) == {s.name: pytest.approx(s.scores) for s in CLASS}
        log = (course / "results" / "nbgrader.log").read_text()
        assert "one at a time now" in log and f"not recorded: {refused}: DataError" in log, log[-3000:]


def test_an_autograde_step_the_batch_does_not_know_is_left_to_nbgraders_converter():
    from autograder.batch import course_config
    from autograder.record import finishing_steps

    config = course_config(ROOT)
    assert [step.__name__ for step in finishing_steps(config)] == [
        "IgnorePattern", "ClearMetadataPreprocessor", "LimitOutput", "CheckCellMetadata"]
    steps = list(config.Autograde.autograde_preprocessors)
    config.Autograde.autograde_preprocessors = [*steps, "nbgrader.preprocessors.ClearSolutions"]
    assert finishing_steps(config) is None, "a step it does not know"
    save = [step.__name__ for step in steps].index("SaveAutoGrades")
    config.Autograde.autograde_preprocessors = [*steps[:save], *steps[save + 1:-1], steps[save], steps[-1]]
    assert finishing_steps(config) is None, "SaveAutoGrades after AssignLatePenalties"
    config.Autograde.autograde_preprocessors = [step for step in steps if step.__name__ != "AssignLatePenalties"]
    assert finishing_steps(config) is None, "no late penalties"
    # nbgrader's own default, extended as its documentation shows (a lazy .append).
    from traitlets.config import Config

    extended = Config()
    extended.Autograde.autograde_preprocessors.append("nbgrader.preprocessors.LimitOutput")
    assert finishing_steps(extended) is None, "LimitOutput after SaveAutoGrades would change what is scored"
    assert [step.__name__ for step in finishing_steps(Config())] == [
        "IgnorePattern", "ClearMetadataPreprocessor", "LimitOutput", "CheckCellMetadata"]
