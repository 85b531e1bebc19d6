"""Learner submissions for the tests: the release filled in with the reference code, and
realistic wrong variants of it, each with the score and feedback the grader must give.

A wrong submission is the filled-in release with one textual change to one solution
cell, so it reads like code a learner would write. Each assignment's submissions live in
``tests/cases_NN.py`` as a list ``SUBMISSIONS``; this module gathers them all.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_REGION = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.MULTILINE)


def source_notebook(assignment: str) -> Path:
    (path,) = (ROOT / "solutions" / assignment).glob("*.ipynb")
    return path


def release_notebook(assignment: str) -> Path:
    return ROOT / "exercises" / assignment / source_notebook(assignment).name


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def reference_code(assignment: str) -> dict[str, str]:
    """Each solution cell's code as a learner would write it: the source without markers."""
    notebook = nbformat.read(source_notebook(assignment), as_version=4)
    return {
        grade_id(cell): SOLUTION_REGION.sub("", cell.source)
        for cell in notebook.cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution")
    }


@dataclasses.dataclass(frozen=True)
class Submission:
    """A learner's notebook: the reference code, with ``old`` replaced by ``new`` in the
    solution cell ``cell`` (and each change of ``more`` likewise). ``scores`` predicts each test cell's points; ``messages``
    are fragments the feedback must contain."""

    name: str
    assignment: str
    scores: dict[str, float]
    cell: str | None = None
    old: str = ""
    new: str = ""
    messages: tuple[str, ...] = ()
    blank: bool = False
    more: tuple[tuple[str, str, str], ...] = ()  # further changes: (cell, old, new)

    def notebook(self):
        notebook = nbformat.read(release_notebook(self.assignment), as_version=4)
        if self.blank:
            return notebook
        code = reference_code(self.assignment)
        if self.cell is not None:
            for cell, old, new in ((self.cell, self.old, self.new), *self.more):
                assert old in code[cell], f"{self.name}: {old!r} not in {cell}"
                code[cell] = code[cell].replace(old, new)
        for cell in notebook.cells:
            if grade_id(cell) in code:
                cell.source = code[grade_id(cell)]
        return notebook

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(copy.deepcopy(self.notebook()), path)
        return path

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 4)


def mentions(text: str, fragment: str) -> bool:
    """Whether ``text`` contains ``fragment``, ignoring how the report wrapped its lines."""
    return " ".join(fragment.split()) in " ".join(text.split())


def with_scores(full: dict[str, float], **changes: float) -> dict[str, float]:
    """``full`` with some test cells' predicted points changed (``gd_step=1.5`` sets
    ``gd-step-tests``)."""
    scores = dict(full)
    for key, value in changes.items():
        cell = key.replace("_", "-") + "-tests"
        assert cell in scores, f"no test cell {cell}"
        scores[cell] = value
    return scores


def __getattr__(name: str):
    """``SUBMISSIONS``: every assignment's submissions, gathered on first use (lazily, so
    a ``cases_NN`` module can import this one first)."""
    if name != "SUBMISSIONS":
        raise AttributeError(name)
    return [
        submission
        for module in sorted(p.stem for p in Path(__file__).parent.glob("cases_*.py"))
        for submission in importlib.import_module(module).SUBMISSIONS
    ]


BORROWING_MESSAGE = "this part asks you to write the update yourself"


def borrowing(name: str, assignment: str, part: str, source: str) -> Submission:
    """A submission whose solution cell of ``part`` is ``source``, which borrows torch's
    optimizer: the part earns nothing, and the feedback says why (tests/test_borrowing.py
    grades these in the sandbox)."""
    cell = f"{part}-code"
    return Submission(f"borrows-{part}-{name}", assignment, {f"{part}-tests": 0.0}, cell=cell,
                      old=reference_code(assignment)[cell], new=source, messages=(BORROWING_MESSAGE,))


#: Undoes the sandbox's guard against constructing torch's optimizers during a probe.
PATCH_GUARD = (
    "import autograder.feedback as feedback\n"
    "feedback.no_builtin_optimizers.__enter__ = lambda self: self\n"
    "feedback.no_builtin_optimizers.__exit__ = lambda self, *exc: None\n"
)


def optimizer_borrowings(assignment: str, part: str, name: str, torch_name: str, functional: str) -> list:
    """Five spellings of the class ``name`` borrowing torch.optim.<torch_name>: a subclass,
    the class fetched by ``getattr`` from a computed string, a step that calls
    ``torch.optim._functional.<functional>``, a wrapper around an instance built on the
    same param groups, and torch's ``step`` called unbound after patching the guard."""
    spelled = '"".join(' + repr([torch_name[:2], torch_name[2:]]) + ")"
    init = (f"    def __init__(self, params, lr=1e-3, **options):\n"
            f"        super().__init__(params, dict(lr=lr, **torch.optim.{torch_name}([torch.zeros(1)]).defaults))\n")
    code = {
        "direct": f"class {name}(torch.optim.{torch_name}):\n    pass\n",
        "getattr-strings": f"class {name}(getattr(torch.optim, {spelled})):\n    pass\n",
        "functional": (
            f"class {name}(torch.optim.Optimizer):\n{init}\n"
            "    @torch.no_grad()\n"
            "    def step(self, closure=None):\n"
            "        for group in self.param_groups:\n"
            "            params = [p for p in group['params'] if p.grad is not None]\n"
            f"            torch.optim._functional.{functional}(params, [p.grad for p in params], "
            "[self.state[p] for p in params], lr=group['lr'])\n"
        ),
        "wrapped-instance": (
            f"class {name}(torch.optim.Optimizer):\n{init}        self.inner = None\n\n"
            "    def step(self, closure=None):\n"
            "        if self.inner is None:\n"
            f"            self.inner = torch.optim.{torch_name}(self.param_groups)\n"
            "        return self.inner.step(closure)\n"
        ),
        "patched-guard": PATCH_GUARD + (
            f'Borrowed = getattr(torch.optim, "{torch_name}")\n\n\n'
            f"class {name}(torch.optim.Optimizer):\n{init}\n"
            "    def step(self, closure=None):\n"
            "        return Borrowed.step(self, closure)\n"
        ),
    }
    return [borrowing(way, assignment, part, source) for way, source in code.items()]
