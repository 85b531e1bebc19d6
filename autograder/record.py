"""Record a class's grades in nbgrader's gradebook: a few statements per class, not per cell.

nbgrader's ``autograde`` converter records one submission at a time: it exports the
notebook twice (sanitized, then graded, each written, read back and validated) and makes
some seventy round trips to the gradebook per submission, each step opening the gradebook
afresh. For a class of thousands on a database server that is hours of recording after
the grading is done. This module splits the same work where it is cheapest:

- the notebook's part (:func:`finish_notebook`, :func:`write_autograded`) runs in the
  batch's grading workers, on the notebook they hold anyway: the steps of
  ``Autograde.autograde_preprocessors`` that change the notebook (``LimitOutput``,
  ``IgnorePattern``, ...), then ``autograded/<student>/<assignment>/<notebook>.ipynb``,
  written as nbgrader's exporter writes it;
- the gradebook's part (:func:`record_class`) runs once per class: it reads the graded
  notebooks back, reckons each cell's score and comment the way ``SaveAutoGrades`` does
  and each late penalty the way ``AssignLatePenalties`` does (with the configured
  plugin), and writes the whole class in transactions of :data:`CHUNK` learners, creating
  submissions exactly as nbgrader's ``Gradebook.add_submission`` lays them out.

Everything nbgrader's converter leaves behind is left behind here, and only that: the
same rows (a manual grade keeps precedence and asks for review, a notebook missing from a
submission scores 0), the same ``autograded/`` folder (the submission's other files and
the source's, read-only), so ``generate_feedback``, the formgrader and ``export`` see no
difference. ``tests/test_gradebook.py`` records one class both ways and compares every
row and every notebook.

A configuration whose autograde steps include one this module does not know (it might
write to the gradebook itself) is recorded with nbgrader's converter instead
(:func:`finishing_steps` returns None), as is a batch run with ``--record-with-nbgrader``.

Several commands may record at once (shards, two assignments, two instructors): a
transaction that meets another's new row (a unique key) or a busy database rolls back
and is tried again, reading what the other wrote; after :data:`ATTEMPTS` tries it stops
with :class:`RecordingFailed`, having changed nothing, and the results cache keeps every
grade for the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

#: Learners written per transaction: a class of thousands is written in a few dozen
#: transactions, none holding the gradebook for long.
CHUNK = 500
#: Tries of a transaction before recording gives up.
ATTEMPTS = 6


class RecordingFailed(Exception):
    """The gradebook refused the grades (busy past every retry, or broken); nothing was
    changed by the transaction that failed."""


def _classes(steps) -> list:
    from traitlets.utils.importstring import import_item

    return [import_item(step) if isinstance(step, str) else step for step in steps]


def finishing_steps(config) -> list | None:
    """The steps of ``Autograde.autograde_preprocessors`` after execution that change only
    the notebook, in the configured order; None if the configuration has a step this
    module does not know, which then needs nbgrader's own converter."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    from .autograde import IsolatedExecute

    configured = config.Autograde.get("autograde_preprocessors")
    if configured is None:
        configured = Autograde.class_traits()["autograde_preprocessors"].default()
    notebook_only = (IgnorePattern, ClearMetadataPreprocessor, LimitOutput, CheckCellMetadata)
    done_elsewhere = (Execute, IsolatedExecute, SaveAutoGrades, AssignLatePenalties)
    steps = []
    for step in _classes(configured):
        if step in done_elsewhere:
            continue
        if step not in notebook_only:
            return None
        steps.append(step)
    return steps


def finish_notebook(notebook, resources: dict, config, steps: list):
    """``steps`` (see :func:`finishing_steps`) on a graded notebook, each as nbconvert's
    exporter calls it (so a step the configuration leaves disabled does nothing)."""
    for step in steps:
        notebook, resources = step(config=config)(notebook, resources)
    return notebook


def write_autograded(path: Path, notebook) -> None:
    """The graded notebook at ``path``, byte for byte as nbgrader's exporter writes it,
    replaced in one step (a reader never sees half of it). The notebook was validated when
    it was read; nbgrader's second validation here would only log."""
    import nbformat

    text = nbformat.versions[4].writes_json(nbformat.convert(notebook, 4))
    if not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                     prefix=".", suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


@dataclasses.dataclass
class Graded:
    """What one learner's graded notebooks tell the gradebook: per notebook of the
    assignment, the auto score of each grade cell and the auto comment of each solution or
    task cell by cell name, or None for a notebook not submitted."""

    student: str
    timestamp: object = None
    notebooks: dict[str, tuple[dict, dict] | None] = dataclasses.field(default_factory=dict)
    error: str = ""


def read_graded(folder: Path, submitted: Path, names: list[str]) -> dict[str, tuple[dict, dict] | None] | str:
    """Scores and comments from the graded notebooks in ``folder``, or why there are none."""
    import nbformat
    from nbgrader import utils

    graded = {}
    for name in names:
        if not (submitted / f"{name}.ipynb").exists():
            graded[name] = None
            continue
        path = folder / f"{name}.ipynb"
        try:
            # Written by a grading worker from a validated notebook: parsed, not validated again.
            notebook = nbformat.v4.reads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"no graded notebook {name}.ipynb (it could not be graded)"
        except Exception as error:
            return f"its graded notebook {name}.ipynb cannot be read: {type(error).__name__}: {error}"
        scores, comments = {}, {}
        for cell in notebook.cells:
            if utils.is_grade(cell):
                scores[cell.metadata.nbgrader["grade_id"]] = utils.determine_grade(cell)[0]
            if utils.is_solution(cell) or utils.is_task(cell):
                unchanged = cell.metadata.nbgrader.get("checksum", None) == utils.compute_checksum(cell)
                comments[cell.metadata.nbgrader["grade_id"]] = (
                    "No response." if unchanged and not utils.is_task(cell) else None)
        graded[name] = (scores, comments)
    return graded


def place_files(root: Path, directory, assignment: str, student: str, notebooks: list[str],
                exclude_overwriting: list[str], permissions: int) -> None:
    """The rest of ``autograded/<student>/<assignment>/`` as nbgrader's converter leaves it:
    the submission's other files (its ``timestamp.txt``), then the source's other files
    over them, every file ``permissions``, and nothing else (the graded notebooks the
    workers wrote are kept)."""
    from nbgrader.utils import find_all_files

    submitted = Path(directory.format_path(directory.submitted_directory, student, assignment))
    source = Path(directory.format_path(directory.source_directory, ".", assignment))
    dest = Path(directory.format_path(directory.autograded_directory, student, assignment))
    dest.mkdir(parents=True, exist_ok=True)
    kept = {dest / f"{name}.ipynb" for name in notebooks}
    ignore = list(directory.ignore) + ["*.ipynb"]
    excluded = {source / name for name in exclude_overwriting}
    for origin, files in ((submitted, find_all_files(str(submitted), ignore)),
                          (source, [f for f in find_all_files(str(source), ignore) if Path(f) not in excluded])):
        for name in files:
            if Path(name).is_symlink():  # never followed out of the submission (the intake refuses them)
                continue
            target = dest / Path(name).relative_to(origin)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.unlink()
            shutil.copy(name, target)
            kept.add(target)
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path not in kept:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for path in kept:
        if path.exists():
            path.chmod(permissions)
    if directory.groupshared:  # as nbgrader's converter leaves the folders of a shared course
        autograded = Path(directory.format_path(directory.autograded_directory, ".", "."))
        for folder in [autograded, dest, *(p for p in dest.rglob("*") if p.is_dir())]:
            mode = folder.stat().st_mode
            if mode & 0o2770 != 0o2770:
                folder.chmod((mode | 0o2770) & 0o2777)


def _score(grade, auto_score) -> float:
    # Grade.score, as the gradebook computes it: the manual score wins, then the auto score.
    base = grade.manual_score if grade.manual_score is not None else auto_score
    return 0.0 if base is None else base + (grade.extra_credit or 0.0)


