"""Record a class's grades in nbgrader's gradebook: a few statements per class, not per cell.

nbgrader's ``autograde`` converter records one submission at a time: it exports the
notebook twice (sanitized, then graded, each written, read back and validated) and makes
some seventy round trips to the gradebook per submission, each step opening the gradebook
afresh. For a class of a few thousand on a database server that is most of an hour of
recording after the grading is done, on one core however many graded. This module splits the same work where it is cheapest:

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

Only an autograde pipeline of the shape nbgrader's default has is recorded this way (see
:func:`finishing_steps`); any other is recorded with nbgrader's converter instead, as is a
batch run with ``--record-with-nbgrader``.

Several commands may record at once (shards, two assignments, two instructors): a
transaction that meets another's new row (a unique key) or a busy database rolls back
and is tried again, reading what the other wrote. A transaction that still fails is
written again a learner at a time, so that a learner the gradebook refuses is left out
alone; if the gradebook refuses learner after learner, :class:`RecordingFailed` stops the
recording. Nothing of a failed transaction is written, and the results cache keeps
every grade for the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
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


def configured_steps(config, name: str) -> list:
    """``Autograde.<name>`` (``sanitize_preprocessors``, ``autograde_preprocessors``) as
    nbgrader's converter resolves it from the configuration (a list, or a default changed
    with ``.append``), as classes."""
    from nbgrader.converters import Autograde
    from traitlets.utils.importstring import import_item

    return [import_item(step) if isinstance(step, str) else step
            for step in getattr(Autograde(config=config), name)]


def finishing_steps(config) -> list | None:
    """The steps of ``Autograde.autograde_preprocessors`` that the grading workers run on a
    graded notebook before it is recorded, in the configured order; None where the
    pipeline needs nbgrader's own converter.

    The batch records a pipeline of one shape: the execution step first; then steps that
    change only the notebook; then ``SaveAutoGrades``, which scores the notebook as it is
    at that point; then ``AssignLatePenalties``, and nothing else that changes the
    notebook (``CheckCellMetadata`` only checks it). A step it does not know (it might
    write to the gradebook itself), another order (nbgrader would score a different
    notebook), or a pipeline that saves no grade or assigns no penalty is left to nbgrader."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    from .autograde import IsolatedExecute

    steps = configured_steps(config, "autograde_preprocessors")
    if not steps or steps[0] not in (Execute, IsolatedExecute):
        return None
    rest = steps[1:]
    if rest.count(SaveAutoGrades) != 1 or rest.count(AssignLatePenalties) != 1:
        return None
    before, after = rest[:rest.index(SaveAutoGrades)], rest[rest.index(SaveAutoGrades) + 1:]
    if any(step not in (IgnorePattern, ClearMetadataPreprocessor, LimitOutput, CheckCellMetadata) for step in before):
        return None
    if any(step not in (AssignLatePenalties, CheckCellMetadata) for step in after):
        return None
    return before + [step for step in after if step is CheckCellMetadata]


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

    from .batch import atomic_write

    text = nbformat.versions[4].writes_json(nbformat.convert(notebook, 4))
    atomic_write(path, text if text.endswith("\n") else text + "\n")
    path.chmod(0o644)  # until recording gives it the course's permissions


@dataclasses.dataclass
class Graded:
    """What one learner's graded notebooks tell the gradebook: per submitted notebook of
    the assignment, the auto score of each grade cell and the auto comment of each
    solution or task cell, by cell name; the notebooks not submitted; or why the
    submission could not be graded."""

    student: str
    timestamp: object = None
    notebooks: dict[str, tuple[dict, dict]] = dataclasses.field(default_factory=dict)
    missing: list[str] = dataclasses.field(default_factory=list)
    error: str = ""


def read_graded(folder: Path, names: list[str]) -> dict[str, tuple[dict, dict]]:
    """Scores and comments from the graded notebooks ``names`` in ``folder``."""
    import nbformat
    from nbgrader import utils

    graded = {}
    for name in names:
        path = folder / f"{name}.ipynb"
        if not path.exists():
            raise ValueError(f"no graded notebook {name}.ipynb (it could not be graded)")
        # Written by a grading worker from a validated notebook: parsed, not validated again.
        notebook = nbformat.v4.reads(path.read_text(encoding="utf-8"))
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


