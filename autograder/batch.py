"""Grade a whole class, in parallel, resumably, into nbgrader's gradebook.

    python -m autograder.batch ASSIGNMENT [ASSIGNMENT ...] [--zip FILE ...] [--workers N]

Run it from the course folder (where ``nbgrader_config.py`` and ``gradebook.db`` are),
after ``nbgrader generate_assignment ASSIGNMENT``. It

1. collects the LMS downloads given with ``--zip`` (zip files, or notebooks named
   ``<student>_..._<notebook>.ipynb``) into ``submitted/`` with ``nbgrader zip_collect``
   (one assignment at a time), and grades everything in
   ``submitted/<student>/ASSIGNMENT/`` for every ASSIGNMENT given;
2. grades the submissions on ``--workers`` cores at once, each in its own sandbox, the
   way ``nbgrader autograde`` does (the same sanitizing steps, then
   :class:`autograder.autograde.IsolatedExecute`), keeping every result in
   ``.autograder-cache/`` as soon as it is known; several assignments share one pool of
   workers, so no core waits for the last submission of one assignment;
3. records the grades as ``nbgrader autograde --force`` would, in two halves
   (:mod:`autograder.record`): each worker finishes the notebook it graded into
   ``autograded/`` with the notebook-only steps of nbgrader's autograde pipeline, then this
   process writes the whole class into the gradebook in a few transactions (rows laid
   out as nbgrader lays them out, scores and late penalties reckoned as nbgrader reckons
   them), so ``generate_feedback``, the formgrader and ``export`` work as after nbgrader's
   own command; ``--record-with-nbgrader`` records with nbgrader's own converter instead,
   a submission at a time (the batch does so by itself when the configuration has an
   autograde step it does not know). The log goes to ``results/nbgrader.log``;
4. writes ``results/ASSIGNMENT/``: ``grades.csv`` (a row per learner, a column per test
   cell), a Gradescope-style ``<student>/results.json`` each, and ``checks.csv``, how
   many learners failed each check, most failed first.

``--student ID`` grades and records one learner only, ``--ignore-cache`` grades again
what the cache holds, and ``--shard I/N`` takes one of N shares of the class, so that N
commands, in as many containers, grade a class into one gradebook (PostgreSQL, say).
The configuration is nbgrader's: ``nbgrader_config.py`` on Jupyter's configuration
search path, then the course's own.

Killed part-way, it starts again where it stopped: finished submissions are found in the
cache and not graded twice, and the gradebook keys each grade by learner and cell, so
none is lost or counted twice.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from .runner import REPORT_MIMETYPE


@dataclasses.dataclass
class Outcome:
    """One submission's notebook, graded: a score and reports per test cell, or why not."""

    student: str
    notebook: str
    assignment: str = ""
    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    points: dict[str, float] = dataclasses.field(default_factory=dict)
    reports: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    error: str = ""
    cached: bool = False
    seconds: float = 0.0


