"""Read, run and score a whole assignment notebook, the way nbgrader's autograde does.

The notebook's cells run in a sandbox and its test cells are graded outside it
(:mod:`autograder.judge`), from the release's copy of each test cell: a learner's edits to
a test cell, a deleted one and a duplicated one count for nothing. Each test cell is
scored like nbgrader scores it: zero for an error or for any output on stderr, the
returned number as partial credit, full marks otherwise; the grader's reports come along
for a per-check report.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import nbformat

from .judge import Judge, TrustedTest
from .runner import REPORT_MIMETYPE, Report, report_from_output
from .sandbox import Limits


#: The releases' test cells, in the package (``tasks.py release`` writes them from
#: exercises/), so that a notebook is graded the same way wherever the grader is installed.
RELEASES = Path(__file__).resolve().parent / "releases"
#: The course's sources, when the grader runs from a checkout of the course.
SOURCES = Path(__file__).resolve().parents[1] / "solutions"


class NotebookError(Exception):
    """The file cannot be graded; the message says why, for the person who gave it."""


@dataclasses.dataclass
class CellOutcome:
    grade_id: str
    points: float
    earned: float
    report: Report | None
    problem: str = ""


@dataclasses.dataclass
class NotebookResult:
    path: Path
    parts: list[CellOutcome]
    cell_errors: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)
    notebook: object = None  # the graded notebook, with every cell's outputs

    @property
    def earned(self) -> float:
        return round(sum(p.earned for p in self.parts), 4)

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)


def load(path: str | Path) -> nbformat.NotebookNode:
    """Read a notebook, turning every way a file can be broken into a :class:`NotebookError`."""
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such file.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotebookError(
            f"{path} is not a notebook: byte {error.start} is not UTF-8 text."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(
            f"{path} is not a notebook: it is not valid JSON ({error.msg} at line "
            f"{error.lineno}, column {error.colno}). Was it saved by Jupyter, and saved completely?"
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook (it has no cells).")
    major = data.get("nbformat")
    if major not in (3, 4):
        raise NotebookError(
            f"{path} declares notebook format {major!r}; this grader reads formats 3 and 4."
        )
    try:
        with warnings.catch_warnings():
            # Duplicate cell ids are repaired here and duplicate test cells dropped later.
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
            nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several unrelated types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotebookError(f"{path} is not a valid Jupyter notebook: {first}") from None
    return notebook


def is_test_cell(cell) -> bool:
    """An autograded test cell: nbgrader metadata with ``grade`` set and ``solution`` not."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def graded_cells(notebook) -> list:
    """The notebook's autograded test cells, in order."""
    return [cell for cell in notebook.cells if is_test_cell(cell)]


def _error_text(output) -> str:
    name, value = output.get("ename", "Error"), output.get("evalue", "")
    return f"{name}: {value}" if value else name


def score_cell(cell) -> CellOutcome:
    """Score one executed test cell as nbgrader would, keeping the grader's report."""
    meta = cell.metadata.nbgrader
    points = float(meta.get("points", 0))
    outcome = CellOutcome(meta.get("grade_id", "?"), points, points, None)
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if REPORT_MIMETYPE in data:
            outcome.report = report_from_output(data[REPORT_MIMETYPE])
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            outcome.earned, outcome.problem = 0.0, f"the test cell raised {_error_text(output)}"
            if output.get("ename") == "NameError":
                outcome.problem += " (did the cell that defines it run without errors?)"
            return outcome
        if output.output_type == "stream" and output.get("name") == "stderr":
            text = output.get("text", "").strip().splitlines()
            outcome.earned = 0.0
            outcome.problem = "the test cell wrote to stderr, which scores zero: " + (text[0] if text else "")
            return outcome
        if output.output_type == "execute_result":
            try:
                outcome.earned = min(points, max(0.0, float(output.data.get("text/plain", ""))))
            except ValueError:
                pass
            return outcome
    if not cell.get("outputs"):
        outcome.problem = "the test cell produced no output"
    return outcome


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def matching_release(notebook, releases: Path = RELEASES):
    """The release notebook that shares the most grade_ids with ``notebook``, or None."""
    ids = {grade_id(cell) for cell in notebook.cells} - {None}
    best, overlap = None, 0
    for candidate in sorted(releases.glob("*/*.ipynb")) if releases.is_dir() else []:
        release = nbformat.read(candidate, as_version=4)
        shared = len(ids & {grade_id(cell) for cell in release.cells})
        if shared > overlap:
            best, overlap = (candidate, release), shared
    return best


