"""Failures that explain themselves.

A check that fails raises :class:`Mismatch` with one sentence for the learner: what was
expected, what was seen and, when the result matches a known wrong variant of the rule,
the likely mistake. :func:`expect_close` does the comparing and the recognising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

#: Tolerances for comparing a learner's result with a float64 oracle, by result dtype.
#: float32 leaves room for rounding accumulated over tens of steps; float64 does not.
TOLERANCES = {
    torch.float64: dict(rtol=1e-9, atol=1e-11),
    torch.float32: dict(rtol=2e-5, atol=1e-6),
    torch.float16: dict(rtol=2e-3, atol=1e-4),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3),
}


class Mismatch(AssertionError):
    """A check failed; the message is written for the learner."""


class SubmissionError(Exception):
    """The learner's code raised; carries a message naming the call and the error."""


def _as_list(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return list(value)


def close(actual, expected, dtype: torch.dtype | None = None) -> bool:
    """Whether two tensors (or equal-length sequences of tensors) agree within tolerance.

    Comparison happens in float64 on the CPU, at the tolerance of ``dtype`` (by default
    the dtype of the first actual tensor).
    """
    try:
        actual, expected = _as_list(actual), _as_list(expected)
    except TypeError:
        return False
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected):
        if not isinstance(a, torch.Tensor):
            try:
                a = torch.as_tensor(a, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError):
                return False
        e = torch.as_tensor(e)
        if a.shape != e.shape:
            return False
        tol = TOLERANCES.get(dtype or a.dtype, TOLERANCES[torch.float32])
        a64 = a.detach().to("cpu", torch.float64)
        e64 = e.detach().to("cpu", torch.float64)
        if not torch.allclose(a64, e64, rtol=tol["rtol"], atol=tol["atol"], equal_nan=False):
            return False
    return True


def first_difference(actual, expected) -> str:
    """Where two equal-length lists of same-shaped tensors first differ, and by how much
    at most (for a message whose shown values may round to the same digits)."""
    try:
        actual, expected = _as_list(actual), _as_list(expected)
    except TypeError:
        return ""
    if len(actual) != len(expected):
        return f"{len(actual)} values where {len(expected)} were expected"
    for index, (a, e) in enumerate(zip(actual, expected)):
        if not isinstance(a, torch.Tensor) or a.shape != torch.as_tensor(e).shape:
            return f"item {index} has the wrong type or shape" if len(actual) > 1 else ""
        gap = (a.detach().to("cpu", torch.float64) - torch.as_tensor(e).detach().to("cpu", torch.float64)).abs()
        if gap.numel() and not bool((gap == 0).all()):
            largest = float(gap.nan_to_num(float("inf")).max())
            item = f"item {index}: " if len(actual) > 1 else ""
            return f"{item}largest difference {largest:.3g}"
    return ""


def describe(value, limit: int = 3) -> str:
    """A short, readable rendering of a tensor, number or sequence for a message."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu", torch.float64).flatten()
        shown = ", ".join(f"{x:.6g}" for x in flat[:limit].tolist())
        more = ", ..." if flat.numel() > limit else ""
        shape = "scalar" if value.dim() == 0 else "shape " + "x".join(map(str, value.shape))
        return f"[{shown}{more}] ({shape})"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return describe(value[0], limit) + (f" and {len(value) - 1} more" if len(value) > 1 else "")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        shown = ", ".join(f"{v:.6g}" for v in value[:limit])
        more = ", ..." if len(value) > limit else ""
        return f"[{shown}{more}] (length {len(value)})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def expect_close(
    actual,
    expected,
    *,
    what: str,
    variants: Mapping[str, Callable[[], object]] | Sequence[tuple[str, Callable[[], object]]] = (),
    dtype: torch.dtype | None = None,
) -> None:
    """Raise :class:`Mismatch` unless ``actual`` matches ``expected``.

    ``variants`` maps a description of a known mistake to a function computing what that
    mistake would produce; the first one that matches ``actual`` is named in the message.
    """
    if close(actual, expected, dtype):
        return
    message = f"{what}: expected {describe(expected)}, saw {describe(actual)}."
    where = first_difference(actual, expected)
    if where:
        message = message[:-1] + f" ({where})."
    items = variants.items() if isinstance(variants, Mapping) else variants
    for mistake, compute in items:
        if close(actual, compute(), dtype):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


def builtin_optimizer_classes() -> tuple[type, ...]:
    """Every optimizer class torch.optim defines (not the base class)."""
    return tuple(
        cls for cls in vars(torch.optim).values()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    )


class no_builtin_optimizers:
    """While active, constructing any torch.optim optimizer, or a subclass of one, raises:
    the exercise asks for the learner's own update, not PyTorch's. (The learner's own
    subclasses of ``torch.optim.Optimizer`` are unaffected.) It runs where the learner's
    code runs, which can undo it: the defence that holds is the judge's reading of the
    code (:mod:`autograder.borrowing`)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.original = torch.optim.Optimizer.__init__
        builtin, name, original = builtin_optimizer_classes(), self.name, self.original

        def guarded(optimizer, *args, **kwargs):
            if isinstance(optimizer, builtin):
                raise SubmissionError(
                    f"{name} uses torch.optim.{type(optimizer).__name__}: the exercise asks for "
                    "your own update, written with tensor operations."
                )
            return original(optimizer, *args, **kwargs)

        torch.optim.Optimizer.__init__ = guarded
        return self

    def __exit__(self, *exc):
        torch.optim.Optimizer.__init__ = self.original


def call_submission(name: str, function, *args, hints: Mapping[str, str] = (), **kwargs):
    """Call the learner's ``function``; turn an exception into a :class:`SubmissionError`.

    ``hints`` maps a fragment of an error message to advice shown with it.
    """
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise SubmissionError(
            f"{name} raised NotImplementedError: replace `raise NotImplementedError()` "
            "with your code and run the cell again."
        ) from None
    except Exception as error:  # the learner's code may raise anything
        text = f"{type(error).__name__}: {error}".strip().rstrip(".")
        if len(text) > 300:
            text = text[:297] + "..."
        message = f"{name} raised {text}."
        for fragment, advice in dict(hints).items():
            if fragment in str(error):
                message += f" {advice}"
                break
        raise SubmissionError(message) from None