def course_config(root: Path):
    """The configuration nbgrader's own commands see when run in ``root``: every
    ``nbgrader_config.py`` on Jupyter's configuration search path (``jupyter --paths``:
    ``~/.jupyter``, the environment's ``etc/jupyter``, ``/etc/jupyter``; the first found
    wins), then the course's own file, which takes precedence over them all."""
    import logging

    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader(log=logging.getLogger(f"{__name__}.config"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        app.load_config_file()
    finally:
        os.chdir(cwd)
    return app.config


def coursedir(root: Path, config):
    from nbgrader.coursedir import CourseDirectory

    directory = CourseDirectory(config=config)
    directory.root = str(root)
    return directory


def _init_worker() -> None:
    # A worker never outlives the command (nor do its sandboxes, which die with it).
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    import torch

    torch.set_num_threads(1)


def grade_one(root: str, assignment: str, student: str, path: str, probe_timeout=None, timeout=None,
              refresh=False, finish: list | None = None) -> Outcome:
    """Sanitize and grade one notebook as ``nbgrader autograde`` would, filling the cache
    (grading it again, without reading the cache, when ``refresh``). Given ``finish``, the
    notebook-only steps of nbgrader's autograde pipeline (:mod:`autograder.record`), the
    graded notebook goes through them into ``autograded/``, ready to be recorded."""
    start = time.monotonic()
    root = Path(root)
    config = grading_config(root, probe_timeout, timeout)
    config.IsolatedExecute.refresh_cache = refresh
    notebook_id = Path(path).stem
    outcome = Outcome(student, notebook_id, assignment)
    directory = coursedir(root, config)
    resources = {"nbgrader": {"notebook": notebook_id, "assignment": assignment, "student": student,
                              "db_url": directory.db_url},
                 "metadata": {"path": str(Path(path).parent)}}
    folder = Path(directory.format_path(directory.autograded_directory, student, assignment))
    graded_path = folder / f"{notebook_id}.ipynb"
    cwd = os.getcwd()
    os.chdir(root)
    try:
        outcome = _graded(outcome, path, config, resources, finish, graded_path)
    finally:
        os.chdir(cwd)
    if finish is not None and outcome.error and graded_path.exists():
        graded_path.unlink()  # an earlier run's, of a submission since replaced
    outcome.seconds = time.monotonic() - start
    return outcome


def _graded(outcome: Outcome, path: str, config, resources: dict, finish: list | None,
            graded_path: Path) -> Outcome:
    """:func:`grade_one`'s work, in the course folder."""
    import nbformat

    from .autograde import IsolatedExecute
    from .notebook import grade_id, is_test_cell
    from .record import configured_steps, finish_notebook, write_autograded

    try:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if notebook.get("nbformat") != 4:
            notebook = nbformat.convert(notebook, 4)
    except Exception as error:  # unreadable in every way nbformat knows
        outcome.error = f"not a notebook nbgrader can read: {type(error).__name__}: {str(error)[:200]}"
        return outcome
    steps = configured_steps(config, "sanitize_preprocessors")
    try:
        for step in steps:
            notebook, resources = step(config=config)(notebook, resources)
        notebook, resources = IsolatedExecute(config=config)(notebook, resources)
    except Exception as error:  # nbgrader refuses the notebook (invalid metadata, say)
        outcome.error = f"nbgrader cannot grade it: {type(error).__name__}: {str(error)[:200]}"
        return outcome
    outcome.cached = resources.get("autograder", {}).get("cached", False)
    for cell in notebook.cells:
        if not is_test_cell(cell):
            continue
        key = grade_id(cell)
        outcome.points[key] = float(cell.get("metadata", {}).get("nbgrader", {}).get("points", 0))
        score = 0.0
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if REPORT_MIMETYPE in data:
                outcome.reports.setdefault(key, []).append(data[REPORT_MIMETYPE])
            if output.get("output_type") == "execute_result":
                try:
                    score = float(data.get("text/plain", "0"))
                except ValueError:
                    score = 0.0
        outcome.scores[key] = score
    if finish is not None:
        try:
            write_autograded(graded_path, finish_notebook(notebook, resources, config, finish))
        except Exception as error:  # a notebook-only step refuses it, as it would in nbgrader's converter
            outcome.error = f"nbgrader cannot grade it: {type(error).__name__}: {str(error)[:200]}"
    return outcome


def submissions(root: Path, config, assignment: str) -> list[tuple[str, Path]]:
    """(student, notebook) for every notebook in ``submitted/<student>/<assignment>/``."""
    directory = coursedir(root, config)
    base = root / directory.submitted_directory
    found = []
    for student in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        folder = student / assignment
        for notebook in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
            found.append((student.name, notebook))
    return found


class Progress:
    """A progress bar on stderr (a line per update when stderr is not a terminal)."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, note: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else 0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        line = (f"[{bar}] {self.done}/{self.total}  {elapsed:4.0f} s elapsed, ~{left:.0f} s left  {note}")
        if self.tty:
            sys.stderr.write("\r" + line[:150].ljust(150))
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def collect_zips(root: Path, assignment: str, zips: list[Path]) -> None:
    archive = root / "downloaded" / assignment / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    for item in zips:
        shutil.copy(item, archive / item.name)
    nbgrader(root, ["zip_collect", assignment, "--force"])


def nbgrader(root: Path, args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nbgrader", *args]
    environ = dict(os.environ)
    environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")])
    result = subprocess.run(command, cwd=root, env=environ, capture_output=True, text=True)
    log = root / "results" / "nbgrader.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"$ nbgrader {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    return result


def gradebook_scores(root: Path, config, assignment: str) -> tuple[dict[str, dict[str, float | None]], dict[str, float]]:
    """Every student's autograded score per test cell, and late penalty, as the gradebook
    has them."""
    from nbgrader.api import Gradebook

    scores, penalties = {}, {}
    with Gradebook(coursedir(root, config).db_url) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            penalties[submission.student.id] = float(submission.late_submission_penalty or 0.0)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.cell_type == "code":
                        scores.setdefault(submission.student.id, {})[grade.name] = grade.score
    return scores, penalties


def ensure_students(root: Path, config, students: list[str]) -> None:
    """Put every learner in the gradebook before nbgrader records them: nbgrader creates a
    student by looking it up, then inserting it, so two commands recording the same new
    learner at once (two assignments' batches, shards of a class) would both insert, and
    one would fail on the gradebook's unique key and lose that grade. Here the loser of
    that race rolls back and finds the row the winner wrote. On PostgreSQL and SQLite the
    new learners are inserted in a few statements that leave out those written meanwhile
    (tried again while the database is busy); where that fails (an id the database
    refuses), a learner at a time, so that only that learner is left out."""
    from importlib import import_module

    from nbgrader.api import Gradebook, InvalidEntry, MissingEntry, Student
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError, OperationalError

    url = coursedir(root, config).db_url
    missing = list(students)
    for attempt in range(4):
        with Gradebook(url) as gradebook:
            try:
                known = set()
                for start in range(0, len(students), 500):  # in a few queries, not one per learner
                    chosen = students[start:start + 500]
                    known.update(gradebook.db.scalars(select(Student.id).where(Student.id.in_(chosen))))
                missing = [s for s in students if s not in known]
                dialect = gradebook.engine.dialect.name
                if not missing or dialect not in ("postgresql", "sqlite"):
                    break
                insert = import_module(f"sqlalchemy.dialects.{dialect}").insert
                for start in range(0, len(missing), 500):
                    rows = [{"id": s} for s in missing[start:start + 500]]
                    gradebook.db.execute(insert(Student).values(rows).on_conflict_do_nothing())
                gradebook.db.commit()
                return
            except OperationalError:
                gradebook.db.rollback()
                if attempt == 3:
                    raise
                time.sleep(0.5 * 2 ** attempt)
            except DBAPIError:
                gradebook.db.rollback()
                break
    with Gradebook(url) as gradebook:
        for student in missing:
            for _ in range(3):
                try:
                    gradebook.find_student(student)
                    break
                except MissingEntry:
                    pass
                try:
                    gradebook.add_student(student)
                    break
                except InvalidEntry:  # written meanwhile by another command; add_student rolled back
                    continue


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def results_json(outcome: Outcome, penalty: float = 0.0, hidden_visibility: str = "after_due_date") -> dict:
    """Gradescope's format: the total (less a late penalty, as ``nbgrader export`` counts
    it); per test cell, a visible test with its score, status and the report of its
    visible checks, and apart a test with the report of its hidden checks, shown
    ``hidden_visibility``.

    A course test cell calls ``grade()`` once in the open, then again in its hidden tests
    (the judge accepts no other form), so a cell's first report is its visible one."""
    from .runner import report_from_output

    tests = []
    for key, points in outcome.points.items():
        reports = [report_from_output(r) for r in outcome.reports.get(key, [])]
        score = outcome.scores.get(key, 0.0)
        tests.append({"name": key, "score": score, "max_score": points,
                      "status": "passed" if score >= points else "failed", "visibility": "visible",
                      "output": reports[0].as_text() if reports
                      else "no report: the checks did not run (see the notebook's feedback)"})
        if len(reports) > 1:
            failed = any(check.status == "failed" for report in reports[1:] for check in report.checks)
            tests.append({"name": f"{key}: hidden tests", "status": "failed" if failed else "passed",
                          "visibility": hidden_visibility,
                          "output": "\n\n".join(report.as_text() for report in reports[1:])})
    raw = sum(outcome.scores.values())
    output = outcome.error
    if penalty:
        output = "\n".join(filter(None, [output, f"late: {penalty:g} point(s) off {raw:g}"]))
    return {"score": round(max(0.0, raw - penalty), 4), "execution_time": round(outcome.seconds, 2),
            "output": output, "tests": tests}


def check_summary(outcomes: list[Outcome]) -> list[dict]:
    """For each check, how many learners' submissions failed it (in any of its cases)."""
    from .runner import report_from_output

    table: dict[tuple[str, str], set[str]] = {}
    for outcome in outcomes:
        for key, reports in outcome.reports.items():
            for data in reports:
                report = report_from_output(data)
                for check in report.checks:
                    failed = table.setdefault((report.part, check.title), set())
                    if check.status == "failed":
                        failed.add(outcome.student)
    learners = len({o.student for o in outcomes}) or 1
    rows = [{"part": part, "check": title, "failed": len(failed), "learners": learners,
             "share": round(len(failed) / learners, 3)} for (part, title), failed in table.items()]
    return sorted(rows, key=lambda r: (-r["failed"], r["part"], r["check"]))


def write_results(root: Path, assignment: str, outcomes: list[Outcome], recorded: dict,
                  penalties: dict[str, float] | None = None) -> Path:
    """``grades.csv`` and ``checks.csv`` in ``results/ASSIGNMENT/``; a total is the cells'
    sum less the late penalty, at least 0, as ``nbgrader export`` counts it."""
    folder = root / "results" / assignment
    penalties = penalties or {}
    cells = sorted({key for o in outcomes for key in o.points})
    lines = [["student", "notebook", "total", "max_score", "late_penalty", *cells, "problem"]]
    for outcome in sorted(outcomes, key=lambda o: o.student):
        scores = recorded.get(outcome.student, {})
        row = [scores.get(k, outcome.scores.get(k)) for k in cells]
        penalty = penalties.get(outcome.student, 0.0)
        total = max(0.0, sum(v or 0.0 for v in row) - penalty)
        lines.append([outcome.student, outcome.notebook, round(total, 4), sum(outcome.points.values()), penalty,
                      *["" if v is None else v for v in row], outcome.error])
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, newline="", suffix=".tmp") as handle:
        csv.writer(handle).writerows(lines)
    os.replace(handle.name, folder / "grades.csv")
    summary = check_summary(outcomes)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, newline="", suffix=".tmp") as handle:
        writer = csv.DictWriter(handle, fieldnames=["part", "check", "failed", "learners", "share"])
        writer.writeheader()
        writer.writerows(summary)
    os.replace(handle.name, folder / "checks.csv")
    return folder


