"""What the learner's Validate button (``nbgrader validate``) and the feedback say: the
grader's own words, labelled."""

from __future__ import annotations

import pytest
import torch

from autograder.judge import HIDDEN_LABEL, VISIBLE_LABEL
from autograder.runner import NotFullMarks, grade, report_from_output, run_checks


def stub(params, grads, lr):
    raise NotImplementedError()


def right(params, grads, lr):
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=lr)


def test_while_nbgrader_validates_a_part_short_of_its_points_raises_the_report(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    with pytest.raises(NotFullMarks) as raised:
        grade("gd-step", stub, points=3)
    shown = "\n".join(raised.value._render_traceback_())
    assert shown.startswith("This test cell earned 0 of its 3 points.")
    assert "replace `raise NotImplementedError()` with your code" in " ".join(shown.split())
    assert all(len(line) <= 86 for line in shown.splitlines()), "nbgrader cuts longer lines"
    assert grade("gd-step", right, points=3) == 3


def test_outside_validation_grade_returns_the_score(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert grade("gd-step", stub, points=3) == 0


def test_a_report_keeps_its_label_through_the_notebook():
    report = run_checks("gd-step", right, points=3)
    report.label = HIDDEN_LABEL
    again = report_from_output(report._repr_mimebundle_()["application/vnd.gd2adam.report+json"])
    assert again.as_text().splitlines()[0] == f"gd-step: 3 / 3 points ({HIDDEN_LABEL})"
    assert VISIBLE_LABEL != HIDDEN_LABEL
