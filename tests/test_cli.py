"""`python -m autograder NOTEBOOK` grades from the command line; bad input gets a clear
message and a non-zero exit, never a traceback from the grader."""

from __future__ import annotations

import copy
import json
import sys

import nbformat
import pytest

from conftest import run
from submissions import SUBMISSIONS, grade_id, mentions

pytestmark = pytest.mark.slow
REFERENCE = next(s for s in SUBMISSIONS if s.name == "reference")
BLANK = next(s for s in SUBMISSIONS if s.name == "blank")


def grade_cli(*args, cwd):
    return run([sys.executable, "-m", "autograder", *map(str, args)], cwd=cwd, check=False)


def assert_clean(result):
    assert "Traceback" not in result.stdout + result.stderr


def test_reference_earns_full_marks_and_exit_zero(tmp_path):
    result = grade_cli(REFERENCE.write(tmp_path / "gradient-descent.ipynb"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Total: 12 / 12 points" in result.stdout
    assert "FAIL" not in result.stdout
    assert_clean(result)


def test_blank_release_earns_zero_and_says_what_to_do(tmp_path):
    result = grade_cli(BLANK.write(tmp_path / "gradient-descent.ipynb"), cwd=tmp_path)
    assert result.returncode == 1
    assert "Total: 0 / 12 points" in result.stdout
    assert mentions(result.stdout, "replace `raise NotImplementedError()` with your code")
    assert_clean(result)


def test_missing_function_and_raising_solution_are_explained(tmp_path):
    notebook = REFERENCE.notebook()
    notebook.cells = [c for c in notebook.cells if grade_id(c) != "gd-step-code"]
    for cell in notebook.cells:
        if grade_id(cell) == "gd-step-size-code":
            cell.source = "def optimal_step_size(X):\n    return 1 / 0\n"
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    result = grade_cli(path, "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert_clean(result)
    (graded,) = json.loads(result.stdout)
    parts = {part["grade_id"]: part for part in graded["parts"]}
    assert parts["gd-step-tests"]["earned"] == 0
    step_report = json.dumps(parts["gd-step-tests"]["report"])
    assert "gd_step is not defined: did the cell that defines it run without errors?" in step_report
    assert parts["gd-step-size-tests"]["earned"] == 0
    size_report = json.dumps(parts["gd-step-size-tests"]["report"])
    assert "optimal_step_size raised ZeroDivisionError: division by zero" in size_report
    assert graded["earned"] == 7.0


def test_test_cells_are_restored_from_the_release(tmp_path):
    """Editing a test cell to return full marks, deleting one, or duplicating one
    changes nothing: the release's test cells are graded, each once."""
    notebook = REFERENCE.notebook()
    for cell in notebook.cells:
        if grade_id(cell) == "gd-step-tests":
            cell.source = "3.0"
        if grade_id(cell) == "gd-step-code":
            cell.source = "def gd_step(params, grads, lr):\n    pass\n"
    notebook.cells = [c for c in notebook.cells if grade_id(c) != "gd-fit-tests"]
    duplicate = copy.deepcopy(next(c for c in notebook.cells if grade_id(c) == "gd-optimizer-tests"))
    duplicate["id"] = "a-learners-copy"
    notebook.cells.append(duplicate)
    path = tmp_path / "tampered.ipynb"
    nbformat.write(notebook, path)
    result = grade_cli(path, cwd=tmp_path)
    assert_clean(result)
    assert result.stderr == ""
    # gd_step that does nothing passes only the autograd and gradient checks (2 of 6).
    assert "gd-step: 1 / 3 points" in result.stdout
    assert "Total: 10 / 12 points" in result.stdout
    for note in ("gd-step-tests was edited", "gd-fit-tests was missing",
                 "duplicate of test cell gd-optimizer-tests"):
        assert note in result.stdout


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"cells": [', "not valid JSON"),
        (b"\xff\xfe not text", "is not UTF-8 text"),
        (b'{"hello": "world"}', "not a Jupyter notebook"),
        (b'{"cells": [], "metadata": {}, "nbformat": 9, "nbformat_minor": 0}', "format 9"),
        (b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "no graded test cells"),
        (b'{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
         "not a valid Jupyter notebook"),
    ],
    ids=["broken-json", "not-utf8", "not-a-notebook", "unknown-version", "no-graded-cells", "invalid"],
)
def test_bad_files_get_a_clear_message_and_exit_2(tmp_path, content, message):
    path = tmp_path / "submission.ipynb"
    path.write_bytes(content)
    result = grade_cli(path, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert_clean(result)


def test_missing_file_exit_2(tmp_path):
    result = grade_cli(tmp_path / "nowhere.ipynb", cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr
