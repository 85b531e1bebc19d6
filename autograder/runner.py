"""Run one part's checks with pytest against a learner's object and score the result.

Each graded part of an assignment has a module of checks in ``autograder/checks/``
(part ``gd-step`` lives in ``checks/gd_step.py``). A check is a pytest test named
``check_*`` that asks for the fixture ``submission`` (the learner's function or class)
and, when it wants them, ``seed``, ``dtype`` and ``device``, which this module
parametrizes. ``@pytest.mark.weight(n)`` sets a check's share of the part's points.

A check passes when every one of its cases passes; skipped cases (CUDA without a GPU)
do not count. Nothing here writes to stderr: nbgrader scores a test cell that does so
as zero, even when its checks pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from .feedback import Mismatch, SubmissionError
from .probe import Local, Submission

CHECKS_DIR = Path(__file__).parent / "checks"
WIDTH = 88
REPORT_MIMETYPE = "application/vnd.gd2adam.report+json"
DTYPES = (torch.float32, torch.float64)


class GraderError(RuntimeError):
    """The grader itself failed (a bug in a check, not in the submission)."""


def known_parts() -> list[str]:
    """The names of every graded part the package can check."""
    return sorted(
        p.stem.replace("_", "-")
        for p in CHECKS_DIR.glob("*.py")
        if not p.name.startswith("_")
    )


@dataclasses.dataclass
class CheckResult:
    name: str
    title: str
    weight: float
    status: str  # "passed", "failed" or "skipped"
    message: str = ""
    case: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Report:
    """The outcome of grading one part: the score and a line per check."""

    part: str
    points: float
    earned: float
    checks: list[CheckResult]
    #: Which of a test cell's grade() calls this is, in feedback (see autograder.judge).
    label: str = ""

    def as_text(self, width: int = WIDTH) -> str:
        def detail(text: str) -> str:
            return textwrap.fill(text, width, initial_indent=" " * 8, subsequent_indent=" " * 8,
                                 break_long_words=False, break_on_hyphens=False)

        lines = [f"{self.part}: {self.earned:g} / {self.points:g} points" + (f" ({self.label})" if self.label else "")]
        messages = {check.message for check in self.checks}
        if len(self.checks) > 1 and all(c.status == "failed" for c in self.checks) and len(messages) == 1:
            # One cause fails everything (typically the unfilled stub): say it once.
            lines += [f"  FAIL  all {len(self.checks)} checks", detail(messages.pop())]
            return "\n".join(lines)
        for check in self.checks:
            mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[check.status]
            line = f"  {mark}  {check.title}"
            if check.status == "failed":
                lines += [line + (f" [{check.case}]" if check.case else ""), detail(check.message)]
            elif check.status == "skipped":
                lines.append(f"{line} ({check.message})")
            else:
                lines.append(line)
            lines.extend(detail(f"note: {note}") for note in check.notes)
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.as_text(), REPORT_MIMETYPE: self.as_dict()}


def _case_label(item, seeds: list[int]) -> str:
    """Name a case by its position ("case 2"), never by its seed: hidden tests' seeds
    stay hidden even in feedback."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    parts = []
    for key, value in params.items():
        if key == "seed":
            parts.append(f"case {seeds.index(value) + 1}")
        elif isinstance(value, torch.dtype):
            parts.append(str(value).replace("torch.", ""))
        else:
            parts.append(str(value))
    return ", ".join(parts)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].rstrip(".") if text and text.strip() else ""


