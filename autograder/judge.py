"""Grade a notebook where none of its code runs: the judge.

The learner's cells run, in order, in a sandbox (:mod:`autograder.sandbox`). The test
cells do not run there, nor does their text: the judge reads each test cell from a
trusted copy (the gradebook's, or the release's), accepts only the course's form of a
test cell (``score = grade(...)``, ``score = min(score, grade(...))``, ``score``), and
runs those ``grade`` calls here, with the checks' probes reaching into the sandbox for
observations (:class:`Remote`). So the checks, the oracles and the score are computed in
a process in which no learner code ever ran, from plain data.

Every test cell gets the same outputs as in a notebook: one report per ``grade`` call
and, last, the score as the cell's value. A test cell's visible ``grade`` calls run where
the cell stands; its hidden ones (between nbgrader's hidden-test markers) run after every
learner cell of the notebook, and their reports say which checks failed but not how
(:func:`redacted`): the learner's code sees a hidden case only when no learner cell is
left to run, and nothing it does then reaches the feedback but the points.

A cell that hangs or kills the sandbox costs that cell; the sandbox is started afresh and
the cells before it are run again, up to :attr:`Judge.max_restarts` times. A notebook has
a time budget and a number of cells, and what its cells send back is capped
(:class:`Judge`).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping

from . import borrowing, probe, wire
from .feedback import SubmissionError
from .runner import GraderError, Report, run_checks
from .sandbox import MAX_MESSAGE, Limits, Sandbox, SandboxFailure

#: An image's data is base64 and nothing else: it lands inside an HTML attribute.
BASE64 = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*")
#: The largest cell (its source, in characters) the judge runs or keeps.
MAX_CELL_SOURCE = 1_000_000
#: The most a learner's cell may send back (bytes on the wire) and keep (characters of outputs).
MAX_CELL_ANSWER = 8 * 2**20
MAX_CELL_OUTPUT = 2_000_000
#: The most all the learner's cells of one notebook keep as outputs (characters).
MAX_NOTEBOOK_OUTPUT = 8_000_000

@dataclasses.dataclass(frozen=True)
class TrustedTest:
    """A test cell as the course wrote it: its source and its points."""

    source: str
    points: float


#: Each report's label in feedback: a grade() call between nbgrader's hidden-test markers
#: is a hidden one; the others run in the learner's notebook too.
VISIBLE_LABEL = "visible checks, as in your notebook"
HIDDEN_LABEL = "hidden checks: more cases, run only when graded"


class CellFormError(ValueError):
    """A test cell that is not in the course's form (see :func:`grade_calls`)."""


@dataclasses.dataclass(frozen=True)
class GradeCall:
    part: str
    name: str
    points: float
    seed: int = 0
    cases: int = 2
    hidden: bool = False


def _constant(node, kinds, what):
    if isinstance(node, ast.Constant) and type(node.value) in kinds:
        return node.value
    raise CellFormError(f"{what} must be a literal")


def _grade_call(node) -> GradeCall:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "grade"
            and len(node.args) == 2 and isinstance(node.args[1], ast.Name)):
        raise CellFormError("expected grade(\"part\", name, points=...)")
    options = {}
    for keyword in node.keywords:
        if keyword.arg not in ("points", "seed", "cases") or keyword.arg in options:
            raise CellFormError(f"grade() takes points, seed and cases, not {keyword.arg}")
        options[keyword.arg] = _constant(keyword.value, (int, float) if keyword.arg == "points" else (int,),
                                         keyword.arg)
    if "points" not in options:
        raise CellFormError("grade() needs points=")
    return GradeCall(_constant(node.args[0], (str,), "the part"), node.args[1].id, float(options["points"]),
                     options.get("seed", 0), options.get("cases", 2))


def grade_calls(source: str) -> list[GradeCall]:
    """The ``grade`` calls of a test cell, in order, if the cell has the course's form:

        score = grade("part", name, points=N)
        score = min(score, grade("part", name, points=N, seed=S, cases=K))   # any number
        score

    (comments and nbgrader's hidden-test markers aside). Raises :class:`CellFormError`
    for anything else: the judge evaluates this form itself and runs no other code.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise CellFormError(f"it does not parse: {error.msg}") from None
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
            inside = "BEGIN" in line
        elif inside:
            hidden.add(number)
    body = tree.body
    if len(body) < 2 or not (isinstance(body[-1], ast.Expr) and isinstance(body[-1].value, ast.Name)
                             and body[-1].value.id == "score"):
        raise CellFormError("a test cell ends with `score`")
    calls = []
    for index, statement in enumerate(body[:-1]):
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == "score"):
            raise CellFormError("each line assigns score")
        value = statement.value
        if index == 0:
            calls.append(dataclasses.replace(_grade_call(value), hidden=statement.lineno in hidden))
            continue
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "min"
                and len(value.args) == 2 and not value.keywords and isinstance(value.args[0], ast.Name)
                and value.args[0].id == "score"):
            raise CellFormError("later lines are score = min(score, grade(...))")
        calls.append(dataclasses.replace(_grade_call(value.args[1]), hidden=statement.lineno in hidden))
    return calls


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


#: What a hidden check's report says of a failure, in place of its message.
HIDDEN_FAILURE = "failed on a hidden case (what a hidden case saw and produced is not shown)"


def redacted(report: Report) -> Report:
    """A hidden ``grade`` call's report: each check's outcome and the points, and no word
    the learner's code could have shaped (a failure's message, which may quote what the
    code returned or raised, and the checks' notes)."""
    return dataclasses.replace(report, checks=[
        dataclasses.replace(check, message=HIDDEN_FAILURE if check.status == "failed" else check.message, notes=[])
        for check in report.checks])


@dataclasses.dataclass
class Graded:
    """A test cell whose visible ``grade`` calls are graded, its hidden ones still to run."""

    cell: dict
    points: float
    outputs: list[dict]
    score: float | None
    hidden: list[GradeCall]


class Remote(probe.Submission):
    """The learner's object ``name``, living in the judge's sandbox: probes run there.

    Once a probe runs past its time, ends the sandbox or leaves processes behind, the
    other probes of the same ``grade`` call fail at once with the same reason: one
    ``grade`` call costs at most one fresh sandbox, and the parts after it are graded.
    """

    def __init__(self, judge: "Judge", name: str):
        super().__init__(name)
        self.judge, self.failure = judge, None

    def run(self, function, args: tuple, kwargs: dict):
        if self.failure:
            raise SubmissionError(self.failure)
        module, qualname = probe.address(function)
        message = {"op": "probe", "name": self.name, "module": module, "function": qualname,
                   "args": wire.encode(tuple(args)), "kwargs": wire.encode(dict(kwargs))}
        try:
            answer = self.judge.request(message, self.judge.probe_timeout)
        except SandboxFailure as failure:
            self.failure = f"{self.name} was being checked when {failure.reason}"
            raise SubmissionError(self.failure) from None
        if answer.get("op") != "result" or not isinstance(answer.get("ok"), bool):
            raise SubmissionError(f"checking {self.name}: the learner's process answered nonsense")
        if answer.get("processes"):
            self.failure = (f"{self.name} left processes running when it returned (it forks, or starts "
                            "programs); the sandbox was started afresh")
        if not answer["ok"]:
            raise probe.rebuild_error(answer.get("error"))
        try:
            return wire.decode(answer.get("result"))
        except wire.WireError as error:
            raise SubmissionError(f"checking {self.name}: the learner's process sent back {error}") from None


class Judge:
    """Runs a notebook's cells in a sandbox and grades its test cells here.

    ``tests`` maps the grade_id of each test cell the course knows to its trusted copy;
    ``timeout`` bounds each cell, ``probe_timeout`` each observation of a check, ``budget``
    the whole notebook (cells, checks and restarts, in seconds) and ``max_cells`` how many
    of its cells run. Past either bound, no further cell runs and every test cell after it
    scores zero, with the reason. ``hidden_seed``, if given, draws the seed of each hidden
    ``grade`` call in place of the one its test cell names (:func:`autograder.autograde.hidden_seeds`).
    """

    max_restarts = 8

    def __init__(self, tests: Mapping[str, TrustedTest], *, timeout: float = 120, probe_timeout: float = 60,
                 limits: Limits = Limits(), budget: float = 600, max_cells: int = 200,
                 hidden_seed: Callable[[GradeCall], int] | None = None):
        self.tests = dict(tests)
        self.hidden_seed = hidden_seed
        self.timeout, self.probe_timeout = timeout, probe_timeout
        self.limits, self.budget, self.max_cells = limits, budget, max_cells
        self.deadline = time.monotonic() + budget
        self.cells_run, self.output_size = 0, 0
        self.sandbox: Sandbox | None = None
        self.replay: list[str] = []  # cells to run again after a restart
        self.started, self.restarts = False, 0
        self.dirty = False
        self.notes: list[str] = []

    # --- the sandbox ---------------------------------------------------------------

    def _start(self) -> None:
        self.sandbox = Sandbox(limits=self.limits)
        self.sandbox.start()
        self.started, self.dirty = True, False

    def _restart(self) -> None:
        """A fresh sandbox with the cells that ran so far run again (their outputs unused)."""
        if self.sandbox is not None:
            self.sandbox.close()
        if self.restarts >= self.max_restarts:
            raise SandboxFailure(f"the sandbox had to be restarted more than {self.max_restarts} times")
        self.restarts += 1
        self._start()
        for code in self.replay:
            self._ask({"op": "exec", "code": code}, self.timeout, MAX_CELL_ANSWER)

    @property
    def spent(self) -> str:
        return f"the notebook used up its time budget of {self.budget:g} s"

    def _ask(self, message: dict, timeout: float, limit: int) -> dict:
        """The sandbox's answer within ``timeout`` and what is left of the budget."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SandboxFailure(self.spent, timed_out=True)
        try:
            return self.sandbox.request(message, min(timeout, left), limit)
        except SandboxFailure as failure:
            if failure.timed_out and left < timeout:
                raise SandboxFailure(self.spent, timed_out=True) from None
            raise

    def request(self, message: dict, timeout: float, limit: int = MAX_MESSAGE) -> dict:
        try:
            if not self.started:
                self._start()
            elif self.sandbox is None or not self.sandbox.alive or self.dirty:
                self._restart()
            answer = self._ask(message, timeout, limit)
        except SandboxFailure:
            self.dirty = True
            raise
        if answer.get("processes"):
            self.dirty = True  # processes left behind: start afresh before the next request
        return answer

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    # --- cells -----------------------------------------------------------------------

    def execute(self, source: str) -> list[dict]:
        """Run a learner's cell in the sandbox; its outputs, within the notebook's share."""
        self.cells_run += 1
        if len(source) > MAX_CELL_SOURCE:
            return [failed_cell(f"the cell is longer than {MAX_CELL_SOURCE:,} characters; it was not run")]
        try:
            answer = self.request({"op": "exec", "code": source}, self.timeout, MAX_CELL_ANSWER)
        except SandboxFailure as failure:
            return [failed_cell(failure.reason)]
        self.replay.append(source)
        outputs = answer.get("outputs")
        outputs = sanitize_outputs(outputs if isinstance(outputs, list) else [])
        size = output_size(outputs)
        if self.output_size + size > MAX_NOTEBOOK_OUTPUT:
            return [stream(f"(This cell's outputs were not kept: the notebook's outputs passed "
                           f"{MAX_NOTEBOOK_OUTPUT:,} characters.)\n")]
        self.output_size += size
        return outputs

    def stopped(self) -> str | None:
        """Why no further cell of the notebook runs, if none does."""
        if self.cells_run >= self.max_cells:
            return f"the notebook has more than {self.max_cells} cells to run"
        if time.monotonic() >= self.deadline:
            return self.spent
        return None

    def _grade(self, calls: list[GradeCall]) -> tuple[list[dict], float | None]:
        """A report per ``grade`` call (redacted for a hidden one), and the least score."""
        outputs, score = [], None
        for call in calls:
            borrowed = borrowing.borrowing(call.part, call.name, self.replay)
            try:
                seed = self.hidden_seed(call) if call.hidden and self.hidden_seed else call.seed
                report = borrowing.report(call.part, call.points, borrowed) if borrowed else run_checks(
                    call.part, Remote(self, call.name), points=call.points, seed=seed, cases=call.cases)
            except (GraderError, ValueError) as error:
                outputs.append(stream(f"The checks of {call.part} could not run: {error}\n"))
                earned = 0.0
            else:
                report.label = HIDDEN_LABEL if call.hidden else VISIBLE_LABEL
                # a borrowing is read from the code the learner wrote: nothing hidden to redact
                data = (redacted(report) if call.hidden and not borrowed else report)._repr_mimebundle_()
                outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
                earned = report.earned
            score = earned if score is None else min(score, earned)
        return outputs, score

    def grade_cell(self, cell: dict, test: TrustedTest) -> Graded:
        """Grade the visible ``grade`` calls of a test cell where it stands; its hidden ones
        wait for :meth:`finish`."""
        try:
            calls = grade_calls(test.source)
        except CellFormError as error:
            return Graded(cell, test.points, [stream(f"This test cell cannot be graded: {error}.\n")], 0.0, [])
        for call in calls:
            if call.points != test.points:
                return Graded(cell, test.points, [stream(f"grade(..., points={call.points:g}) does not match the "
                                                         f"cell's {test.points:g} points; the cell is not graded.\n")],
                              0.0, [])
        outputs, score = self._grade([call for call in calls if not call.hidden])
        return Graded(cell, test.points, outputs, score, [call for call in calls if call.hidden])

    def finish(self, graded: Graded) -> None:
        """Run a test cell's hidden calls (after every learner cell) and give the cell its
        outputs: the reports, then the least score."""
        import nbformat

        outputs, score = list(graded.outputs), graded.score
        if graded.hidden:
            if time.monotonic() >= self.deadline:
                more, earned = [stream(f"The hidden checks were not run: {self.spent}.\n")], 0.0
            else:
                more, earned = self._grade(graded.hidden)
            outputs += more
            score = earned if score is None else min(score, earned)
        graded.cell["outputs"] = nbformat.from_dict(outputs + [score_output(min(max(score or 0.0, 0.0),
                                                                               graded.points))])

    def run(self, notebook) -> list[str]:
        """Run ``notebook`` (nbformat v4, changed in place): every code cell gets its
        outputs. Returns notes on what was unusual."""
        import nbformat

        from .notebook import grade_id, is_test_cell

        judged, pending = set(), []
        self.deadline = time.monotonic() + self.budget
        try:
            cut_long_text_cells(notebook)
            for cell in notebook.cells:
                if cell.get("cell_type") != "code":
                    continue
                cell["execution_count"] = None
                key = grade_id(cell)
                reason = self.stopped()
                if reason is not None:
                    graded = is_test_cell(cell) and key in self.tests and key not in judged
                    judged.add(key)
                    cell["outputs"] = nbformat.from_dict(
                        [stream(f"Not graded: {reason}.\n"), score_output(0.0)] if graded
                        else [stream(f"Not run: {reason}.\n")])
                    continue
                if is_test_cell(cell):
                    if key in self.tests and key not in judged:
                        judged.add(key)
                        pending.append(self.grade_cell(cell, self.tests[key]))
                    else:
                        why = "a second copy of a test cell" if key in judged else "not a test cell of this assignment"
                        self.notes.append(f"a cell marked as a test ({key}) is {why}; it was not run")
                        cell["outputs"] = nbformat.from_dict([stream(f"Not run: {why}.\n")])
                    continue
                cell["outputs"] = nbformat.from_dict(self.execute(cell.get("source", "")))
            for test in pending:
                self.finish(test)
        finally:
            self.close()
        if self.restarts:
            self.notes.append(f"the sandbox was started afresh {self.restarts} time(s)")
        return self.notes


def cut_long_text_cells(notebook) -> None:
    """Empty every markdown or raw cell whose text and attachments pass
    :data:`MAX_CELL_SOURCE` characters, leaving a note: the graded notebook and its
    feedback carry no learner's text of that size."""
    for cell in notebook.cells:
        if cell.get("cell_type") == "code":
            continue
        if len(cell.get("source", "")) + len(json.dumps(cell.get("attachments", {}))) > MAX_CELL_SOURCE:
            cell["source"] = f"(A cell longer than {MAX_CELL_SOURCE:,} characters was cut.)"
            cell.pop("attachments", None)


