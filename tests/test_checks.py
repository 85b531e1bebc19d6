"""The checks give the predicted score and name the mistake, run in this process.

Some of the same submissions go through nbgrader end to end in test_nbgrader_e2e.py (all
of them in a release's run); here every one is checked, part by part, which is fast and
shows exactly which part disagrees.
"""

from __future__ import annotations

import re

import nbformat
import pytest
import torch

from autograder import run_checks
from submissions import SUBMISSIONS, grade_id, mentions, source_notebook

GRADE_CALL = re.compile(
    r'grade\("(?P<part>[\w-]+)", (?P<name>\w+), points=(?P<points>[\d.]+)(?P<rest>[^)]*)\)'
)


def grade_calls(assignment: str) -> dict[str, list[dict]]:
    """Each test cell's grade(...) calls (visible and hidden), by the cell's grade_id."""
    notebook = nbformat.read(source_notebook(assignment), as_version=4)
    calls = {}
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            found = []
            for match in GRADE_CALL.finditer(cell.source):
                options = dict(re.findall(r"(\w+)=(\d+)", match["rest"]))
                found.append({
                    "part": match["part"], "name": match["name"], "points": float(match["points"]),
                    "options": {k: int(v) for k, v in options.items()},
                })
            calls[grade_id(cell)] = found
    return calls


def namespace(submission) -> dict:
    """The learner's definitions: every solution cell of the submission, executed."""
    scope = {"torch": torch}
    for cell in submission.notebook().cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            try:
                exec(compile(cell.source, grade_id(cell), "exec"), scope)
            except NotImplementedError:
                pass
    return scope


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=lambda s: f"{s.assignment}:{s.name}")
def test_each_part_earns_the_predicted_score_with_the_predicted_message(submission):
    scope = namespace(submission)
    messages = []
    for cell_id, calls in grade_calls(submission.assignment).items():
        earned = []
        for call in calls:
            report = run_checks(call["part"], scope.get(call["name"]), points=call["points"],
                                **call["options"])
            earned.append(report.earned)
            messages.append(report.as_text())
        assert min(earned) == pytest.approx(submission.scores[cell_id]), (
            f"{cell_id}: predicted {submission.scores[cell_id]}, got {min(earned)}\n"
            + "\n".join(messages[-len(calls):])
        )
    text = "\n".join(messages)
    for fragment in submission.messages:
        assert mentions(text, fragment), f"feedback lacks {fragment!r}:\n{text}"
