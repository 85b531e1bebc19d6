"""`python -m autograder.batch` grades a class in parallel and survives being killed: run
again, it takes up what it finished, grades the rest, and the gradebook holds every
learner's grade exactly once."""

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
from submissions import SUBMISSIONS

pytestmark = pytest.mark.slow
A = "01-gradient-descent"
CLASS = [s for s in SUBMISSIONS if s.assignment == A][:6]


def batch_command():
    return [sys.executable, "-m", "autograder.batch", A, "--workers", "2"]


def killed_then_finished(course) -> dict:
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / A, course / "solutions" / A)
    run(["nbgrader", "generate_assignment", A], cwd=course)
    for submission in CLASS:
        submission.write(course / "submitted" / submission.name / A / "gradient-descent.ipynb")
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
    second = run(batch_command(), cwd=course, timeout=1800, check=False)
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
    reused = int(outcome["stderr"].split("graded (")[1].split()[0])
    assert reused >= outcome["done_before_kill"]
    assert f"{len(CLASS)}/{len(CLASS)}" in outcome["stderr"]


def test_every_grade_is_recorded_once_with_the_predicted_scores(course):
    from nbgrader.api import Gradebook

    folder, _ = course
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        submissions = gradebook.assignment_submissions(A)
        assert sorted(s.student.id for s in submissions) == sorted(s.name for s in CLASS)
        for graded in submissions:
            predicted = next(s for s in CLASS if s.name == graded.student.id)
            (notebook,) = graded.notebooks
            scores = {g.name: g.score for g in notebook.grades if g.cell_type == "code"}
            assert scores == pytest.approx(predicted.scores), graded.student.id


def test_the_results_hold_a_row_per_learner_and_gradescopes_format(course):
    folder, _ = course
    results = folder / "results" / A
    with open(results / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {s.name for s in CLASS}
    for submission in CLASS:
        assert float(rows[submission.name]["total"]) == pytest.approx(submission.total)
        result = json.loads((results / submission.name / "results.json").read_text())
        assert result["score"] == pytest.approx(submission.total)
        assert {t["name"] for t in result["tests"]} == set(submission.scores)
        assert all(t["output"] for t in result["tests"])
    with open(results / "checks.csv", newline="") as handle:
        checks = list(csv.DictReader(handle))
    assert checks and int(checks[0]["failed"]) >= int(checks[-1]["failed"])
    blank_fails_everything = max(int(c["failed"]) for c in checks)
    assert blank_fails_everything >= 1 and all(int(c["learners"]) == len(CLASS) for c in checks)
