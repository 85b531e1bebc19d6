"""Hostile and broken submissions, graded as an instructor grades a class: an LMS zip,
``python -m autograder.batch`` on two workers (which ends with nbgrader's own
``autograde``), then ``generate_feedback``. Each must get the score predicted in
tests/hostile_submissions.py, none may raise its own grade or anyone else's, nothing
may be written outside the sandboxes, and the class's honest submissions keep theirs.
"""

from __future__ import annotations

import html
import json
import shutil
import time
import zipfile

import pytest

from conftest import ROOT, once, run
from browser import Browser, StaticServer, chromium_path
from hostile_submissions import A, BAD_NAMES, BUDGET, CONTROLS, REFERENCE, SCRIPTED, SUBMISSIONS
from submissions import mentions

pytestmark = pytest.mark.slow
NOTEBOOK = "gradient-descent"
#: Short limits keep the hanging submissions quick; honest probes need well under a second.
LIMITS = ["--probe-timeout", "10", "--timeout", "20"]


def student(name: str) -> str:
    return name.replace("_", "-")


def grade_class(course) -> dict:
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with (course / "nbgrader_config.py").open("a") as config:
        config.write(f"\nc.IsolatedExecute.notebook_timeout = {BUDGET}\n")
    shutil.copytree(ROOT / "solutions" / A, course / "solutions" / A)
    run(["nbgrader", "generate_assignment", A], cwd=course)
    download = course.parent / f"{course.name}-lms.zip"
    with zipfile.ZipFile(download, "w") as archive:
        for submission in SUBMISSIONS:
            if submission.beside:
                folder = course / "submitted" / student(submission.name) / A
                folder.mkdir(parents=True)
                (folder / f"{NOTEBOOK}.ipynb").write_bytes(submission.build(course))
                submission.beside(folder, course)
                continue
            archive.writestr(f"{student(submission.name)}_attempt_{NOTEBOOK}.ipynb", submission.build(course))
        for control in CONTROLS:
            archive.writestr(f"control-{control.name}_attempt_{NOTEBOOK}.ipynb",
                             json.dumps(control.notebook()))
        for name in BAD_NAMES:
            archive.writestr(name, json.dumps(REFERENCE.notebook()))
    gradebook = (course / "gradebook.db").read_bytes()
    start = time.monotonic()
    graded = run(["python", "-m", "autograder.batch", A, "--zip", str(download), "--workers", "2", *LIMITS],
                 cwd=course, timeout=1800, check=False)
    seconds = time.monotonic() - start
    feedback = run(["nbgrader", "generate_feedback", A], cwd=course, check=False)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "hostile-corpus.txt").write_text(
        f"{len(SUBMISSIONS)} hostile submissions and {len(CONTROLS)} honest ones graded in {seconds:.0f} s "
        f"(python -m autograder.batch, 2 workers)\n\n{graded.stderr}")
    return {"seconds": seconds, "returncode": graded.returncode, "stderr": graded.stderr[-20000:],
            "feedback": feedback.returncode, "gradebook_before": len(gradebook)}


@pytest.fixture
def course(tmp_path_factory, worker_id):
    folder, outcome = once(tmp_path_factory, worker_id, "hostile-class", grade_class)
    return folder, outcome


def recorded(course) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for submission in gradebook.assignment_submissions(A):
            for notebook in submission.notebooks:
                scores[submission.student.id] = {g.name: g.score for g in notebook.grades if g.cell_type == "code"}
    return scores


def test_the_corpus_is_large_and_every_attack_has_a_reason():
    assert len(SUBMISSIONS) >= 20
    assert all(s.why for s in SUBMISSIONS)
    assert len({s.name for s in SUBMISSIONS}) == len(SUBMISSIONS)


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=lambda s: s.name)
def test_each_hostile_submission_gets_the_predicted_score(course, submission):
    folder, outcome = course
    scores = recorded(folder).get(student(submission.name))
    if submission.scores is None:
        # Not a notebook, or a folder refused: nbgrader records nothing, and the batch says why.
        assert not scores or not any(scores.values()), scores
        reason = f"SubmissionRefused: {submission.refused}" if submission.refused else "not a notebook nbgrader can read"
        assert any(line.startswith(f"  {student(submission.name)}: ") and reason in line
                   for line in outcome["stderr"].splitlines()), outcome["stderr"]
        return
    assert scores == pytest.approx(submission.scores), f"{submission.name}: {submission.why}\n{outcome['stderr']}"


