"""Scripted optimisation runs: the same parameters, gradients and learning-rate changes
fed to a learner's optimizer and to ``torch.optim``, step for step.

Every optimizer assignment uses these: :func:`make_schedule` draws a random run,
:func:`replay` drives any ``torch.optim.Optimizer`` through it, and
:func:`first_divergence` finds the first step where two runs disagree.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

from .. import wire

F64 = torch.float64


@wire.record
@dataclasses.dataclass
class Schedule:
    """A scripted optimisation run: initial parameters per group, each step's gradients
    (``None`` where a parameter gets no gradient that step), and learning-rate changes."""

    initial: list[list[torch.Tensor]]
    lrs: list[float]
    grads: list[list[list[torch.Tensor | None]]]
    lr_changes: dict[int, dict[int, float]]

    @property
    def steps(self) -> int:
        return len(self.grads)

    def with_lr(self, *, factor: float | None = None, fixed: float | None = None) -> "Schedule":
        """The same run with every learning rate multiplied by ``factor`` or set to ``fixed``."""
        def new(lr):
            return fixed if fixed is not None else factor * lr

        changes = {s: {g: new(lr) for g, lr in c.items()} for s, c in self.lr_changes.items()}
        return Schedule(self.initial, [new(lr) for lr in self.lrs], self.grads, changes)

    def without_lr_changes(self) -> "Schedule":
        """The same run as seen by an optimizer that reads its learning rate only once."""
        return Schedule(self.initial, self.lrs, self.grads, {})


def random_shape(gen: torch.Generator) -> tuple[int, ...]:
    """A parameter shape: a scalar, a vector or a small matrix or 3-d tensor."""
    rank = int(torch.randint(0, 4, (1,), generator=gen))
    return tuple(int(n) for n in torch.randint(1, 6, (rank,), generator=gen))


def make_schedule(
    seed: int,
    dtype: torch.dtype,
    device: str | torch.device,
    *,
    steps: int = 30,
    groups: int = 2,
    params_per_group: int = 3,
    missing_grad_prob: float = 0.2,
    lr_range: tuple[float, float] = (1e-3, 0.3),
    shape: Callable[[torch.Generator], tuple[int, ...]] = random_shape,
) -> Schedule:
    """A random :class:`Schedule` for ``seed``: random shapes (drawn by ``shape``),
    per-group learning rates, some missing gradients, and each group's learning rate
    changed once mid-run."""
    gen = torch.Generator().manual_seed(seed)

    def tensor(shape):
        return torch.randn(shape, generator=gen, dtype=F64).to(device=device, dtype=dtype)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))

    shapes = [[shape(gen) for _ in range(params_per_group)] for _ in range(groups)]
    initial = [[tensor(s) for s in group] for group in shapes]
    lrs = [uniform(*lr_range) for _ in range(groups)]
    grads = []
    for _ in range(steps):
        step = []
        for group in shapes:
            row = []
            for s in group:
                present = float(torch.rand((), generator=gen)) >= missing_grad_prob
                row.append(tensor(s) if present else None)
            step.append(row)
        grads.append(step)
    changes: dict[int, dict[int, float]] = {}
    for g in range(groups):
        at = int(torch.randint(steps // 3, max(steps // 3 + 1, 2 * steps // 3), (1,), generator=gen))
        changes.setdefault(at, {})[g] = uniform(*lr_range)
    return Schedule(initial, lrs, grads, changes)


def replay(
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
    schedule: Schedule,
    *,
    reload_at: int | None = None,
    group_options: Sequence[dict] | None = None,
    reload_into: Callable[[list[dict]], torch.optim.Optimizer] | None = None,
    add_last_group_at: int | None = None,
) -> list[list[torch.Tensor]]:
    """Drive an optimizer through ``schedule`` and return every parameter after each step.

    ``make_optimizer`` receives torch-style param groups (``{"params": [...], "lr": ...}``
    plus ``group_options``). Gradients are assigned to ``.grad`` directly, so the run does
    not depend on autograd. With ``reload_at=k``, after step ``k`` the optimizer's
    ``state_dict()`` is loaded into a freshly constructed optimizer that carries on: one
    from ``reload_into``, if given (another implementation of the same rule), else from
    ``make_optimizer``. With ``add_last_group_at=k``, the optimizer is built without the
    last group, which joins it through ``add_param_group`` before step ``k`` (its
    parameters stand still until then).
    """
    params = [[p.clone() for p in group] for group in schedule.initial]
    options = list(group_options) if group_options else [{} for _ in params]
    groups = [
        {"params": group, "lr": lr, **extra}
        for group, lr, extra in zip(params, schedule.lrs, options)
    ]

    def build(make=make_optimizer):
        return make([dict(group) for group in groups])

    if add_last_group_at is None:
        optimizer = build()
    else:
        optimizer = make_optimizer([dict(group) for group in groups[:-1]])
    history = []
    for step in range(schedule.steps):
        if step == add_last_group_at:
            optimizer.add_param_group(dict(groups[-1]))
        for g, lr in schedule.lr_changes.get(step, {}).items():
            optimizer.param_groups[g]["lr"] = lr
        optimizer.zero_grad()
        for group, grads in zip(params, schedule.grads[step]):
            for p, g in zip(group, grads):
                p.grad = None if g is None else g.clone()
        optimizer.step()
        history.append([p.detach().clone() for group in params for p in group])
        if reload_at is not None and step == reload_at:
            state = copy.deepcopy(optimizer.state_dict())
            optimizer = build(reload_into or make_optimizer)
            optimizer.load_state_dict(state)
    return history


def first_divergence(history, reference, dtype) -> int | None:
    """The first step at which two :func:`replay` histories disagree, or ``None``."""
    from ..feedback import close

    for step, (a, b) in enumerate(zip(history, reference)):
        if not close(a, b, dtype):
            return step
    return None


def is_finite_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, RuntimeError):
        return False