def trusted_tests(notebook) -> dict[str, TrustedTest]:
    """The test cells of a trusted notebook (a release or a source), by grade_id."""
    return {grade_id(cell): TrustedTest(cell.source, float(cell.metadata.nbgrader.get("points", 0)))
            for cell in graded_cells(notebook)}


def restore_tests(notebook, release) -> list[str]:
    """Put the release's test cells back, as nbgrader's autograde does from its gradebook.

    A learner's edits to a test cell, a deleted test cell and a duplicated one all count
    for nothing: each test cell of ``release`` is restored once, in place or, if deleted,
    after the cell that precedes it in the release. Returns notes on what was restored.
    """
    notes, seen, cells = [], set(), []
    for cell in notebook.cells:
        if is_test_cell(cell):
            if grade_id(cell) in seen:
                notes.append(f"a duplicate of test cell {grade_id(cell)} was ignored")
                continue
            seen.add(grade_id(cell))
        cells.append(cell)
    by_id = {grade_id(cell): cell for cell in release.cells}
    for position, cell in enumerate(release.cells):
        if not is_test_cell(cell):
            continue
        restored = nbformat.from_dict(copy.deepcopy(dict(cell)))
        index = next((i for i, c in enumerate(cells) if grade_id(c) == grade_id(cell)), None)
        if index is not None:
            edited = (cells[index].source != cell.source
                      or cells[index].metadata.get("nbgrader") != cell.metadata.get("nbgrader"))
            if edited:
                notes.append(f"test cell {grade_id(cell)} was edited; the original was restored")
            cells[index] = restored
            continue
        previous = [grade_id(c) for c in release.cells[:position] if grade_id(c) in by_id]
        after = max((i for i, c in enumerate(cells) if grade_id(c) in previous), default=len(cells) - 1)
        cells.insert(after + 1, restored)
        notes.append(f"test cell {grade_id(cell)} was missing; it was restored")
    notebook.cells = cells
    return notes


def is_course_source(path: Path) -> bool:
    """Whether ``path`` is one of the course's own source notebooks (with hidden tests)."""
    return SOURCES.is_dir() and path.resolve().is_relative_to(SOURCES.resolve())


def grade_notebook(path: str | Path, timeout: int = 120, *, limits: Limits = Limits(),
                   probe_timeout: float = 60) -> NotebookResult:
    """Grade the notebook at ``path``: its cells run in a sandbox, its test cells (the
    release's, or a course source's own) are graded outside it."""
    path = Path(path).resolve()
    notebook = load(path)
    if is_course_source(path):
        tests, notes = trusted_tests(notebook), ["graded with its own (hidden) tests: a course source"]
    else:
        found = matching_release(notebook)
        if found is None:
            if not graded_cells(notebook):
                raise NotebookError(
                    f"{path.name} has no graded test cells: grade an assignment notebook from exercises/."
                )
            raise NotebookError(
                f"{path.name} shares no graded cell with any of the course's assignments "
                f"({', '.join(sorted(p.name for p in RELEASES.iterdir()))}): is it a notebook of "
                "this course, and of this version of it?"
            )
        candidate, release = found
        notes = [f"test cells checked against the release of {candidate.parent.name}"]
        notes += restore_tests(notebook, release)
        tests = trusted_tests(release)
    judge = Judge(tests, timeout=timeout, probe_timeout=probe_timeout, limits=limits)
    notes += judge.run(notebook)
    tests_run = graded_cells(notebook)
    cell_errors = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or is_test_cell(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                name = grade_id(cell) or f"cell {index + 1} ({first[:60]})"
                cell_errors.append(f"{name} raised {_error_text(output)}")
    return NotebookResult(path, [score_cell(cell) for cell in tests_run if grade_id(cell) in tests],
                          cell_errors, notes, notebook)


def format_result(result: NotebookResult) -> str:
    lines = [f"Grading {result.path.name}"] + [f"  ({note})" for note in result.notes] + [""]
    for part in result.parts:
        if part.report is not None and not part.problem:
            lines.append(part.report.as_text())
        else:
            lines.append(f"{part.grade_id}: {part.earned:g} / {part.points:g} points")
            if part.problem:
                lines.append(f"  {part.problem}")
        lines.append("")
    if result.cell_errors:
        lines.append("Errors in other cells:")
        lines.extend(f"  {error}" for error in result.cell_errors)
        lines.append("")
    lines.append(f"Total: {result.earned:g} / {result.points:g} points")
    return "\n".join(lines)