def grading_config(root: Path, probe_timeout: int | None = None, timeout: int | None = None):
    """The course's configuration, with the command line's limits in place of its own."""
    config = course_config(root)
    if probe_timeout is not None:
        config.IsolatedExecute.probe_timeout = probe_timeout
    if timeout is not None:
        config.IsolatedExecute.timeout = timeout
    return config


@contextlib.contextmanager
def reused_gradebook_connections():
    """Within it, nbgrader's ``Gradebook`` objects of this process share one engine (and
    its pool of connections) per database, and check the schema once.

    nbgrader opens a ``Gradebook`` about ten times per submission it records, and each
    opening creates an engine, connects, and inspects every table of the schema: most of
    the time recording takes on SQLite, and nearly all of it on PostgreSQL, where each of
    those is a round trip to the server. The data nbgrader writes, and when it commits,
    are unchanged."""
    import nbgrader.api
    from sqlalchemy.orm import scoped_session, sessionmaker

    original = nbgrader.api.Gradebook
    engines = {}

    class Reused(original):
        def __init__(self, db_url, course_id="default_course", authenticator=None):
            if db_url not in engines:
                original.__init__(self, db_url, course_id, authenticator)
                engines[db_url] = self.engine
                return
            self.engine = engines[db_url]
            self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
            self.check_course(course_id=course_id)
            self.course_id = course_id
            self.authenticator = authenticator

        def close(self):
            self.db.remove()

    modules = [module for module in list(sys.modules.values())
               if getattr(module, "__name__", "").startswith(("nbgrader.", "autograder."))
               and getattr(module, "Gradebook", None) is original]
    for module in modules:
        module.Gradebook = Reused
    try:
        yield
    finally:
        for module in modules:
            module.Gradebook = original
        for engine in engines.values():
            engine.dispose()


