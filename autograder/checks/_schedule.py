"""Shared machinery for the checks of learning-rate schedules (assignment 05).

A schedule is compared as a table of learning rates, one row per step and one column
per param group (:func:`autograder.oracles.schedules.lr_history`). :func:`explain_rates`
turns the first row where a learner's table leaves the reference into one sentence,
naming the mistake when a known wrong variant reproduces the learner's table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from autograder.feedback import Mismatch, call_submission, close
from autograder.oracles import schedules

F64 = torch.float64


class Guarded:
    """A learner's scheduler whose ``step`` turns an exception into feedback."""

    def __init__(self, scheduler, name: str, hints: Mapping[str, str]):
        self.scheduler, self.name, self.hints = scheduler, name, hints

    def step(self):
        return call_submission(f"{self.name}.step()", self.scheduler.step, hints=self.hints)

    def state_dict(self):
        return call_submission(f"{self.name}.state_dict()", self.scheduler.state_dict, hints=self.hints)

    def load_state_dict(self, state):
        return call_submission(f"{self.name}.load_state_dict()", self.scheduler.load_state_dict, state,
                               hints=self.hints)


def as_table(rows, what: str) -> torch.Tensor:
    """Learning rates (numbers, or 0-d tensors) as a float64 table; a Mismatch otherwise."""
    try:
        return torch.tensor([[float(v) for v in row] for row in rows], dtype=F64)
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"{what} must be numbers; saw {rows[0]!r:.80}.") from None


def learner_history(
    make: Callable[[torch.optim.Optimizer], object],
    base_lrs: Sequence[float],
    steps: int,
    *,
    name: str,
    hints: Mapping[str, str] = (),
    reload_at: int | None = None,
) -> torch.Tensor:
    """:func:`schedules.lr_history` of the learner's scheduler; ``make(optimizer)`` builds
    it (guarding the learner's call itself), and its methods are guarded here."""
    def build(optimizer):
        return Guarded(make(optimizer), name, hints)

    rows = schedules.lr_history(build, base_lrs, steps, reload_at=reload_at)
    return as_table(rows, "the param groups' learning rates")


def explain_rates(
    seen: torch.Tensor,
    expected: torch.Tensor,
    *,
    reference: str,
    context: str,
    variants: Mapping[str, Callable[[], torch.Tensor]] = (),
    first_step: int = 0,
    identify: torch.Tensor | None = None,
) -> None:
    """Raise :class:`Mismatch` at the first step (row) where ``seen`` leaves ``expected``.

    Rows are steps ``first_step, first_step + 1, ...``; columns are param groups. The
    first variant that reproduces ``identify`` (by default ``seen``) on every row is named
    as the likely mistake: passing the whole run there tells apart mistakes that agree on
    the rows checked.
    """
    if close(seen, expected, F64):
        return
    rows = [i for i in range(min(len(seen), len(expected))) if not close(seen[i], expected[i], F64)]
    if not rows:
        raise Mismatch(f"{context}: expected {len(expected)} learning rates, saw {len(seen)}.")
    row = rows[0]
    group = next(g for g in range(expected.shape[1]) if not close(seen[row, g], expected[row, g], F64))
    where = f"step {first_step + row}" + (f", param group {group}" if expected.shape[1] > 1 else "")
    message = (
        f"{context}: at {where} the learning rate is {float(seen[row, group]):.6g}; "
        f"{reference} gives {float(expected[row, group]):.6g} (they differ by up to "
        f"{float((seen[row] - expected[row]).abs().nan_to_num(float('inf')).max()):.3g})."
    )
    whole = seen if identify is None else identify
    for mistake, compute in dict(variants).items():
        if close(whole, compute(), F64):
            message += f" Likely mistake: {mistake}."
            break
    else:
        message += in_float32(seen, expected)
    raise Mismatch(message)


def in_float32(seen, expected) -> str:
    """" Likely mistake: …" when ``seen`` is ``expected`` to float32's accuracy only, else ""."""
    if not close(torch.as_tensor(seen, dtype=F64), torch.as_tensor(expected, dtype=F64), torch.float32):
        return ""
    return (" Likely mistake: the rates are computed in float32 (a new torch tensor's default dtype: "
            "torch.cos(torch.tensor(...)), say), good to about 7 digits; compute them with Python "
            "floats and math.cos, which are float64.")


def table(rule: Callable[[int, float], float], base_lrs: Sequence[float], steps: Sequence[int]) -> torch.Tensor:
    """``rule(t, base_lr)`` for every step in ``steps`` and every group, as a table."""
    return torch.tensor([[rule(t, lr) for lr in base_lrs] for t in steps], dtype=F64)


def random_base_lrs(gen: torch.Generator, groups: int) -> list[float]:
    """Distinct base learning rates between 1e-3 and 0.5, log-uniform."""
    logs = torch.empty(groups, dtype=F64).uniform_(-3.0, -0.3, generator=gen)
    return [float(10 ** v) for v in logs]


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))