def score_output(score: float) -> dict:
    return {"output_type": "execute_result", "execution_count": None, "metadata": {},
            "data": {"text/plain": repr(float(score))}}


def failed_cell(reason: str) -> dict:
    return {"output_type": "error", "ename": "CellFailure", "evalue": reason,
            "traceback": [f"This cell did not finish: {reason}."]}


def output_size(outputs: list[dict]) -> int:
    """Characters of an output list's text and data, roughly what it adds to the notebook."""
    size = 0
    for output in outputs:
        for value in [output.get("text", ""), output.get("evalue", ""), *output.get("traceback", []),
                      *output.get("data", {}).values()]:
            size += len(value)
    return size


def sanitize_outputs(outputs: list) -> list[dict]:
    """The sandbox's outputs of a learner's cell, reduced to the shapes nbformat allows (text,
    and PNG images whose data is base64) and to :data:`MAX_CELL_OUTPUT` characters in all
    (what follows is dropped, with a note)."""
    clean = []
    for output in outputs[:50]:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") in ("stdout", "stderr"):
            clean.append(stream(str(output.get("text", ""))[:100_000], output["name"]))
        elif kind in ("display_data", "execute_result") and isinstance(output.get("data"), dict):
            data = {k: v for k, v in output["data"].items()
                    if k in ("text/plain", "image/png") and isinstance(v, str) and len(v) < 2_000_000
                    and (k != "image/png" or BASE64.fullmatch(v))}
            item = {"output_type": kind, "data": data or {"text/plain": ""}, "metadata": {}}
            if kind == "execute_result":
                item["execution_count"] = None
            clean.append(item)
        elif kind == "error":
            traceback = output.get("traceback")
            clean.append({"output_type": "error", "ename": str(output.get("ename", "Error"))[:200],
                          "evalue": str(output.get("evalue", ""))[:4000],
                          "traceback": [str(t)[:20_000] for t in traceback[:5]] if isinstance(traceback, list) else []})
    kept, size = [], 0
    for output in clean:
        size += output_size([output])
        if size > MAX_CELL_OUTPUT:
            kept.append(stream(f"\n... (more outputs than {MAX_CELL_OUTPUT:,} characters were not kept)\n"))
            break
        kept.append(output)
    return kept
