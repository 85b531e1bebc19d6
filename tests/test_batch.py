"""`python -m autograder.batch` grades a class in parallel and survives being killed: run
again, it takes up what it finished, grades the rest, and the gradebook holds every
learner's grade exactly once. One command grades several assignments; a command it
cannot carry out stops before grading anything, saying why."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, course_environ, once, run
from submissions import SUBMISSIONS, source_notebook

pytestmark = pytest.mark.slow
A = "01-gradient-descent"
CLASS = [s for s in SUBMISSIONS if s.assignment == A][:6]
#: A second assignment, graded with the first by the second run; some of its learners
#: (the reference, the blank notebook) are learners of the first too.
B = "02-momentum"
CLASS_B = [s for s in SUBMISSIONS if s.assignment == B and s.name in ("reference", "blank", "momentum-not-squared")]


def batch_command(*assignments):
    return [sys.executable, "-m", "autograder.batch", *(assignments or [A]), "--workers", "2"]


def course_with(course, assignments) -> None:
    """A course folder with ``assignments`` generated into its gradebook."""
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for assignment in assignments:
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
        run(["nbgrader", "generate_assignment", assignment], cwd=course)


def killed_then_finished(course) -> dict:
    course_with(course, [A, B])
    for submission in CLASS + CLASS_B:
        folder = course / "submitted" / submission.name / submission.assignment
        submission.write(folder / source_notebook(submission.assignment).name)
    first = subprocess.Popen(batch_command(), cwd=course, env=course_environ(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    cache = course / ".autograder-cache"
    deadline = time.monotonic() + 900
    while len(list(cache.rglob("*.json"))) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
    done_before_kill = len(list(cache.rglob("*.json")))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(3)
    leftovers = subprocess.run(["pgrep", "-f", str(course)], capture_output=True, text=True).stdout.split()
    second = run(batch_command(A, B), cwd=course, timeout=1800, check=False)
    return {"done_before_kill": done_before_kill, "leftovers": leftovers, "returncode": second.returncode,
            "stderr": second.stderr}


@pytest.fixture
def course(tmp_path_factory, worker_id):
    return once(tmp_path_factory, worker_id, "batch-class", killed_then_finished)


def test_a_killed_batch_leaves_no_sandbox_running(course):
    _, outcome = course
    assert outcome["done_before_kill"] >= 2
    assert outcome["leftovers"] == []


def test_the_second_run_takes_up_what_the_first_finished(course):
    _, outcome = course
    assert outcome["returncode"] == 0, outcome["stderr"]
    done = outcome["stderr"].split("Done: ")[1:]
    assert [line.split(" graded")[0] for line in done] == [str(len(CLASS)), str(len(CLASS_B))]
    reused = int(done[0].split("graded (")[1].split()[0])
    assert reused >= outcome["done_before_kill"]
    assert int(done[1].split("graded (")[1].split()[0]) == 0
    total = len(CLASS) + len(CLASS_B)
    assert f"{total}/{total}" in outcome["stderr"]
    assert "Warning" not in outcome["stderr"], "nbgrader's warnings belong in results/nbgrader.log"


@pytest.mark.parametrize("assignment, learners", [(A, CLASS), (B, CLASS_B)])
def test_every_grade_is_recorded_once_with_the_predicted_scores(course, assignment, learners):
    from nbgrader.api import Gradebook

    folder, _ = course
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        submissions = gradebook.assignment_submissions(assignment)
        assert sorted(s.student.id for s in submissions) == sorted(s.name for s in learners)
        for graded in submissions:
            predicted = next(s for s in learners if s.name == graded.student.id)
            (notebook,) = graded.notebooks
            scores = {g.name: g.score for g in notebook.grades if g.cell_type == "code"}
            assert scores == pytest.approx(predicted.scores), graded.student.id
    log = (folder / "results" / "nbgrader.log").read_text()
    assert f"recording {assignment}: {len(learners)} submission(s)" in log


@pytest.mark.parametrize("assignment, learners", [(A, CLASS), (B, CLASS_B)])
def test_the_results_hold_a_row_per_learner_and_gradescopes_format(course, assignment, learners):
    folder, _ = course
    results = folder / "results" / assignment
    with open(results / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {s.name for s in learners}
    for submission in learners:
        assert float(rows[submission.name]["total"]) == pytest.approx(submission.total)
        result = json.loads((results / submission.name / "results.json").read_text())
        assert result["score"] == pytest.approx(submission.total)
        visible = {t["name"]: t for t in result["tests"] if t["visibility"] == "visible"}
        assert {key: t["score"] for key, t in visible.items()} == pytest.approx(submission.scores)
        assert all(t["output"] for t in result["tests"])
        assert {t["visibility"] for t in result["tests"]} == {"visible", "after_due_date"}
    with open(results / "checks.csv", newline="") as handle:
        checks = list(csv.DictReader(handle))
    assert checks and int(checks[0]["failed"]) >= int(checks[-1]["failed"])
    blank_fails_everything = max(int(c["failed"]) for c in checks)
    assert blank_fails_everything >= 1 and all(int(c["learners"]) == len(learners) for c in checks)


@pytest.fixture(scope="module")
def empty_course(tmp_path_factory):
    """A course with assignments A and B in its gradebook and nothing submitted."""
    course = tmp_path_factory.mktemp("empty-course")
    course_with(course, [A, B])
    return course


@pytest.mark.parametrize("arguments, message", [
    ([A, "99-no-such-thing"], "error: 99-no-such-thing is not in the gradebook"),
    ([A, B, "--zip", "download.zip"], "--zip collects the downloads of one assignment"),
    ([A, "--workers", "0"], "--workers must be at least 1"),
    ([A], f"error: nothing to grade in submitted/*/{A}/"),
])
def test_a_command_it_cannot_carry_out_stops_before_grading_saying_why(empty_course, arguments, message):
    result = run([sys.executable, "-m", "autograder.batch", *arguments], cwd=empty_course, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (empty_course / ".autograder-cache").exists() and not (empty_course / "autograded").exists()


def test_an_assignment_with_nothing_submitted_is_named_and_the_others_graded(empty_course, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(empty_course, course)
    (reference,) = [s for s in CLASS_B if s.name == "reference"]
    reference.write(course / "submitted" / "ada" / B / source_notebook(B).name)
    result = run([sys.executable, "-m", "autograder.batch", A, B, "--workers", "1"], cwd=course, check=False)
    assert result.returncode == 0, result.stderr
    assert f"warning: nothing to grade in submitted/*/{A}/" in result.stderr
    assert f"Grading 1 submission(s) of {B} on 1 worker(s)" in result.stderr
    assert (course / "results" / B / "ada" / "results.json").exists()
    assert not (course / "results" / A).exists()


def test_outside_a_course_folder_it_says_where_to_run_it(tmp_path):
    result = run([sys.executable, "-m", "autograder.batch", A], cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "run this from the course folder" in result.stderr