def submitters(root: Path, config, assignment: str) -> list[str]:
    """Every learner with a folder ``submitted/<student>/ASSIGNMENT/``."""
    base = root / coursedir(root, config).submitted_directory
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir()) if base.is_dir() else []


def record_in_parallel(root: Path, assignment: str, probe_timeout: int | None, timeout: int | None,
                       students: list[str] | None, workers: int) -> bool:
    """Record as :func:`record` does, in ``workers`` forked processes that each take a
    share of the learners (every one, or ``students``), when the gradebook is a database
    server (PostgreSQL): one process spends most of its time waiting on round trips that
    others can overlap, and nbgrader writes each learner's grades in rows of their own.
    SQLite takes one writer at a time, so there this process records them all."""
    config = grading_config(root, probe_timeout, timeout)
    chosen = [s for s in submitters(root, config, assignment) if students is None or s in students]
    shares = [chosen[index::workers] for index in range(min(workers, len(chosen)))]
    if len(shares) < 2 or coursedir(root, config).db_url.startswith("sqlite"):
        return record(root, assignment, probe_timeout, timeout, students)
    import multiprocessing

    # Forked, like the grading workers: nothing here holds a connection or a thread now.
    with multiprocessing.get_context("fork").Pool(len(shares)) as pool:
        return all(pool.starmap(record, [(root, assignment, probe_timeout, timeout, share) for share in shares]))


