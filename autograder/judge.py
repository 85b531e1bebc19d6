"""Grade a notebook where none of its code runs: the judge.

The learner's cells run, in order, in a sandbox (:mod:`autograder.sandbox`). The test
cells do not run there, nor does their text: the judge reads each test cell from a
trusted copy (the gradebook's, or the release's), accepts only the course's form of a
test cell (``score = grade(...)``, ``score = min(score, grade(...))``, ``score``), and
runs those ``grade`` calls here, with the checks' probes reaching into the sandbox for
observations (:class:`Remote`). So the checks, the oracles and the score are computed in
a process in which no learner code ever ran, from plain data.

Every test cell gets the same outputs as in a notebook: one report per ``grade`` call
and, last, the score as the cell's value. A cell that hangs or kills the sandbox costs
that cell; the sandbox is started afresh and the cells before it are run again, up to
:attr:`Judge.max_restarts` times.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from collections.abc import Mapping

from . import probe, wire
from .feedback import SubmissionError
from .runner import GraderError, run_checks
from .sandbox import Limits, Sandbox, SandboxFailure

#: Numbers the sandboxes this process starts, so that each runs as a user of its own.
_serials = itertools.count()


@dataclasses.dataclass(frozen=True)
class TrustedTest:
    """A test cell as the course wrote it: its source and its points."""

    source: str
    points: float


#: Each report's label in feedback: a test cell's first grade() call is the one the
#: learner's notebook runs; the later ones are its hidden tests.
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
            calls.append(_grade_call(value))
            continue
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "min"
                and len(value.args) == 2 and not value.keywords and isinstance(value.args[0], ast.Name)
                and value.args[0].id == "score"):
            raise CellFormError("later lines are score = min(score, grade(...))")
        calls.append(_grade_call(value.args[1]))
    return calls


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


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
    ``timeout`` bounds each cell, ``probe_timeout`` each observation of a check.
    """

    max_restarts = 8

    def __init__(self, tests: Mapping[str, TrustedTest], *, timeout: float = 120, probe_timeout: float = 60,
                 limits: Limits = Limits(), slot: int = 0, workdir=None):
        self.tests = dict(tests)
        self.timeout, self.probe_timeout = timeout, probe_timeout
        self.limits, self.slot, self.workdir = limits, slot, workdir
        self.sandbox: Sandbox | None = None
        self.replay: list[str] = []  # cells to run again after a restart
        self.started, self.restarts = False, 0
        self.dirty = False
        self.notes: list[str] = []

    # --- the sandbox ---------------------------------------------------------------

    def _start(self) -> None:
        # Each sandbox runs as a user of its own: processes of the last one, still dying,
        # do not count against the next one's process limit.
        self.sandbox = Sandbox(limits=self.limits, slot=self.slot, workdir=self.workdir, serial=next(_serials))
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
            self.sandbox.request({"op": "exec", "code": code}, self.timeout)

    def request(self, message: dict, timeout: float) -> dict:
        if not self.started:
            self._start()
        elif self.sandbox is None or not self.sandbox.alive or self.dirty:
            self._restart()
        try:
            answer = self.sandbox.request(message, timeout)
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
        """Run a learner's cell in the sandbox; its outputs."""
        try:
            answer = self.request({"op": "exec", "code": source}, self.timeout)
        except SandboxFailure as failure:
            return [{"output_type": "error", "ename": "CellFailure", "evalue": failure.reason,
                     "traceback": [f"This cell did not finish: {failure.reason}."]}]
        self.replay.append(source)
        outputs = answer.get("outputs")
        return sanitize_outputs(outputs if isinstance(outputs, list) else [])

    def grade_cell(self, test: TrustedTest) -> list[dict]:
        """The outputs of a test cell: a report per grade() call, then the score."""
        try:
            calls = grade_calls(test.source)
        except CellFormError as error:
            return [stream(f"This test cell cannot be graded: {error}.\n"),
                    score_output(0.0)]
        outputs, score = [], None
        for index, call in enumerate(calls):
            if call.points != test.points:
                return [stream(f"grade(..., points={call.points:g}) does not match the cell's "
                               f"{test.points:g} points; the cell is not graded.\n"), score_output(0.0)]
            try:
                report = run_checks(call.part, Remote(self, call.name), points=call.points,
                                    seed=call.seed, cases=call.cases)
            except (GraderError, ValueError) as error:
                outputs.append(stream(f"The checks of {call.part} could not run: {error}\n"))
                earned = 0.0
            else:
                report.label = VISIBLE_LABEL if index == 0 else HIDDEN_LABEL
                data = report._repr_mimebundle_()
                outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
                earned = report.earned
            score = earned if score is None else min(score, earned)
        outputs.append(score_output(min(max(score or 0.0, 0.0), test.points)))
        return outputs

    def run(self, notebook) -> list[str]:
        """Run ``notebook`` (nbformat v4, changed in place): every code cell gets its
        outputs. Returns notes on what was unusual."""
        import nbformat

        from .notebook import grade_id, is_test_cell

        judged = set()
        try:
            for cell in notebook.cells:
                if cell.get("cell_type") != "code":
                    continue
                cell["execution_count"] = None
                key = grade_id(cell)
                if is_test_cell(cell):
                    if key in self.tests and key not in judged:
                        judged.add(key)
                        cell["outputs"] = nbformat.from_dict(self.grade_cell(self.tests[key]))
                    else:
                        why = "a second copy of a test cell" if key in judged else "not a test cell of this assignment"
                        self.notes.append(f"a cell marked as a test ({key}) is {why}; it was not run")
                        cell["outputs"] = nbformat.from_dict([stream(f"Not run: {why}.\n")])
                    continue
                cell["outputs"] = nbformat.from_dict(self.execute(cell.get("source", "")))
        finally:
            self.close()
        if self.restarts:
            self.notes.append(f"the sandbox was started afresh {self.restarts} time(s)")
        return self.notes


def score_output(score: float) -> dict:
    return {"output_type": "execute_result", "execution_count": None, "metadata": {},
            "data": {"text/plain": repr(float(score))}}


def sanitize_outputs(outputs: list) -> list[dict]:
    """The sandbox's outputs of a learner's cell, reduced to the shapes nbformat allows."""
    clean = []
    for output in outputs[:50]:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") in ("stdout", "stderr"):
            clean.append(stream(str(output.get("text", ""))[:100_000], output["name"]))
        elif kind in ("display_data", "execute_result") and isinstance(output.get("data"), dict):
            data = {k: v for k, v in output["data"].items()
                    if k in ("text/plain", "image/png") and isinstance(v, str) and len(v) < 2_000_000}
            item = {"output_type": kind, "data": data or {"text/plain": ""}, "metadata": {}}
            if kind == "execute_result":
                item["execution_count"] = None
            clean.append(item)
        elif kind == "error":
            traceback = output.get("traceback")
            clean.append({"output_type": "error", "ename": str(output.get("ename", "Error"))[:200],
                          "evalue": str(output.get("evalue", ""))[:4000],
                          "traceback": [str(t)[:20_000] for t in traceback[:5]] if isinstance(traceback, list) else []})
    return clean
