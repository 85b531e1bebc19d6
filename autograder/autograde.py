"""nbgrader's autograde, with the learner's code in a sandbox: the :class:`IsolatedExecute`
preprocessor, and :class:`GradebookMetadata`, which keeps a submission's nbgrader metadata
from derailing nbgrader itself.

``nbgrader_config.py`` puts it in place of nbgrader's ``Execute`` in
``c.Autograde.autograde_preprocessors``. Where ``Execute`` runs the whole notebook in one
kernel (so the learner's code and the test cells share a process), this one runs the
learner's cells in a sandbox and grades each test cell outside it
(:class:`autograder.judge.Judge`), from the gradebook's copy of the cell, never the
submitted one. Its outputs have the shape ``Execute``'s would, so everything after it in
nbgrader's pipeline (``SaveAutoGrades``, feedback, export) works unchanged.

A cell of the submission that claims nbgrader metadata the gradebook does not know (a
test cell a learner made up, say) loses that metadata, so it can earn nothing; a test cell
the submission lacks (deleted, or renamed) is added at its end from the gradebook and
graded there, after everything the learner defined.

Results are kept in a cache (``cache_directory``), keyed by everything that decides
them (the grader's code, the gradebook's test cells, the limits and the submission's
cells) and by the learner they belong to. An interrupted ``nbgrader autograde`` (or
``python -m autograder.batch``) therefore picks up where it stopped, and grading a
submission again costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import nbformat
from traitlets import Bool, Float, Integer, Unicode

from nbgrader.preprocessors import NbGraderPreprocessor

from .intake import assignment_notebooks, check_folder
from .judge import GradeCall, Judge, TrustedTest, cut_long_text_cells
from .sandbox import Limits

PACKAGE = Path(__file__).resolve().parent


def code_digest() -> str:
    """A digest of the grader's own code: a change to any check invalidates the cache."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclasses.dataclass
class SourceNotebook:
    """What the gradebook knows of an assignment's notebook: its test cells, and the
    nbgrader metadata of every cell it records, by grade_id."""

    tests: dict[str, TrustedTest]
    metadata: dict[str, dict]


def source_notebook(db_url: str, notebook: str, assignment: str) -> SourceNotebook:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        source = gradebook.find_notebook(notebook, assignment)
        graded = {cell.name: float(cell.max_score) for cell in source.grade_cells}
        tasks = {cell.name: float(cell.max_score) for cell in source.task_cells}
        solutions = {cell.name for cell in source.solution_cells}
        tests, metadata = {}, {}
        for cell in source.source_cells:
            key = cell.name
            metadata[key] = {"grade": key in graded, "grade_id": key, "locked": bool(cell.locked),
                             "schema_version": 3, "solution": key in solutions, "task": key in tasks,
                             "checksum": cell.checksum}
            if key in graded or key in tasks:
                metadata[key]["points"] = graded.get(key, tasks.get(key))
            if key in graded and key not in solutions and cell.cell_type == "code":
                tests[key] = TrustedTest(cell.source, graded[key])
    return SourceNotebook(tests, metadata)


def gradebook_metadata(notebook, source: SourceNotebook) -> list[str]:
    """Give each cell the gradebook knows its nbgrader metadata from the gradebook (its
    first copy only), and take it from every other cell. Returns notes on what changed."""
    from .notebook import grade_id

    notes, seen = [], set()
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        key = grade_id(cell)
        if key not in source.metadata or key in seen:
            if meta.get("grade") or meta.get("solution") or meta.get("locked"):
                why = "a second copy of" if key in seen else "unknown to the gradebook:"
                notes.append(f"a cell claimed nbgrader metadata, {why} {key}; ignored")
            del cell.metadata["nbgrader"]
            continue
        seen.add(key)
        cell.metadata["nbgrader"] = dict(source.metadata[key])
    return notes