def place_files(directory, assignment: str, student: str, notebooks: list[str], exclude_overwriting: list[str],
                permissions: int, log: logging.Logger) -> None:
    """The rest of ``autograded/<student>/<assignment>/`` as nbgrader's converter leaves it:
    the submission's other files (its ``timestamp.txt``), then the source's other files
    over them, every file ``permissions``, and nothing else (the graded notebooks the
    workers wrote are kept). A link in the submission is never followed."""
    from nbgrader.utils import find_all_files

    submitted = Path(directory.format_path(directory.submitted_directory, student, assignment))
    source = Path(directory.format_path(directory.source_directory, ".", assignment))
    dest = Path(directory.format_path(directory.autograded_directory, student, assignment))
    dest.mkdir(parents=True, exist_ok=True)
    kept = {dest / f"{name}.ipynb" for name in notebooks}
    ignore = list(directory.ignore) + ["*.ipynb"]
    excluded = {os.path.join(str(source), name) for name in exclude_overwriting}
    copies = [(submitted, name) for name in find_all_files(str(submitted), ignore) if not Path(name).is_symlink()]
    copies += [(source, name) for name in find_all_files(str(source), ignore) if name not in excluded]
    for origin, name in copies:
        target = dest / Path(name).relative_to(origin)
        for above in reversed(target.relative_to(dest).parents[:-1]):  # a file where a folder goes
            if (dest / above).is_file() or (dest / above).is_symlink():
                (dest / above).unlink()
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        shutil.copy(name, target)
        kept.add(target)
    for path in sorted(dest.rglob("*"), reverse=True):
        if (path.is_file() or path.is_symlink()) and path not in kept:
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
                try:
                    folder.chmod((mode | 0o2770) & 0o2777)
                except PermissionError:
                    log.warning("could not make %s group-shared", folder)


def _score(grade, auto_score) -> float:
    # Grade.score, as the gradebook computes it: the manual score wins, then the auto score.
    base = grade.manual_score if grade.manual_score is not None else auto_score
    return 0.0 if base is None else base + (grade.extra_credit or 0.0)


def _late_penalty(late, student: str, score: float, seconds_late: float, log: logging.Logger) -> float | None:
    """As nbgrader's AssignLatePenalties: the configured plugin (a fresh one per notebook)
    asked for the penalty, which is then kept within 0 and the notebook's score."""
    late.init_plugin()
    penalty = late.plugin_inst.late_submission_penalty(student, score, seconds_late)
    log.warning("%s is %s seconds late: late submission penalty %s", student, seconds_late, penalty)
    if penalty is None:
        return None
    if penalty < 0:
        return 0
    return score if penalty > score else penalty


def _write_chunk(gradebook, assignment: str, chunk: list[Graded], late, log) -> None:
    from nbgrader.api import Comment, Grade, Notebook, SubmittedAssignment, SubmittedNotebook
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    session = gradebook.db
    found = gradebook.find_assignment(assignment)
    notebooks = session.scalars(
        select(Notebook).where(Notebook.assignment_id == found.id).options(selectinload(Notebook._base_cells))).all()
    existing = {s.student_id: s for s in session.scalars(
        select(SubmittedAssignment)
        .where(SubmittedAssignment.assignment_id == found.id,
               SubmittedAssignment.student_id.in_([g.student for g in chunk]))
        .options(selectinload(SubmittedAssignment.notebooks).selectinload(SubmittedNotebook.grades),
                 selectinload(SubmittedAssignment.notebooks).selectinload(SubmittedNotebook.comments)))}
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
    names = {notebook.id: notebook.name for notebook in notebooks}
    cells = {notebook.id: {cell.id: cell.name for cell in notebook._base_cells} for notebook in notebooks}
    for graded in chunk:
        submission = existing[graded.student]
        seconds_late = submission.total_seconds_late
        for mine in submission.notebooks:
            name = names[mine.notebook_id]
            if name in graded.missing:  # not submitted: nbgrader's converter scores its cells 0
                for grade in mine.grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
                continue
            if graded.error or name not in graded.notebooks:
                continue  # as nbgrader's converter leaves a notebook it failed on: untouched
            scores, comments = graded.notebooks[name]
            total = 0.0
            for grade in mine.grades:
                cell = cells[mine.notebook_id][grade.cell_id]
                if cell in scores:
                    grade.auto_score = scores[cell]
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                total += _score(grade, grade.auto_score)
            for comment in mine.comments:
                cell = cells[mine.notebook_id][comment.cell_id]
                if cell in comments:
                    comment.auto_comment = comments[cell]
            mine.late_submission_penalty = None
            if seconds_late > 0:
                mine.late_submission_penalty = _late_penalty(late, graded.student, total, seconds_late, log)


