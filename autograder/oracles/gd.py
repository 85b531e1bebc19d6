"""Gradient descent, as equations in float64 on the CPU (chapter 1, assignment 01)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .replay import Schedule

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


