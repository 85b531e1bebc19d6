"""Probes: the only code of a check that touches the learner's code.

A check is split in two. Its *probe*, a function decorated with :func:`probe`, runs where
the learner's code lives: it receives the learner's object (function or class) and plain
arguments, calls the learner's code, and returns what it observed as plain data
(:mod:`autograder.wire`). The rest of the check, the oracles, the comparisons and the
message, runs on that data alone. So the same check can judge

- a learner's object in the same process (:class:`Local`: a notebook's test cell, giving
  instant feedback), and
- a learner's code running in a sandboxed process of its own (:class:`Remote`, see
  :mod:`autograder.isolation`), where the judging process never runs any of it.

A probe is called as ``observe(submission, *args)``: ``submission`` is the check's
fixture, a :class:`Submission` handle, which is all a check ever sees of the learner's
object. Arguments and results always travel through :func:`autograder.wire.roundtrip`,
also in-process, so both ways behave alike: the probe works on copies of the check's
data, and the check sees plain values, never the learner's objects.

A probe may raise :class:`~autograder.feedback.SubmissionError` or
:class:`~autograder.feedback.Mismatch`; the check sees the same exception. Any other
exception reaches the check as an exception of the same name and message.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from . import wire
from .feedback import Mismatch, SubmissionError

PACKAGE = Path(__file__).resolve().parent


class Submission:
    """What a check holds of a learner's object: a name, and a way to run probes on it."""

    def __init__(self, name: str):
        self.name = name

    def run(self, function, args: tuple, kwargs: dict):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<the learner's {self.name}>"

    def __getattr__(self, attribute):
        # Reading the learner's object outside a probe would judge it where it lives.
        raise AttributeError(
            f"a check read {attribute!r} of the learner's {self.__dict__.get('name', 'object')} "
            "outside a probe; checks see learner objects only through probes"
        )


class Local(Submission):
    """A learner's object in this process (a notebook's own test cells)."""

    def __init__(self, obj, name: str | None = None):
        super().__init__(name or str(getattr(obj, "__name__", type(obj).__name__)))
        self.obj = obj

    def run(self, function, args: tuple, kwargs: dict):
        args, kwargs = wire.roundtrip((tuple(args), dict(kwargs)))
        return wire.roundtrip(function(self.obj, *args, **kwargs))


def probe(function):
    """Make ``function(learner, *args, **kwargs)`` a probe, called as
    ``function(submission, *args, **kwargs)`` with the check's :class:`Submission`."""

    @functools.wraps(function)
    def call(submission, *args, **kwargs):
        if not isinstance(submission, Submission):
            submission = Local(submission)
        return submission.run(function, args, kwargs)

    call.is_probe = True
    return call


def address(function) -> tuple[str, str]:
    """The module and qualified name under which a sandbox finds probe ``function``."""
    path = Path(function.__code__.co_filename).resolve()
    relative = path.relative_to(PACKAGE).with_suffix("")
    return ".".join((PACKAGE.name, *relative.parts)), function.__qualname__


def resolve(module: str, qualname: str):
    """The probe function at ``address`` (its undecorated body)."""
    import importlib

    if not re.fullmatch(r"autograder(\.[A-Za-z_]\w*)+", module) or not re.fullmatch(r"[A-Za-z_][\w.]*", qualname):
        raise LookupError(f"no probe {module}:{qualname}")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not getattr(target, "is_probe", False):
        raise LookupError(f"{module}:{qualname} is not a probe")
    return target.__wrapped__


#: Exceptions a probe may raise that keep their own type on the judging side.
KEPT = {cls.__name__: cls for cls in (Mismatch, SubmissionError)}


def error_data(error: BaseException) -> dict:
    """A probe's exception as plain data."""
    name = type(error).__name__
    return {"type": name if re.fullmatch(r"\w{1,60}", name) else "Exception",
            "message": str(error)[:4000]}


def rebuild_error(data) -> Exception:
    """The exception :func:`error_data` described, for the check to see."""
    name = data.get("type") if isinstance(data, dict) else None
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(name, str) or not re.fullmatch(r"\w{1,60}", name) or not isinstance(message, str):
        return SubmissionError("the learner's process sent back a malformed error")
    message = message if len(message) <= 4000 else message[:4000] + " ... (cut)"
    if name in KEPT:
        return KEPT[name](message)
    # Same name and message as in-process, but never a type the checks catch on purpose.
    return type(name, (Exception,), {})(message)