def _transaction(directory, assignment: str, chunk: list[Graded], late, log) -> None:
    """``chunk`` written in one transaction, tried again (reading afresh what others wrote)
    while another command holds or has just written the same rows."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(1, ATTEMPTS + 1):
        try:
            with Gradebook(directory.db_url, directory.course_id) as gradebook:
                try:
                    _write_chunk(gradebook, assignment, chunk, late, log)
                    gradebook.db.commit()
                except BaseException:
                    gradebook.db.rollback()
                    raise
            return
        except (IntegrityError, OperationalError) as error:
            if attempt == ATTEMPTS:
                raise
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            log.warning("recording %s: %s; trying again", assignment, reason)
            time.sleep(min(8.0, 0.2 * 2 ** attempt) * random.uniform(0.5, 1.0))


def record_class(root: Path, config, assignment: str, students: list[str], log: logging.Logger,
                 errors: dict[str, str] | None = None) -> list[str]:
    """Record ``students``' graded submissions of ``assignment`` (their notebooks in
    ``autograded/``, written by the grading workers) in the gradebook the configuration
    names; a learner in ``errors`` could not be graded (why), and nothing of theirs is read.

    Learners are written :data:`CHUNK` to a transaction; a transaction that fails past its
    retries is written again a learner at a time, so one learner's fault (a late-penalty
    plugin that raises, an id the database refuses) costs only that learner. Returns the
    learners whose submission could not be recorded, each with why; each is left as
    nbgrader's converter leaves a submission it failed on. Raises
    :class:`RecordingFailed` if the gradebook itself stays unavailable."""
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import AssignLatePenalties
    from sqlalchemy.exc import OperationalError

    from .batch import coursedir

    directory = coursedir(root, config)
    converter = Autograde(coursedir=directory, config=config)
    permissions = int(str(converter.permissions), 8)
    exclude = converter.exclude_overwriting.get(assignment, [])
    late = AssignLatePenalties(config=config)
    with Gradebook(directory.db_url, directory.course_id) as gradebook:
        names = [notebook.name for notebook in gradebook.find_assignment(assignment).notebooks]
    failed, work = [], []
    for student in students:
        submitted = Path(directory.format_path(directory.submitted_directory, student, assignment))
        folder = Path(directory.format_path(directory.autograded_directory, student, assignment))
        graded = Graded(student, missing=[name for name in names if not (submitted / f"{name}.ipynb").exists()])
        try:
            graded.timestamp = directory.get_existing_timestamp(str(submitted))
        except Exception as error:  # nbgrader's converter stops there, before any row is written
            failed.append(f"{student}: its timestamp.txt cannot be read ({type(error).__name__})")
            shutil.rmtree(folder, ignore_errors=True)
            continue
        graded.error = (errors or {}).get(student, "")
        if not graded.error:
            try:
                submitted_names = [name for name in names if name not in graded.missing]
                graded.notebooks = read_graded(folder, submitted_names)
                place_files(directory, assignment, student, submitted_names, exclude, permissions, log)
            except Exception as error:
                graded.error = f"{type(error).__name__}: {str(error)[:300]}"
        if graded.error:
            failed.append(f"{student}: {graded.error}")
            shutil.rmtree(folder, ignore_errors=True)  # as nbgrader's converter removes what it failed on
        work.append(graded)
    for start in range(0, len(work), CHUNK):
        chunk = work[start:start + CHUNK]
        try:
            _transaction(directory, assignment, chunk, late, log)
            log.info("recorded %d submission(s) of %s", len(chunk), assignment)
            continue
        except Exception as error:
            log.warning("recording %d submission(s) of %s together failed (%s: %s); one at a time now",
                        len(chunk), assignment, type(error).__name__, str(error).splitlines()[0][:200])
        busy = 0
        for graded in chunk:
            try:
                _transaction(directory, assignment, [graded], late, log)
                busy = 0
            except OperationalError as error:
                busy += 1
                failed.append(f"{graded.student}: the gradebook refused it: {str(error).splitlines()[0][:200]}")
                if busy == 3:
                    raise RecordingFailed(
                        f"the gradebook refused {assignment}'s grades ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200]}), learner after learner, past every retry; "
                        f"what it refused was not written, and the results cache keeps every grade for "
                        f"the next run") from error
            except Exception as error:
                failed.append(f"{graded.student}: {type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''}")
    return failed
