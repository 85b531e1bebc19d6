"""The Gradescope autograder bundle (``python -m autograder.package``), exercised without
Gradescope: its ``run_autograder`` grades submissions laid out in ``/autograder``-style
folders under a temporary root, and every ``results.json`` it writes must validate
against Gradescope's documented format (``tests/gradescope_results.schema.json``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hostile_submissions
from conftest import ROOT, course_environ, run
from submissions import SUBMISSIONS

A = "01-gradient-descent"
SCHEMA = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())


def valid(result: dict) -> dict:
    import jsonschema

    jsonschema.validate(result, SCHEMA)
    return result


def test_the_schema_refuses_what_gradescope_would_not_read():
    import jsonschema

    valid({"score": 3.0, "tests": [{"name": "a", "score": 3, "max_score": 3, "status": "passed",
                                    "visibility": "after_due_date", "output": "ok"}]})
    for wrong in ({"tests": [{"name": "a", "status": "ok"}]},
                  {"score": 1, "tests": [{"name": "a", "visibility": "later"}]},
                  {"score": "12"},
                  {"output": "no score at all"}):
        with pytest.raises(jsonschema.ValidationError):
            valid(wrong)


@pytest.mark.parametrize("visibility", ["after_due_date", "hidden", "after_published"])
def test_a_cells_hidden_checks_are_reported_apart_with_the_visibility_asked_for(visibility):
    from autograder.batch import Outcome, results_json
    from autograder.runner import CheckResult, Report

    def report(status, case):
        return Report("gd-step", 3.0, 3.0 if status == "passed" else 0.0,
                      [CheckResult("check_sign", "the step goes downhill", 1.0, status, "wrong sign", case)]).as_dict()

    outcome = Outcome("ada", "gradient-descent", points={"gd-step-tests": 3.0}, scores={"gd-step-tests": 0.0},
                      reports={"gd-step-tests": [report("passed", "case 1"), report("failed", "case 7")]})
    result = valid(results_json(outcome, hidden_visibility=visibility))
    shown, apart = result["tests"]
    assert (shown["visibility"], shown["status"], shown["score"]) == ("visible", "failed", 0.0)
    assert "case 7" not in shown["output"] and "PASS" in shown["output"]
    assert (apart["visibility"], apart["status"]) == (visibility, "failed")
    assert "case 7" in apart["output"] and "score" not in apart


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    course = tmp_path_factory.mktemp("gradescope-course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / A, course / "solutions" / A)
    result = run([sys.executable, "-m", "autograder.package", A, "--out", str(course / "bundle")], cwd=course)
    assert "bundle.zip" in result.stdout
    return course / "bundle"


def autograde(bundle: Path, root: Path, files: dict[str, bytes]) -> dict:
    """Lay out ``root`` as Gradescope's ``/autograder``, run ``run_autograder`` there and
    return the ``results.json`` it wrote, validated."""
    shutil.copytree(bundle / "source", root / "source")
    (root / "submission").mkdir(parents=True)
    for name, data in files.items():
        (root / "submission" / name).write_bytes(data)
    environ = dict(course_environ(), AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    result = subprocess.run([str(bundle / "run_autograder")], env=environ, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    if os.geteuid() == 0:
        assert (root / "source").stat().st_mode & 0o777 == 0o700  # hidden tests: the grader's alone
    return valid(json.loads((root / "results" / "results.json").read_text()))


@pytest.mark.slow
def test_the_bundle_holds_the_grader_and_a_gradebook_of_the_assignment_alone(bundle):
    from nbgrader.api import Gradebook

    with zipfile.ZipFile(bundle.with_suffix(".zip")) as archive:
        names = set(archive.namelist())
    assert {"setup.sh", "run_autograder", "source/requirements.txt", "source/gradebook.db",
            "source/nbgrader_config.py", "source/grader/autograder/batch.py"} <= names
    assert not any(name.startswith("source/solutions") for name in names)
    for script in ("setup.sh", "run_autograder"):
        assert os.access(bundle / script, os.X_OK)
        subprocess.run(["bash", "-n", str(bundle / script)], check=True)
    assert "-r source/requirements.txt" in (bundle / "setup.sh").read_text()
    assert (bundle / "source" / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    with Gradebook(f"sqlite:///{bundle / 'source' / 'gradebook.db'}") as gradebook:
        assert [a.name for a in gradebook.assignments] == [A]
        assert gradebook.students == []


def submission(name):
    return next(s for s in SUBMISSIONS if s.assignment == A and s.name == name)


def hostile(name):
    return next(h for h in hostile_submissions.SUBMISSIONS if h.name == name)


WRONG = next(s for s in SUBMISSIONS if s.assignment == A and s.name not in ("reference", "blank"))


@pytest.mark.slow
# The reference in every run; the other cases (each a sandboxed grading) in a release's.
@pytest.mark.parametrize("name", ["reference", *(pytest.param(name, marks=pytest.mark.release) for name in (
    "blank", WRONG.name, "patched-torch-comparisons", "reads-solutions-and-gradebook"))])
def test_run_autograder_grades_any_single_notebook_to_the_predicted_score(bundle, tmp_path, name):
    root = tmp_path / "autograder"
    if name.startswith(("patched", "reads")):
        attack = hostile(name)
        data, scores = attack.build(root / "source"), attack.scores
    else:
        path = submission(name).write(tmp_path / "notebook.ipynb")
        data, scores = path.read_bytes(), submission(name).scores
    result = autograde(bundle, root, {"My Homework (1).ipynb": data})
    assert result["score"] == pytest.approx(sum(scores.values()))
    visible = {t["name"]: t for t in result["tests"] if t["visibility"] == "visible"}
    assert {key: t["score"] for key, t in visible.items()} == pytest.approx(scores)
    assert all(t["status"] == ("passed" if t["score"] >= t["max_score"] else "failed") for t in visible.values())
    hidden = [t for t in result["tests"] if t["visibility"] != "visible"]
    assert hidden and all(t["visibility"] == "after_due_date" and "score" not in t for t in hidden)
    assert not (root / "source" / "pwned").exists()


@pytest.mark.slow
@pytest.mark.parametrize("files, message", [
    ({}, "this submission has none"),
    ({"a.ipynb": b"{}", "b.ipynb": b"{}"}, "this submission has a.ipynb, b.ipynb"),
    ({"notes.txt": b"hello"}, "this submission has none"),
])
def test_anything_but_one_notebook_scores_zero_saying_why(bundle, tmp_path, files, message):
    result = autograde(bundle, tmp_path / "autograder", files)
    assert result["score"] == 0 and result["tests"] == []
    assert message in result["output"]
