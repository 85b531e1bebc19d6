"""The parts that ask for the learner's own update give nothing for torch's: the judge
reads the learner's cells (autograder/borrowing.py) before it grades such a part. The
borrowings of tests/cases_NN.py (``BORROWINGS``) are graded in the sandbox; the course's
own notebooks, and code that only names torch's optimizers elsewhere, borrow nothing."""

from __future__ import annotations

import collections
import importlib
from pathlib import Path

import nbformat
import pytest

from autograder.borrowing import GUARDED, borrowing, forbidden_path
from autograder.judge import Judge, grade_calls
from autograder.notebook import graded_cells, grade_id, is_test_cell, score_cell, trusted_tests
from submissions import BORROWING_MESSAGE, mentions, source_notebook

BORROWINGS = [
    submission
    for module in sorted(p.stem for p in Path(__file__).parent.glob("cases_*.py"))
    for submission in getattr(importlib.import_module(module), "BORROWINGS", [])
]
SOURCES = sorted(Path(__file__).resolve().parents[1].glob("solutions/*/*.ipynb"))
SETUP = "import math\nimport torch\nimport matplotlib.pyplot as plt\n"
#: The class below borrows nothing; each entry of SPELLINGS replaces it with a borrowing.
OWN = (
    "class Adam(torch.optim.Optimizer):\n"
    "    def __init__(self, params, lr=1e-3):\n"
    "        super().__init__(params, dict(lr=lr))\n\n"
    "    @torch.no_grad()\n"
    "    def step(self, closure=None):\n"
    "        for group in self.param_groups:\n"
    "            for p in group['params']:\n"
    "                state = self.state[p]\n"
    "                p.sub_(p.grad, alpha=group['lr'])\n"
)
#: A cell the course gives: it names torch.optim.Adam to compare the learner's with it.
GIVEN = "def train(make):\n    return make\n\n\nprint(train(torch.optim.Adam), train(Adam))\n"
SPELLINGS = {
    "a subclass": "class Adam(torch.optim.Adam):\n    pass\n",
    "getattr of a computed name": "Base = getattr(torch.optim, 'Ad' + 'am')\nclass Adam(Base):\n    pass\n",
    "getattr of literals": "class Adam(getattr(getattr(torch, 'optim'), 'Adam')):\n    pass\n",
    "importlib": "import importlib\nclass Adam(importlib.import_module('torch.optim').Adam):\n    pass\n",
    "_functional": OWN.replace("p.sub_(p.grad, alpha=group['lr'])", "torch.optim._functional.adam([p], [p.grad])"),
    "from-import alias": "from torch.optim import Adam as Base\nclass Adam(Base):\n    pass\n",
    "the graded name imported": "from torch.optim import Adam\n",
    "a module imported under the graded name": "import torch.optim.adam as Adam\n",
    "a module alias": "o = torch.optim\n" + OWN.replace("super().__init__", "o.Adam.__init__"),
    "a wrapped instance": OWN.replace("state = self.state[p]", "torch.optim.Adam(self.param_groups).step()"),
    "an unbound step": "class Adam(torch.optim.Optimizer):\n    step = torch.optim.Adam.step\n",
    "a patch after the class": OWN + "\nAdam.step = lambda self, closure=None: torch.optim.SGD.step(self, closure)\n",
    "setattr": OWN + "\nsetattr(Adam, 'step', torch.optim.Adam.step)\n",
    "a fused kernel": OWN.replace("state = self.state[p]", "torch._fused_adam_([p], [p.grad])"),
    "torch.ops": OWN.replace("state = self.state[p]", "torch.ops.aten._fused_adam_([p], [p.grad])"),
    "torch._C by an alias": "k = torch._C\n" + OWN.replace("state = self.state[p]", "k._foo"),
    "__subclasses__": OWN.replace("state = self.state[p]", "torch.optim.Optimizer.__subclasses__()[0].step(self)"),
    "exec": "exec('class Adam(torch.optim.Adam): pass')\n",
    "a patched torch": "torch.optim.Optimizer.step = torch.optim.Adam.step\n" + OWN,
    "a helper function": "def helper():\n    return torch.optim.adam.adam\n\n\n" + OWN.replace(
        "state = self.state[p]", "helper()(p)"),
    "pickle": "import pickle\nclass Adam(torch.optim.Optimizer):\n    step = pickle.loads(b'')\n",
    "a star import": "from torch.optim import *\nclass Adam(Adam):\n    pass\n",
    "getattr passed to reduce": "import functools\nclass Adam(functools.reduce(getattr, ['optim', 'Adam'], torch)):\n"
                                "    pass\n",
    "operator.attrgetter": "import operator\nclass Adam(operator.attrgetter('optim.Adam')(torch)):\n    pass\n",
    "sys.modules": "import sys\nclass Adam(sys.modules['torch.optim'].Adam):\n    pass\n",
    "exec in a helper run at the top level": OWN + "\ndef helper():\n    exec('Adam.step = torch.optim.Adam.step')\n\n\n"
                                              "helper()\n",
    "the sandbox's guard patched": (
        "import autograder.feedback as feedback\nfeedback.no_builtin_optimizers.__enter__ = lambda self: self\n"
        + OWN.replace("state = self.state[p]", "torch.optim.SGD([p], lr=0.1).step()")),
}