@pytest.mark.parametrize("submission", [s for s in SUBMISSIONS if s.messages or s.absent], ids=lambda s: s.name)
def test_hostile_feedback_says_why(course, submission):
    folder, _ = course
    page = folder / "feedback" / student(submission.name) / A / f"{NOTEBOOK}.html"
    text = html.unescape(page.read_text())
    for fragment in submission.messages:
        assert mentions(text, fragment), fragment
    for fragment in submission.absent:
        assert fragment not in text, fragment
    assert "BEGIN HIDDEN TESTS" not in text


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_honest_submissions_in_the_same_class_keep_their_grades(course, control):
    folder, _ = course
    assert recorded(folder)[f"control-{control.name}"] == pytest.approx(control.scores)


@pytest.mark.parametrize("submission", SCRIPTED, ids=lambda s: s.name)
def test_no_script_runs_in_the_feedback_page(course, submission):
    if chromium_path() is None:
        pytest.skip("Chromium is not installed: the feedback pages cannot be opened")
    folder, _ = course
    with StaticServer(folder / "feedback") as server, Browser(chromium_path()) as browser:
        page = browser.open(f"{server.url}/{student(submission.name)}/{A}/{NOTEBOOK}.html")
        link = "document.getElementById('xss-link')"
        if page.evaluate(f"{link} !== null"):
            page.evaluate(f"{link}.click()")
            browser.pump(0.5)
        assert page.evaluate("window.__xss === undefined"), page.evaluate("String(window.__xss)")
        assert page.evaluate("document.querySelectorAll('[onerror], [onload], iframe, "
                             "a[href^=\"javascript:\"]').length") == 0


def test_nothing_was_written_outside_the_sandboxes(course):
    folder, outcome = course
    assert not list(folder.rglob("pwned"))
    assert not list(folder.parent.glob("pwned"))
    # The gradebook is intact and holds exactly one submission per learner.
    students = recorded(folder)
    assert len(students) == len(SUBMISSIONS) + len(CONTROLS)


def test_learner_chosen_names_are_not_collected_and_the_class_is(course):
    folder, _ = course
    expected = {student(s.name) for s in SUBMISSIONS} | {f"control-{c.name}" for c in CONTROLS}
    assert {p.name for p in (folder / "submitted").iterdir()} == expected
    assert not list(folder.parent.rglob("escaped*")) and not (folder / "01-gradient-descent").exists()
    rows = (folder / "results" / A / "grades.csv").read_text().splitlines()
    assert not any(row.startswith(("=", "+", "-", "@")) for row in rows)


def test_output_of_hundreds_of_megabytes_is_cut_short(course):
    folder, _ = course
    graded = folder / "autograded" / "hundreds-of-megabytes-of-output" / A / f"{NOTEBOOK}.ipynb"
    assert graded.stat().st_size < 2_000_000
    for name in ("outputs-past-every-cap", "ten-megabytes-of-markdown"):
        assert (folder / "autograded" / name / A / f"{NOTEBOOK}.ipynb").stat().st_size < 5_000_000, name


def test_the_batch_reports_every_result(course):
    folder, outcome = course
    # Exit status 1: some files could not be graded, and the batch names exactly those.
    assert outcome["returncode"] == 1, outcome["stderr"]
    unreadable = {student(s.name) for s in SUBMISSIONS if s.scores is None and not s.refused}
    named = {line.split(":")[0].strip() for line in outcome["stderr"].splitlines()
             if "not a notebook nbgrader can read" in line and line.startswith("  ")}
    assert named == unreadable
    results = folder / "results" / A
    rows = (results / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(SUBMISSIONS) + len(CONTROLS)
    reference = json.loads((results / "control-reference" / "results.json").read_text())
    assert reference["score"] == 12.0
    assert len([t for t in reference["tests"] if t["visibility"] == "visible"]) == 4
    assert (results / "checks.csv").read_text().startswith("part,check,failed,learners,share")