def restore_missing_tests(notebook, source: SourceNotebook) -> list[str]:
    """Append each test cell of the gradebook that ``notebook`` lacks."""
    from .notebook import grade_id

    present = {grade_id(cell) for cell in notebook.cells}
    notes = []
    for key, test in source.tests.items():
        if key not in present:
            cell = nbformat.v4.new_code_cell(test.source)
            cell.metadata["nbgrader"] = dict(source.metadata[key])
            notebook.cells.append(cell)
            notes.append(f"test cell {key} was missing; it was restored from the gradebook")
    return notes


def cache_key(tests: dict[str, TrustedTest], notebook, settings: dict, learner: tuple[str, str, str]) -> str:
    """The key of a graded notebook's results: everything that decides them (the grader's
    code, the gradebook's test cells, the limits, the submission's cells; the sandbox sees
    nothing else of the submission) and whose they are, ``learner`` (student, assignment,
    notebook), so that no result is ever served to another learner."""
    cells = [[cell.get("cell_type"), cell.get("source", ""), json.dumps(cell.get("metadata", {}).get("nbgrader", {}),
                                                                     sort_keys=True)]
             for cell in notebook.cells]
    payload = json.dumps({"code": code_digest(), "tests": {k: [v.source, v.points] for k, v in sorted(tests.items())},
                          "settings": settings, "cells": cells,
                          "learner": list(learner)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class GradebookMetadata(NbGraderPreprocessor):
    """Give every cell of a submission the nbgrader metadata the gradebook has for it.

    nbgrader trusts the metadata it is handed more than it should: a cell whose
    ``schema_version`` a learner changed stops ``nbgrader autograde`` for every learner
    after them, and a duplicated, renamed or made-up test cell makes that learner's
    notebook fail to validate, so it gets no grade at all. First in
    ``c.Autograde.sanitize_preprocessors`` (before ``OverwriteCells`` restores the cells'
    sources from the gradebook), this step refuses a submission folder that holds anything
    but the assignment's notebooks (:func:`autograder.intake.check_folder`), and rebuilds
    the metadata of each cell the gradebook knows, once, from the gradebook alone, and
    removes it from every other cell (:func:`gradebook_metadata`).
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        folder = resources.get("metadata", {}).get("path")
        if folder:
            check_folder(folder, assignment_notebooks(info["db_url"], info["assignment"]))
        source = source_notebook(info["db_url"], info["notebook"], info["assignment"])
        for note in gradebook_metadata(nb, source):
            self.log.warning("%s: %s", info["student"], note)
        return nb, resources


def course_secret(path: Path) -> bytes:
    """The course's secret in ``path``, made there (readable by its owner alone) by the
    first grader that needs it; every later one, on this machine or with a copy of the
    course folder, reads the same."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    secret = path.read_bytes().strip()
    if len(secret) < 16:
        raise ValueError(f"{path} holds no secret (at least 16 characters): delete it to have one made")
    return secret


def hidden_seeds(secret: bytes, learner: tuple[str, str, str]) -> Callable[[GradeCall], int]:
    """The seed of each hidden ``grade`` call for ``learner`` (student, assignment,
    notebook): drawn from the course's secret, the learner and the call, so that every
    learner gets hidden cases of their own, which neither the repository nor another
    learner's feedback can tell."""

    def seed(call: GradeCall) -> int:
        message = json.dumps([*learner, call.part, call.name, call.seed, call.cases]).encode()
        return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest()[:4], "big") & 0x7FFFFFFF

    return seed


class IsolatedExecute(NbGraderPreprocessor):
    """Run the learner's cells in a sandbox and grade the test cells outside it."""

    timeout = Integer(120, help="The most one cell of the submission may run, in seconds.").tag(config=True)
    probe_timeout = Integer(60, help="The most one observation of a check may run, in seconds.").tag(config=True)
    notebook_timeout = Integer(600, help="The most a whole notebook may take (its cells, checks and restarts), "
                                         "in seconds; the test cells after it score zero.").tag(config=True)
    max_cells = Integer(200, help="The most cells of a notebook that run; the test cells after them score zero.") \
        .tag(config=True)
    memory_limit = Integer(Limits.memory_bytes, help="Address space of the sandbox, in bytes.").tag(config=True)
    cpu_limit = Integer(Limits.cpu_seconds, help="CPU seconds the sandbox may use in all.").tag(config=True)
    process_limit = Integer(Limits.processes, help="Processes (and threads) the sandbox may run.").tag(config=True)
    hidden_seed_secret = Unicode(
        "", help="A file (relative to the course root) holding the course's secret, made there by the first "
                 "grader that needs it; keep it beside the gradebook, out of the repository. When set, each "
                 "learner's hidden checks draw their cases from it instead of the seeds the test cells name.",
    ).tag(config=True)
    use_cache = Bool(True, help="Reuse results already computed for the same submission and grader.").tag(config=True)
    refresh_cache = Bool(False, help="Grade again even where a result is cached, and cache the new one.") \
        .tag(config=True)
    cache_directory = Unicode(".autograder-cache", help="Where results are kept (relative to the course root).") \
        .tag(config=True)
    startup_timeout = Float(Limits.startup_seconds, help="The most a sandbox may take to start.").tag(config=True)

    def limits(self) -> Limits:
        return Limits(memory_bytes=self.memory_limit, cpu_seconds=self.cpu_limit, processes=self.process_limit,
                      startup_seconds=self.startup_timeout)

    def settings(self) -> dict:
        return {"timeout": self.timeout, "probe_timeout": self.probe_timeout, "memory": self.memory_limit,
                "cpu": self.cpu_limit, "processes": self.process_limit, "budget": self.notebook_timeout,
                "cells": self.max_cells}

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        source = source_notebook(info["db_url"], info["notebook"], info["assignment"])
        # Again here, in case the sanitizing steps are configured without GradebookMetadata.
        for note in gradebook_metadata(nb, source) + restore_missing_tests(nb, source):
            self.log.warning("%s: %s", info["student"], note)
        tests = source.tests
        cut_long_text_cells(nb)  # here too: a result from the cache skips the judge
        learner = (info["student"], info["assignment"], info["notebook"])
        settings, seed = self.settings(), None
        if self.hidden_seed_secret:
            secret = course_secret(Path(self.hidden_seed_secret))
            settings["hidden_seeds"] = hashlib.sha256(secret).hexdigest()
            seed = hidden_seeds(secret, learner)
        key = cache_key(tests, nb, settings, learner)
        cached = self._cached(key)
        if cached is not None and len(cached["outputs"]) == len(nb.cells):
            for cell, outputs in zip(nb.cells, cached["outputs"]):
                if cell.get("cell_type") == "code":
                    cell["outputs"] = nbformat.from_dict(outputs)
                    cell["execution_count"] = None
            self.log.info("%s: results taken from the cache", info["student"])
            resources.setdefault("autograder", {})["cached"] = True
            return nb, resources
        judge = Judge(tests, timeout=self.timeout, probe_timeout=self.probe_timeout, limits=self.limits(),
                      budget=self.notebook_timeout, max_cells=self.max_cells, hidden_seed=seed)
        for note in judge.run(nb):
            self.log.warning("%s: %s", info["student"], note)
        self._store(key, nb)
        return nb, resources

    def _path(self, key: str) -> Path:
        return Path(self.cache_directory) / key[:2] / f"{key}.json"

    def _cached(self, key: str):
        if not self.use_cache or self.refresh_cache:
            return None
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def _store(self, key: str, nb) -> None:
        if not self.use_cache:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        outputs = [cell.get("outputs", []) if cell.get("cell_type") == "code" else None for cell in nb.cells]
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump({"outputs": outputs}, handle)
        os.replace(handle.name, path)