def learner_cells_and_calls(notebook):
    """Each test cell's grade calls, with the learner's code cells that run before it."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if is_test_cell(cell):
            yield grade_id(cell), grade_calls(cell.source), list(cells)
        else:
            cells.append(cell.source)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_the_course_notebooks_borrow_nothing(path):
    notebook = nbformat.read(path, as_version=4)
    guarded = 0
    for cell_id, calls, cells in learner_cells_and_calls(notebook):
        for call in calls:
            assert borrowing(call.part, call.name, cells) is None, (cell_id, borrowing(call.part, call.name, cells))
            guarded += call.part in GUARDED
    if path.parent.name != "05-schedules":
        assert guarded, "every assignment but the schedules has a part that asks for an update"


@pytest.mark.parametrize("spelling", SPELLINGS, ids=str)
def test_each_spelling_of_a_borrowing_is_recognised(spelling):
    message = borrowing("adam-optimizer", "Adam", [SETUP, SPELLINGS[spelling], GIVEN])
    assert message and BORROWING_MESSAGE in message, spelling


def test_naming_torch_optimizers_outside_the_definition_is_no_borrowing():
    assert borrowing("adam-optimizer", "Adam", [SETUP, OWN, GIVEN]) is None
    # A docstring or a message may name torch's optimizers; only code that uses them counts.
    documented = OWN.replace("    @torch.no_grad()", '    """As torch.optim.Adam does."""\n\n    @torch.no_grad()')
    assert borrowing("adam-optimizer", "Adam", [SETUP, documented]) is None
    # Debugging output through os and sys is no borrowing, nor is exec in code that never runs
    # with the graded class.
    noisy = "import os, sys\n" + OWN.replace("state = self.state[p]", "print('x', file=sys.stderr)\n"
                                              "                os.write(2, b'x')")
    assert borrowing("adam-optimizer", "Adam", [SETUP, noisy]) is None
    local_import = OWN.replace("        super().__init__", "        import torch.optim as o\n        super().__init__")
    assert borrowing("adam-optimizer", "Adam", [SETUP, local_import]) is None
    unrelated = "def other():\n    exec('pass')\n"
    assert borrowing("adam-optimizer", "Adam", [SETUP, OWN, unrelated]) is None
    # A local variable that shares a name with a course cell's global does not reach that cell.
    assert borrowing("adam-optimizer", "Adam", [SETUP, "train = torch.optim.Adam\n", OWN.replace(
        "state = self.state[p]", "train = p.grad")]) is None


def test_a_part_that_may_build_torch_optimizers_is_not_guarded():
    training = "def train(X, y):\n    return torch.optim.Adam([X], lr=0.1)\n"
    assert "schedule-training" not in GUARDED
    assert borrowing("schedule-training", "train", [SETUP, training]) is None
    assert borrowing("adam-optimizer", "train", [SETUP, training]) is not None


def test_what_counts_as_torch_optimizer_code():
    for path in ("torch.optim.Adam", "torch.optim._functional.sgd", "torch.optim.adam._single_tensor_adam",
                 "torch.optim", "torch._fused_adamw_", "torch.ops.aten", "torch._C._foreach_mul_",
                 "torch.load"):
        assert forbidden_path(path), path
    for path in ("torch.optim.Optimizer", "torch.optim.optimizer.Optimizer", "torch.zeros_like",
                 "torch._foreach_mul_", "torch.no_grad", "math.sqrt"):
        assert not forbidden_path(path), path


def test_every_optimizer_part_has_five_borrowings_spelled_differently():
    by_part = collections.Counter(next(iter(s.scores)).removesuffix("-tests") for s in BORROWINGS)
    assert set(by_part) >= {"gd-step", "gd-optimizer", "momentum-optimizer", "rmsprop-optimizer", "adam-step",
                            "adam-optimizer", "adamw-optimizer", "fast-adam-optimizer"}
    assert min(by_part.values()) >= 5, by_part
    assert len({s.name for s in BORROWINGS}) == len(BORROWINGS)


@pytest.mark.slow
# One spelling per part in every run; all five (each a sandboxed grading) in a release's.
@pytest.mark.parametrize("submission", [
    pytest.param(s, id=s.name, marks=() if s.name.endswith("-direct") else pytest.mark.release) for s in BORROWINGS])
def test_a_borrowing_earns_nothing_in_the_sandbox(submission):
    notebook = submission.notebook()
    (cell_id,) = submission.scores
    part = cell_id.removesuffix("-tests")
    # The setup cell, the borrowing and its test cell: the rest of the notebook is the
    # reference's, graded elsewhere, and would only make this slower.
    first = next(i for i, cell in enumerate(notebook.cells) if str(grade_id(cell)).endswith(("-task", "-code")))
    notebook.cells = notebook.cells[:first] + [
        cell for cell in notebook.cells if grade_id(cell) in (f"{part}-code", cell_id)]
    trusted = trusted_tests(nbformat.read(source_notebook(submission.assignment), as_version=4))
    judge = Judge({cell_id: trusted[cell_id]}, timeout=60, probe_timeout=30)
    judge.run(notebook)
    outcomes = {outcome.grade_id: outcome for outcome in map(score_cell, graded_cells(notebook))}
    outcome = outcomes[cell_id]
    assert outcome.earned == submission.scores[cell_id], outcome
    text = outcome.report.as_text()
    for fragment in submission.messages:
        assert mentions(text, fragment), text


def test_torch_optimizers_are_refused_while_the_learners_optimizer_runs():
    """The sandbox's own guard, for what the judge's reading does not see: a torch
    optimizer built inside step() raises (a convenience: learner code can undo it)."""
    import torch

    from autograder import run_checks

    class GradientDescent(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3):
            super().__init__(params, dict(lr=lr))
            self.inner = None

        def step(self, closure=None):
            if self.inner is None:
                self.inner = torch.optim.SGD(self.param_groups)
            return self.inner.step(closure)

    report = run_checks("gd-optimizer", GradientDescent, points=4)
    assert report.earned < 2 and mentions(report.as_text(), "uses torch.optim.SGD"), report.as_text()
