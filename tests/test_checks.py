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




@pytest.mark.parametrize("orthogonalize", ["reference", "torch.optim.Muon's"], ids=lambda o: f"08-beyond-adam:{o}")
def test_newton_schulz_checks_pass_correct_code_on_any_seed(orthogonalize):
    """Correct code passes the Newton–Schulz checks of its values on each of many seeds, as
    grading's hidden seeds require: the reference in float32 and bfloat16, and torch's own
    iteration, which returns bfloat16 whatever it is given, in bfloat16."""
    from autograder.checks import newton_schulz as checks
    from autograder.feedback import Mismatch
    from autograder.oracles import beyond
    from autograder.probe import Local

    if orthogonalize == "reference":
        reference = next(s for s in SUBMISSIONS if s.assignment == "08-beyond-adam" and s.name == "reference")
        submission = Local(namespace(reference)["newton_schulz"])
    else:
        zeropower = pytest.importorskip("torch.optim._muon")._zeropower_via_newtonschulz
        submission = Local(lambda G, steps=5, eps=1e-7: zeropower(G, beyond.NS_COEFFICIENTS, steps, eps).to(G.dtype))
    failures = []
    for seed in range(300):
        try:
            checks.check_bfloat16_as_torch_muon_computes_it(submission, seed)
            if orthogonalize == "reference":
                checks.check_follows_the_quintic_iteration(submission, seed, torch.float32, "cpu")
        except Mismatch as mismatch:
            failures.append(f"seed {seed}: {mismatch}")
    assert not failures, "\n".join(failures[:5])
