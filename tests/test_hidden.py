"""Hidden checks run after every learner cell, and their reports carry nothing the
learner's code could have shaped: no learner cell can see a hidden case and print it."""

from __future__ import annotations

import nbformat
import pytest

from autograder.judge import HIDDEN_FAILURE, Judge, TrustedTest, grade_calls

SOURCE = ('score = grade("gd-step", gd_step, points=3)\n### BEGIN HIDDEN TESTS\n'
          'score = min(score, grade("gd-step", gd_step, points=3, seed=48217, cases=6))\n'
          '### END HIDDEN TESTS\nscore')
TEST = TrustedTest(SOURCE, 3.0)

RECORDING_STEP = """
import torch
seen = []
phase = "cells"
def gd_step(params, grads, lr):
    seen.append([p.tolist() for p in params])
    if phase == "after the last cell":
        raise ValueError("LEAK " + repr(seen[-1]))
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=lr)
"""


def test_the_judge_knows_which_grade_calls_are_hidden():
    assert [call.hidden for call in grade_calls(SOURCE)] == [False, True]


def run(*learner_cells_after_the_test):
    cells = [nbformat.v4.new_code_cell(RECORDING_STEP), nbformat.v4.new_code_cell(SOURCE)]
    cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "gd-step-tests", "points": 3}
    cells += [nbformat.v4.new_code_cell(source) for source in learner_cells_after_the_test]
    notebook = nbformat.v4.new_notebook(cells=cells)
    Judge({"gd-step-tests": TEST}).run(notebook)
    return notebook


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def reports(cell) -> list[str]:
    return [o["data"]["text/plain"] for o in cell.outputs if o["output_type"] == "display_data"]


def test_no_learner_cell_runs_after_a_hidden_case():
    notebook = run("print('calls seen:', len(seen))", "print('calls seen at the end:', len(seen))")
    after_the_test, at_the_end = printed(notebook.cells[2]), printed(notebook.cells[3])
    visible = int(after_the_test.split(":")[1])
    assert visible > 0 and int(at_the_end.split(":")[1]) == visible
    assert len(reports(notebook.cells[1])) == 2
    assert notebook.cells[1].outputs[-1]["data"]["text/plain"] == "3.0"


def test_a_hidden_report_says_what_failed_but_not_how():
    notebook = run("phase = 'after the last cell'")
    visible, hidden = reports(notebook.cells[1])
    assert "FAIL" not in visible and "FAIL" in hidden
    assert HIDDEN_FAILURE in hidden and "LEAK" not in hidden
    assert notebook.cells[1].outputs[-1]["data"]["text/plain"] == "0.0"
    bundle = [o["data"] for o in notebook.cells[1].outputs if o["output_type"] == "display_data"][1]
    assert "LEAK" not in str(bundle)


def test_each_learner_draws_hidden_cases_of_their_own_from_the_courses_secret(tmp_path):
    import os

    from autograder.autograde import course_secret, hidden_seeds

    path = tmp_path / ".autograder-secret"
    secret = course_secret(path)
    assert course_secret(path) == secret and os.stat(path).st_mode & 0o777 == 0o600
    (hidden,) = [call for call in grade_calls(SOURCE) if call.hidden]
    ada = hidden_seeds(secret, ("ada", "01-gradient-descent", "gradient-descent"))
    bob = hidden_seeds(secret, ("bob", "01-gradient-descent", "gradient-descent"))
    other_course = hidden_seeds(course_secret(tmp_path / "another"), ("ada", "01-gradient-descent", "gradient-descent"))
    assert ada(hidden) == ada(hidden)  # a regrade draws the same cases
    assert len({ada(hidden), bob(hidden), other_course(hidden), hidden.seed}) == 4
    path.write_text("\n")
    with pytest.raises(ValueError, match="holds no secret"):
        course_secret(path)


def test_the_judge_grades_hidden_calls_with_the_drawn_seed_and_visible_ones_as_written(monkeypatch):
    from autograder import judge

    used = []
    original = judge.run_checks

    def recording(part, submission, *, points, seed, cases):
        used.append(seed)
        return original(part, submission, points=points, seed=seed, cases=cases)

    monkeypatch.setattr(judge, "run_checks", recording)
    cells = [nbformat.v4.new_code_cell(RECORDING_STEP), nbformat.v4.new_code_cell(SOURCE)]
    cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "gd-step-tests", "points": 3}
    Judge({"gd-step-tests": TEST}, hidden_seed=lambda call: call.seed + 1000).run(nbformat.v4.new_notebook(cells=cells))
    assert used == [0, 48217 + 1000]