def record(root: Path, assignment: str, probe_timeout: int | None, timeout: int | None,
           students: list[str] | None = None) -> bool:
    """Record ``assignment``'s grades as ``nbgrader autograde ASSIGNMENT --force`` does, with
    nbgrader's own converter in this process (every result comes from the cache, so no
    sandbox starts), for every learner or only ``students``. Its log is appended to
    ``results/nbgrader.log``. True if nbgrader processed every submission without an
    error."""
    from nbgrader.converters import Autograde, NbGraderException

    config = grading_config(root, probe_timeout, timeout)
    with recording_log(root) as log:
        log.info("nbgrader autograde %s --force%s", assignment,
                 "".join(f" --student {s}" for s in students or []))
        try:
            everyone = submitters(root, config, assignment)
            # nbgrader takes one student pattern, and a comma-separated list to leave out.
            if students is None:
                patterns = [("*", "")]
            elif any("," in student for student in everyone):
                patterns = [(student, "") for student in students]
            else:
                patterns = [("*", ",".join(s for s in everyone if s not in students))]
            with reused_gradebook_connections():
                for pattern, excluded in patterns:
                    directory = coursedir(root, config)
                    directory.assignment_id = assignment
                    directory.student_id = pattern
                    directory.student_id_exclude = excluded
                    converter = Autograde(coursedir=directory, config=config, log=log)
                    converter.force = True
                    converter.start()
            return True
        except NbGraderException:
            return False
        except Exception:  # nbgrader itself failed
            log.exception("recording %s failed", assignment)
            return False