class _Plugin:
    """Feeds the submission to the checks and records each case's outcome."""

    def __init__(self, submission, seeds):
        self._submission = submission
        self._seeds = list(seeds)
        self.cases: list[dict] = []

    @pytest.fixture
    def submission(self):
        return self._submission

    def pytest_configure(self, config):
        # Each failure is read from its exception (see _record). pytest's own long report
        # of it, never shown, formats source and the repr of every argument: ~40 ms a
        # failed case, most of the time a failing submission took to grade. (The option
        # belongs to the terminal plugin, which is off.)
        config.option.tbstyle = "native"

    def pytest_generate_tests(self, metafunc):
        if "seed" in metafunc.fixturenames:
            metafunc.parametrize("seed", self._seeds)
        if "dtype" in metafunc.fixturenames:
            metafunc.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
        if "device" in metafunc.fixturenames:
            no_gpu = pytest.mark.skipif(
                not torch.cuda.is_available(), reason="no CUDA device here; checked on the CPU only"
            )
            metafunc.parametrize("device", ["cpu", pytest.param("cuda", marks=no_gpu)])

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._record(item, call, report)

    def _record(self, item, call, report):
        function = getattr(item, "function", None)
        marker = item.get_closest_marker("weight")
        case = {
            "name": getattr(item, "originalname", item.name),
            "title": _first_line(getattr(function, "__doc__", None)) or item.name,
            "weight": float(marker.args[0]) if marker else 1.0,
            "case": _case_label(item, self._seeds),
            "status": report.outcome,
            "message": "",
        }
        error = call.excinfo.value if call.excinfo is not None else None
        if report.skipped:
            case["message"] = str(getattr(error, "msg", "") or "skipped")
        elif report.failed:
            if isinstance(error, (Mismatch, SubmissionError)):
                case["message"] = str(error)
            elif error is not None:
                case["message"] = (
                    f"the check stopped on {type(error).__name__}: {error}. Check that your "
                    "code returns what the exercise asks for (types, shapes, devices)."
                )
            else:
                case["message"] = "failed"
        self.cases.append(case)


def _summarise(cases: list[dict]) -> list[CheckResult]:
    """One result per check from its cases.

    A check fails when any CPU case fails. CUDA cases run only where a GPU is present;
    so that a grade does not depend on the grading machine, their failures are reported
    as notes and never cost points. Of several failing cases, the message shown is the
    first that names a likely mistake, else the first.
    """
    by_name: dict[str, CheckResult] = {}
    skips: dict[str, dict[str, int]] = {}
    for case in cases:
        result = by_name.setdefault(
            case["name"], CheckResult(case["name"], case["title"], case["weight"], "skipped")
        )
        on_gpu = case["case"].endswith("cuda")
        if case["status"] == "failed" and on_gpu:
            note = f"fails on CUDA [{case['case']}] (not scored): {case['message']}"
            if not any(n.startswith("fails on CUDA") for n in result.notes):
                result.notes.append(note)
            if result.status == "skipped":
                result.status = "passed"
        elif case["status"] == "failed":
            names_mistake = "Likely mistake" in case["message"]
            if result.status != "failed" or (names_mistake and "Likely mistake" not in result.message):
                result.status, result.message, result.case = "failed", case["message"], case["case"]
        elif case["status"] == "passed" and result.status == "skipped":
            result.status = "passed"
        elif case["status"] == "skipped":
            reasons = skips.setdefault(case["name"], {})
            reasons[case["message"]] = reasons.get(case["message"], 0) + 1
            if result.status == "skipped":
                result.message = case["message"]
    for name, reasons in skips.items():
        if by_name[name].status != "skipped":
            by_name[name].notes += [
                f"{count} case{'s' if count > 1 else ''} skipped: {reason}"
                for reason, count in reasons.items()
            ]
    return list(by_name.values())


@contextlib.contextmanager
def _quiet():
    """Keep stdout and stderr (Python's and file descriptor 2's) out of the cell."""
    sink = io.StringIO()
    with tempfile.TemporaryFile() as fd2_sink:
        saved_fd2 = None
        try:
            sys.stderr.flush()
            saved_fd2 = os.dup(2)
            os.dup2(fd2_sink.fileno(), 2)
        except (OSError, AttributeError, ValueError):
            saved_fd2 = None
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                    contextlib.redirect_stderr(sink):
                warnings.simplefilter("ignore")
                yield sink
        finally:
            if saved_fd2 is not None:
                os.dup2(saved_fd2, 2)
                os.close(saved_fd2)


