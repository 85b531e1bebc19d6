"""How the grader runs checks, scores them and reports: independent of any assignment."""

from __future__ import annotations

import os
import sys
import warnings

import pytest
import torch

from autograder import grade, known_parts, run_checks
from autograder.runner import REPORT_MIMETYPE, report_from_output


def correct_step(params, grads, lr):
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=lr)


def noisy_step(params, grads, lr):
    warnings.warn("a learner's warning")
    print("to Python's stderr", file=sys.stderr)
    os.write(2, b"straight to file descriptor 2\n")
    correct_step(params, grads, lr)


def test_every_part_named_by_a_notebook_has_checks():
    assert {"gd-step", "gd-fit", "gd-step-size", "gd-optimizer"} <= set(known_parts())


def test_unknown_part_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown part 'gd-stepp'.*gd-step"):
        run_checks("gd-stepp", correct_step, points=1)


def test_full_marks_return_the_cell_points():
    report = run_checks("gd-step", correct_step, points=3)
    assert report.earned == 3.0
    assert all(check.status == "passed" for check in report.checks)


def test_nothing_reaches_stderr_even_when_the_submission_writes_there(capfd):
    earned = grade("gd-step", noisy_step, points=3)
    out, err = capfd.readouterr()
    assert earned == 3.0
    assert err == ""
    assert "gd-step: 3 / 3 points" in out


def test_a_missing_definition_is_reported_not_raised():
    report = run_checks("gd-step", None, points=3)
    assert report.earned == 0.0
    assert "gd_step raised TypeError" in report.as_text()


def test_one_shared_cause_is_reported_once():
    def stub(params, grads, lr):
        raise NotImplementedError()

    text = run_checks("gd-step", stub, points=3).as_text()
    assert text.count("gd_step raised NotImplementedError") == 1
    assert "all 4 checks" in text


def test_case_labels_never_show_the_seed():
    def wrong(params, grads, lr):
        for p, g in zip(params, grads):
            p.add_(g, alpha=lr)

    text = run_checks("gd-step", wrong, points=3, seed=987654, cases=3).as_text()
    assert "987654" not in text
    assert "case 1" in text


def test_cuda_cases_are_skipped_visibly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA cases run instead of being skipped")
    report = run_checks("gd-step", correct_step, points=3)
    assert any("no CUDA device" in note for check in report.checks for note in check.notes)


def test_report_survives_the_trip_through_a_notebook_output():
    report = run_checks("gd-step", correct_step, points=3)
    bundle = report._repr_mimebundle_()
    assert bundle["text/plain"] == report.as_text()
    assert report_from_output(bundle[REPORT_MIMETYPE]) == report


def test_cuda_failures_are_reported_but_never_cost_points():
    from autograder.runner import _summarise

    cases = [
        {"name": "check_a", "title": "A", "weight": 1.0, "case": "case 1, float32, cpu",
         "status": "passed", "message": ""},
        {"name": "check_a", "title": "A", "weight": 1.0, "case": "case 1, float32, cuda",
         "status": "failed", "message": "w is on the CPU"},
    ]
    (result,) = _summarise(cases)
    assert result.status == "passed"
    assert any("fails on CUDA" in note and "w is on the CPU" in note for note in result.notes)


def test_the_shown_failure_is_one_that_names_the_mistake():
    from autograder.runner import _summarise

    cases = [
        {"name": "check_a", "title": "A", "weight": 1.0, "case": "case 1, float32, cpu",
         "status": "failed", "message": "expected [1], saw [inf]."},
        {"name": "check_a", "title": "A", "weight": 1.0, "case": "case 1, float64, cpu",
         "status": "failed", "message": "expected [1], saw [1e30]. Likely mistake: a sum."},
    ]
    (result,) = _summarise(cases)
    assert "Likely mistake: a sum" in result.message


def test_a_torch_optimizer_in_disguise_earns_nothing():
    class GradientDescent(torch.optim.SGD):
        pass

    report = run_checks("gd-optimizer", GradientDescent, points=4)
    assert report.earned == 0.0
    assert "derives from torch.optim.SGD" in report.as_text()


def test_a_step_that_calls_torch_sgd_is_not_the_learners_own():
    def gd_step(params, grads, lr):
        for p, g in zip(params, grads):
            p.grad = g
        torch.optim.SGD(params, lr=lr).step()

    report = run_checks("gd-step", gd_step, points=3)
    assert "uses torch.optim.SGD" in report.as_text()
    assert report.earned < 3.0


def test_changing_the_gradients_costs_only_the_gradient_check():
    def gd_step(params, grads, lr):
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(g.mul_(lr))

    report = run_checks("gd-step", gd_step, points=3)
    failed = [c.name for c in report.checks if c.status == "failed"]
    assert failed == ["check_leaves_the_gradients_unchanged"]
    assert report.earned == 2.5
