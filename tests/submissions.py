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
    solution cell ``cell``. ``scores`` predicts each test cell's points; ``messages``
    are fragments the feedback must contain."""

    name: str
    assignment: str
    scores: dict[str, float]
    cell: str | None = None
    old: str = ""
    new: str = ""
    messages: tuple[str, ...] = ()
    blank: bool = False

    def notebook(self):
        notebook = nbformat.read(release_notebook(self.assignment), as_version=4)
        if self.blank:
            return notebook
        code = reference_code(self.assignment)
        if self.cell is not None:
            assert self.old in code[self.cell], f"{self.name}: {self.old!r} not in {self.cell}"
            code[self.cell] = code[self.cell].replace(self.old, self.new)
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