def run_checks(part: str, submission, *, points: float, seed: int = 0, cases: int = 2) -> Report:
    """Run part ``part``'s checks against ``submission`` and return the scored report.

    ``submission`` is the learner's object itself (checked in this process) or a
    :class:`~autograder.probe.Submission` handle, such as one for code running in a
    sandbox (:mod:`autograder.isolation`).
    """
    module = CHECKS_DIR / (part.replace("-", "_") + ".py")
    if part not in known_parts():
        raise ValueError(f"unknown part {part!r}; the parts are: {', '.join(known_parts())}")
    if not isinstance(submission, Submission):
        submission = Local(submission)
    plugin = _Plugin(submission, range(seed, seed + max(1, cases)))
    args = [
        str(module),
        "-c", str(CHECKS_DIR / "pytest.ini"),
        "--rootdir", str(CHECKS_DIR),
        "--import-mode=importlib",
        "-p", "no:terminal",
        "-p", "no:cacheprovider",
        "-p", "no:stepwise",
        "-p", "no:faulthandler",
        # Plugins a check never needs; the last one's gc.collect() alone costs ~0.4 s a call.
        "-p", "no:doctest", "-p", "no:junitxml", "-p", "no:pastebin", "-p", "no:logging",
        "-p", "no:warnings", "-p", "no:threadexception", "-p", "no:unraisableexception",
        "--capture=sys",
        "--assert=plain",
    ]
    with _quiet() as sink:
        exit_code = pytest.main(args, plugins=[plugin])
    if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not plugin.cases:
        raise GraderError(
            f"the checks for {part!r} could not run (pytest exit code {int(exit_code)}). "
            f"This is a fault in the grader, not in your code.\n{sink.getvalue()[-2000:]}"
        )
    checks = _summarise(plugin.cases)
    counted = [c for c in checks if c.status != "skipped"]
    total = sum(c.weight for c in counted)
    passed = sum(c.weight for c in counted if c.status == "passed")
    earned = round(points * passed / total, 4) if total else 0.0
    return Report(part=part, points=float(points), earned=earned, checks=checks)


class NotFullMarks(Exception):
    """A part short of its points while nbgrader validates the notebook (the learner's
    Validate button). nbgrader shows a failed test cell's error, and says only "Partial
    credit; passed some but not all of the tests" for a cell that returns a low score, 0
    included; this error's traceback, as IPython shows it, is the grader's report."""

    def __init__(self, report: Report):
        super().__init__(f"{report.earned:g} of {report.points:g} points")
        self.report = report

    def _render_traceback_(self) -> list[str]:
        return [f"This test cell earned {self.report.earned:g} of its {self.report.points:g} points.", "",
                # nbgrader indents it by 4 and cuts its lines at 87 characters.
                *self.report.as_text(width=80).splitlines()]


def grade(part: str, submission, *, points: float, seed: int = 0, cases: int = 2) -> float:
    """Check ``submission`` for part ``part``, show the report, and return the points earned.

    This is what a notebook's test cell calls. nbgrader reads the returned number as the
    cell's partial credit, so it is the last expression of the cell. While nbgrader
    validates the notebook, a part short of its points raises :class:`NotFullMarks`.
    """
    report = run_checks(part, submission, points=points, seed=seed, cases=cases)
    if os.environ.get("NBGRADER_EXECUTION") == "validate" and report.earned < report.points:
        raise NotFullMarks(report)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python, no IPython installed
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(report)
    else:
        print(report.as_text())
    return report.earned


def report_from_output(data: dict) -> Report:
    """Rebuild a :class:`Report` from the JSON a test cell displayed."""
    if isinstance(data, str):
        data = json.loads(data)
    checks = [CheckResult(**c) for c in data["checks"]]
    return Report(part=data["part"], points=data["points"], earned=data["earned"], checks=checks,
                  label=data.get("label", ""))