def _write_chunk(gradebook, assignment: str, chunk: list[Graded], plugin, log) -> None:
    from nbgrader.api import Comment, Grade, Notebook, SubmittedAssignment, SubmittedNotebook
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    session = gradebook.db
    found = gradebook.find_assignment(assignment)
    notebooks = session.scalars(
        select(Notebook).where(Notebook.assignment_id == found.id)
        .options(selectinload(Notebook._base_cells))).all()
    existing = {s.student_id: s for s in session.scalars(
        select(SubmittedAssignment)
        .where(SubmittedAssignment.assignment_id == found.id,
               SubmittedAssignment.student_id.in_([g.student for g in chunk]))
        .options(selectinload(SubmittedAssignment.notebooks).selectinload(SubmittedNotebook.grades),
                 selectinload(SubmittedAssignment.notebooks).selectinload(SubmittedNotebook.comments)))}
    names = {notebook.id: notebook.name for notebook in notebooks}
    cells = {notebook.id: {cell.id: cell.name for cell in
                           [*notebook.grade_cells, *notebook.solution_cells, *notebook.task_cells]}
             for notebook in notebooks}
    for graded in chunk:
        submission = existing.get(graded.student)
        if submission is None:
            # The layout of nbgrader's Gradebook.add_submission: every notebook of the
            # assignment, a grade per grade or task cell, a comment per solution or task cell.
            submission = SubmittedAssignment(assignment=found, student_id=graded.student, timestamp=graded.timestamp)
            for notebook in notebooks:
                mine = SubmittedNotebook(notebook=notebook, assignment=submission)
                for cell in notebook.grade_cells:
                    Grade(cell_id=cell.id, notebook=mine)
                for cell in notebook.solution_cells:
                    Comment(cell_id=cell.id, notebook=mine)
                for cell in notebook.task_cells:
                    Comment(cell_id=cell.id, notebook=mine)
                    Grade(cell_id=cell.id, notebook=mine)
            session.add(submission)
            existing[graded.student] = submission
        elif graded.timestamp is not None:
            submission.timestamp = graded.timestamp
    session.flush()  # the new rows, in a few statements, so that every row has its keys
    for graded in chunk:
        submission = existing[graded.student]
        if graded.error:
            continue  # as nbgrader's converter leaves a submission it failed on: its grades untouched
        seconds_late = submission.total_seconds_late
        for mine in submission.notebooks:
            result = graded.notebooks.get(names[mine.notebook_id])
            if result is None:  # not submitted: nbgrader's converter scores its cells 0
                for grade in mine.grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
                continue
            scores, comments = result
            total = 0.0
            for grade in mine.grades:
                name = cells[mine.notebook_id][grade.cell_id]
                if name in scores:
                    grade.auto_score = scores[name]
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                total += _score(grade, grade.auto_score)
            for comment in mine.comments:
                name = cells[mine.notebook_id][comment.cell_id]
                if name in comments:
                    comment.auto_comment = comments[name]
            mine.late_submission_penalty = None
            if seconds_late > 0:
                penalty = plugin.late_submission_penalty(graded.student, total, seconds_late)
                log.warning("%s of %s is %s seconds late: late submission penalty %s",
                            graded.student, assignment, seconds_late, penalty)
                if penalty is not None:
                    mine.late_submission_penalty = min(max(penalty, 0), total)


def record_class(root: Path, config, assignment: str, students: list[str], log: logging.Logger,
                 errors: dict[str, str] | None = None) -> list[str]:
    """Record ``students``' graded submissions of ``assignment`` (their notebooks in
    ``autograded/``, written by the grading workers) in the gradebook the configuration
    names; a learner in ``errors`` could not be graded (why), and nothing of theirs is read.
    Returns the learners whose submission could not be recorded, each with why; their
    submission exists in the gradebook as nbgrader's converter would leave it.
    Raises :class:`RecordingFailed` if the gradebook refuses a transaction past every
    retry."""
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import AssignLatePenalties
    from sqlalchemy.exc import IntegrityError, OperationalError

    from .batch import coursedir

    directory = coursedir(root, config)
    converter = Autograde(coursedir=directory, config=config)
    permissions = int(str(converter.permissions), 8)
    exclude = converter.exclude_overwriting.get(assignment, [])
    late = AssignLatePenalties(config=config)
    late.init_plugin()
    with Gradebook(directory.db_url, directory.course_id) as gradebook:
        names = [notebook.name for notebook in gradebook.find_assignment(assignment).notebooks]
    failed, work = [], []
    for student in students:
        submitted = Path(directory.format_path(directory.submitted_directory, student, assignment))
        folder = Path(directory.format_path(directory.autograded_directory, student, assignment))
        graded = Graded(student, directory.get_existing_timestamp(str(submitted)))
        result = (errors or {}).get(student) or read_graded(folder, submitted, names)
        if isinstance(result, str):
            graded.error = result
            failed.append(f"{student}: {result}")
            if folder.exists():  # as nbgrader's converter removes what it failed to grade
                shutil.rmtree(folder)
        else:
            graded.notebooks = result
            place_files(root, directory, assignment, student, [n for n in names if result[n] is not None],
                        exclude, permissions)
        work.append(graded)
    for start in range(0, len(work), CHUNK):
        chunk = work[start:start + CHUNK]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with Gradebook(directory.db_url, directory.course_id) as gradebook:
                    try:
                        _write_chunk(gradebook, assignment, chunk, late.plugin_inst, log)
                        gradebook.db.commit()
                    except BaseException:
                        gradebook.db.rollback()
                        raise
                break
            except (IntegrityError, OperationalError) as error:
                # Another command wrote one of these learners meanwhile, or holds the
                # database: read again what it wrote, and write the rest.
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                if attempt == ATTEMPTS:
                    raise RecordingFailed(
                        f"the gradebook refused {assignment}'s grades {ATTEMPTS} times ({reason}); nothing of "
                        f"this transaction was written, and the results cache keeps every grade for the "
                        f"next run") from error
                log.warning("recording %s: %s; trying again", assignment, reason)
                time.sleep(min(8.0, 0.2 * 2 ** attempt) * random.uniform(0.5, 1.0))
        log.info("recorded %d submission(s) of %s", len(chunk), assignment)
    return failed
