"""What a correct answer is, computed independently of any solution notebook.

Two kinds of oracle: float64 transcriptions of the equations as the course states them,
and ``torch.optim`` itself, driven through :func:`replay` so that a learner's optimizer
and PyTorch's see exactly the same parameters, gradients and learning-rate changes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

F64 = torch.float64


def gd_update(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float) -> list[torch.Tensor]:
    """Gradient descent, θ ← θ − η·g, in float64 on the CPU."""
    return [p.detach().to("cpu", F64) - lr * g.detach().to("cpu", F64) for p, g in zip(params, grads)]


def mse_and_grad(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean squared error L(w) = (1/n)‖Xw − y‖² and its gradient (2/n)·Xᵀ(Xw − y), in float64."""
    X, y, w = (t.detach().to("cpu", F64) for t in (X, y, w))
    residual = X @ w - y
    return float(residual.square().mean()), (2.0 / X.shape[0]) * (X.T @ residual)


def gd_least_squares(
    X: torch.Tensor, y: torch.Tensor, lr: float, num_steps: int, *, accumulate: bool = False
) -> tuple[torch.Tensor, list[float]]:
    """Gradient descent on the mean squared error from w = 0, in float64.

    Returns the final weights and the loss measured *before* each of the ``num_steps``
    updates. ``accumulate=True`` models a loop that never clears ``.grad``, so each step
    uses the sum of all gradients so far (a mistake the checks recognise).
    """
    w = torch.zeros(X.shape[1], dtype=F64)
    total = torch.zeros_like(w)
    losses = []
    for _ in range(num_steps):
        loss, grad = mse_and_grad(X, y, w)
        losses.append(loss)
        total = total + grad if accumulate else grad
        w = w - lr * total
    return w, losses


def mse_hessian_eigenvalues(X: torch.Tensor) -> torch.Tensor:
    """Eigenvalues, ascending, of the Hessian (2/n)·XᵀX of the mean squared error."""
    X = X.detach().to("cpu", F64)
    return torch.linalg.eigvalsh((2.0 / X.shape[0]) * (X.T @ X))


def optimal_step_and_rate(eigenvalues: torch.Tensor) -> tuple[float, float]:
    """For a quadratic with Hessian eigenvalues λ: the step 2/(λ_min + λ_max) that
    minimises gradient descent's worst-case contraction, and that contraction,
    (κ − 1)/(κ + 1) with κ = λ_max/λ_min."""
    lo, hi = float(eigenvalues.min()), float(eigenvalues.max())
    kappa = hi / lo
    return 2.0 / (lo + hi), (kappa - 1.0) / (kappa + 1.0)


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
) -> Schedule:
    """A random :class:`Schedule` for ``seed``: random shapes, per-group learning rates,
    some missing gradients, and each group's learning rate changed once mid-run."""
    gen = torch.Generator().manual_seed(seed)

    def tensor(shape):
        return torch.randn(shape, generator=gen, dtype=F64).to(device=device, dtype=dtype)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))

    shapes = [[random_shape(gen) for _ in range(params_per_group)] for _ in range(groups)]
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
) -> list[list[torch.Tensor]]:
    """Drive an optimizer through ``schedule`` and return every parameter after each step.

    ``make_optimizer`` receives torch-style param groups (``{"params": [...], "lr": ...}``
    plus ``group_options``). Gradients are assigned to ``.grad`` directly, so the run does
    not depend on autograd. With ``reload_at=k``, after step ``k`` the optimizer's
    ``state_dict()`` is loaded into a freshly constructed optimizer that carries on.
    """
    params = [[p.clone() for p in group] for group in schedule.initial]
    options = list(group_options) if group_options else [{} for _ in params]

    def build():
        groups = [
            {"params": group, "lr": lr, **extra}
            for group, lr, extra in zip(params, schedule.lrs, options)
        ]
        return make_optimizer(groups)

    optimizer = build()
    history = []
    for step in range(schedule.steps):
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
            optimizer = build()
            optimizer.load_state_dict(state)
    return history


def sgd_equation(schedule: Schedule) -> list[list[torch.Tensor]]:
    """:func:`replay`'s result for plain gradient descent, from the equation in float64:
    each parameter with a gradient moves by −η·g, with η its group's current rate."""
    params = [[p.detach().to("cpu", F64) for p in group] for group in schedule.initial]
    lrs = list(schedule.lrs)
    history = []
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            lrs[g] = lr
        for group, grads, lr in zip(params, schedule.grads[step], lrs):
            for i, g in enumerate(grads):
                if g is not None:
                    group[i] = group[i] - lr * g.to("cpu", F64)
        history.append([p.clone() for group in params for p in group])
    return history


def first_divergence(history, reference, dtype) -> int | None:
    """The first step at which two :func:`replay` histories disagree, or ``None``."""
    from .feedback import close

    for step, (a, b) in enumerate(zip(history, reference)):
        if not close(a, b, dtype):
            return step
    return None


def is_finite_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, RuntimeError):
        return False