@contextlib.contextmanager
def recording_log(root: Path):
    """A logger that appends to ``results/nbgrader.log``, in ``root`` as the working
    folder, taking nbgrader's warnings (SQLAlchemy's, say), which belong in that log with
    the rest, not on the screen."""
    import logging

    path = root / "results" / "nbgrader.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"{__name__}.record")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.addHandler(handler)
    cwd = os.getcwd()
    os.chdir(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield log
        finally:
            os.chdir(cwd)
            for warning in caught:
                log.warning("%s", warnings.formatwarning(warning.message, warning.category, warning.filename,
                                                         warning.lineno).rstrip())
            log.removeHandler(handler)
            handler.close()


def record_bulk(root: Path, config, assignment: str, students: list[str],
                errors: dict[str, str] | None = None) -> bool:
    """Record ``students``' submissions of ``assignment``, graded into ``autograded/`` by
    the workers (but those in ``errors``, which could not be graded), with
    :func:`autograder.record.record_class`; its log is appended to
    ``results/nbgrader.log``. True if every submission was recorded."""
    from .record import RecordingFailed, record_class

    with recording_log(root) as log:
        log.info("recording %s: %d submission(s), %s", assignment, len(students),
                 "every learner" if len(students) > 5 else " ".join(students))
        try:
            failed = record_class(root, config, assignment, students, log, errors)
        except RecordingFailed as error:
            log.error("%s", error)
            print(f"error: {error}", file=sys.stderr)
            return False
        except Exception:  # the gradebook itself failed
            log.exception("recording %s failed", assignment)
            return False
        for line in failed:
            log.error("not recorded: %s", line)
            if line.split(": ", 1)[0] not in (errors or {}):  # those the grading could not read are named already
                print(f"  not recorded: {line}", file=sys.stderr)
        return not failed


def shard(text: str) -> tuple[int, int]:
    """``I/N`` from the command line, with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (shard I of N, from 0)") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text}: I must be at least 0 and less than N")
    return index, count


def in_shard(student: str, index: int, count: int) -> bool:
    """Whether ``student`` belongs to shard ``index`` of ``count``: decided by a digest of
    the id alone, so every command, whatever it sees, agrees, and all of a learner's
    assignments land in one shard."""
    import hashlib

    return int.from_bytes(hashlib.sha256(student.encode()).digest()[:8], "big") % count == index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="+", metavar="ASSIGNMENT",
                        help="an assignment in the gradebook; several are graded by one pool of workers")
    parser.add_argument("--zip", type=Path, action="append", default=[], metavar="FILE",
                        help="an LMS download (a zip, or a notebook named <student>_..._<notebook>.ipynb)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    parser.add_argument("--probe-timeout", type=int, help="override IsolatedExecute.probe_timeout (seconds)")
    parser.add_argument("--timeout", type=int, help="override IsolatedExecute.timeout (seconds)")
    parser.add_argument("--student", action="append", default=[], metavar="ID",
                        help="grade and record only this learner's submission (may repeat)")
    parser.add_argument("--ignore-cache", action="store_true",
                        help="grade every submission again, replacing the results cached in .autograder-cache/")
    parser.add_argument("--hidden-visibility", default="after_due_date",
                        choices=("visible", "hidden", "after_due_date", "after_published"),
                        help="when Gradescope shows learners the reports of hidden tests in results.json "
                             "(default: %(default)s)")
    parser.add_argument("--record-with-nbgrader", action="store_true",
                        help="record with nbgrader's own autograde converter, a submission at a time (the "
                             "batch does so by itself for autograde steps it does not know)")
    parser.add_argument("--shard", type=shard, metavar="I/N",
                        help="grade only shard I of N (from 0): every N-th learner, in order of id, so that "
                             "N commands (a Kubernetes Indexed Job's pods, say) share a class and one gradebook")
    args = parser.parse_args(argv)
    assignments = list(dict.fromkeys(args.assignments))
    if args.zip and len(assignments) > 1:
        parser.error("--zip collects the downloads of one assignment: give a single ASSIGNMENT with it")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    root = Path.cwd()
    if not (root / "nbgrader_config.py").exists():
        print("error: run this from the course folder (where nbgrader_config.py is)", file=sys.stderr)
        return 2
    from concurrent.futures import ThreadPoolExecutor

    from .sandbox import SandboxUnavailable, check_available

    # A sandbox starts (a second or so, mostly waiting) while the configuration loads; the
    # thread is gone before any worker is forked.
    with ThreadPoolExecutor(1) as thread:
        sandbox = thread.submit(check_available)
        config = course_config(root)
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(coursedir(root, config).db_url) as gradebook:
            unknown = []
            for assignment in assignments:
                try:
                    gradebook.find_assignment(assignment)
                except MissingEntry:
                    unknown.append(assignment)
        try:
            sandbox.result()
        except SandboxUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    for assignment in unknown:
        print(f"error: {assignment} is not in the gradebook: run "
              f"`nbgrader generate_assignment {assignment}` first", file=sys.stderr)
    if unknown:
        return 2
    if args.zip:
        collect_zips(root, assignments[0], args.zip)
    work = []
    for assignment in assignments:
        found = submissions(root, config, assignment)
        if args.student:
            found = [(student, path) for student, path in found if student in args.student]
        if args.shard:
            found = [(student, path) for student, path in found if in_shard(student, *args.shard)]
        if not found:
            print(f"{'error' if len(assignments) == 1 else 'warning'}: nothing to grade in "
                  f"submitted/*/{assignment}/", file=sys.stderr)
        work += [(assignment, student, path) for student, path in found]
    if not work:
        if args.shard:
            print(f"shard {args.shard[0]}/{args.shard[1]} holds none of these learners: nothing to do",
                  file=sys.stderr)
            return 0
        return 2
    graded = [a for a in assignments if any(item[0] == a for item in work)]
    print(f"Grading {len(work)} submission(s) of {', '.join(graded)} on {args.workers} worker(s)",
          file=sys.stderr)
    from sqlalchemy.exc import OperationalError

    from .record import finishing_steps

    finish = None if args.record_with_nbgrader else finishing_steps(config)
    if finish is None and not args.record_with_nbgrader:
        print("note: Autograde.autograde_preprocessors is not a pipeline the batch records itself: "
              "recording with nbgrader's converter, a submission at a time", file=sys.stderr)
    outcomes = grade_all(root, args, work, finish)
    status = 0
    for assignment in graded:
        mine = [o for o in outcomes if o.assignment == assignment]
        students = sorted({o.student for o in mine})
        try:
            ensure_students(root, config, students)
        except OperationalError as error:
            print(f"error: the gradebook cannot be written ({str(error).splitlines()[0][:200]}); nothing of "
                  f"{assignment} was recorded, and its results are cached: run the batch again to record them",
                  file=sys.stderr)
            status = 1
            continue
        if finish is not None:
            recorded_all = record_bulk(root, config, assignment, students,
                                       {o.student: o.error for o in mine if o.error})
        else:
            only = students if args.student or args.shard else None
            recorded_all = record_in_parallel(root, assignment, args.probe_timeout, args.timeout, only,
                                              args.workers)
        status = max(status, report(root, config, assignment, mine, recorded_all, args.hidden_visibility))
    return status


def report(root: Path, config, assignment: str, outcomes: list[Outcome], recorded_all: bool,
           hidden_visibility: str = "after_due_date") -> int:
    """Write ``results/ASSIGNMENT/`` and say how it went: 0 if every submission was graded
    and recorded, else 1."""
    recorded, penalties = gradebook_scores(root, config, assignment)
    folder = write_results(root, assignment, outcomes, recorded, penalties)
    for outcome in outcomes:
        if outcome.points or outcome.error:
            result = results_json(outcome, penalties.get(outcome.student, 0.0), hidden_visibility)
            atomic_write(folder / outcome.student / "results.json", json.dumps(result, indent=2))
    missing = [o.student for o in outcomes if not o.error and o.student not in recorded]
    cached = sum(o.cached for o in outcomes)
    print(f"Done: {len(outcomes)} graded ({cached} from earlier runs), results in {folder.relative_to(root)}/",
          file=sys.stderr)
    for row in check_summary(outcomes)[:5]:
        if row["failed"]:
            print(f"  {row['failed']}/{row['learners']} failed {row['part']}: {row['check']}", file=sys.stderr)
    for outcome in outcomes:
        if outcome.error:
            print(f"  {outcome.student}: {outcome.error}", file=sys.stderr)
    if missing:
        print(f"warning: the gradebook holds no grade for {', '.join(missing)}; see results/nbgrader.log",
              file=sys.stderr)
    elif not recorded_all:
        print(f"warning: not every submission of {assignment} was recorded; see results/nbgrader.log",
              file=sys.stderr)
    return 0 if recorded_all and not missing else 1


def grade_all(root: Path, args, work: list[tuple[str, str, Path]], finish: list | None = None) -> list[Outcome]:
    """Grade every (assignment, student, notebook) of ``work`` on ``args.workers`` forked
    workers, in that order; a worker that dies is replaced and its submission tried again
    (three times at most)."""
    import multiprocessing

    import nbformat  # noqa: F401  (imported once here, for every forked worker)
    from nbgrader.converters import Autograde  # noqa: F401

    from . import autograde  # noqa: F401

    progress = Progress(len(work))
    outcomes: list[Outcome] = []
    pending = list(work)
    several = len({assignment for assignment, _, _ in work}) > 1
    # Forked workers start at once with what this process has imported (torch, nbgrader,
    # the course's configuration): a spawned one took ~4 s to import them again. Nothing
    # here has started a thread or holds a database connection by now.
    context = multiprocessing.get_context("fork")
    attempts = 0
    while pending and attempts < 3:
        attempts += 1
        try:
            with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init_worker) as pool:
                futures = {pool.submit(grade_one, str(root), *item, args.probe_timeout, args.timeout,
                                       args.ignore_cache, finish): item
                           for item in pending}
                for future in as_completed(futures):
                    assignment, student, path = futures[future]
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        raise
                    except Exception as error:  # a fault of the grader on this one submission
                        outcome = Outcome(student, path.stem, assignment, error=f"the grader failed: {error}")
                    outcomes.append(outcome)
                    pending.remove(futures[future])
                    total = sum(outcome.scores.values())
                    who = f"{assignment} {student}" if several else student
                    progress.update(f"{who}: {outcome.error or f'{total:g}/{sum(outcome.points.values()):g}'}")
        except BrokenProcessPool:
            continue  # a worker died (not a submission's code: that runs in sandboxes); go on
    outcomes += [Outcome(student, path.stem, assignment, error="the grader's worker died on it three times")
                 for assignment, student, path in pending]
    return outcomes


if __name__ == "__main__":
    sys.exit(main())
