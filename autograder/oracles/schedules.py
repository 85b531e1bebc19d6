"""Learning-rate schedules as equations in float64, and runs that drive a scheduler
step by step (chapter 5, assignment 05).

The equations are the course's statement of each schedule: cosine annealing (the
closed form of SGDR without restarts, which ``torch.optim.lr_scheduler.CosineAnnealingLR``
follows past its period too), and linear warmup followed by cosine decay to a floor, as
GPT-style training loops write it. :func:`lr_history` records what any scheduler does to
an optimizer's param groups, so a learner's scheduler and PyTorch's are compared on the
same optimizer, step for step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch

from .replay import Schedule

F64 = torch.float64
#: The problem of assignment 05's training loop (``problems.least_squares`` with these
#: settings): with warmup and cosine decay Adam must end within ``excess`` of the best loss.
TRAINING_TARGET = dict(seed=11, n=500, d=8, noise=1.0, lr=0.05, epochs=20, batch_size=20,
                       warmup_steps=25, excess=1e-4)


def cosine_annealing(step: float, total_steps: float, lr_max: float, lr_min: float = 0.0) -> float:
    """η_t = η_min + ½(η_max − η_min)(1 + cos(π t / T)), for any t ≥ 0.

    There is no clamp: past T the cosine keeps turning, back up to η_max at t = 2T, as
    ``CosineAnnealingLR`` does.
    """
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * step / total_steps))


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """The multiplier of the base learning rate at step t for linear warmup then cosine
    decay (W = ``warmup_steps``, T = ``total_steps``, r = ``min_ratio``)::

        (t + 1) / W                                  for t < W
        r + (1 − r)·½(1 + cos(π (t − W) / (T − W)))  for W ≤ t ≤ T
        r                                            for t > T

    The ramp reaches the peak on the last warmup step; the decay starts from the peak
    and ends at r·lr on step T, where it stays.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step > total_steps:
        return min_ratio
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_reference(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """``torch.optim.lr_scheduler.LambdaLR`` with :func:`warmup_cosine_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, min_ratio)
    )


def torch_cosine(T_max: int, eta_min: float = 0.0) -> Callable[[torch.optim.Optimizer], object]:
    """A factory of ``torch.optim.lr_scheduler.CosineAnnealingLR`` for :func:`lr_history`."""
    return lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max, eta_min=eta_min)


def optimizer_with_groups(base_lrs: Sequence[float], dtype=F64, device="cpu") -> torch.optim.SGD:
    """An SGD optimizer with one small parameter per group, at the given base rates."""
    groups = [{"params": [torch.zeros(2, dtype=dtype, device=device, requires_grad=True)], "lr": lr}
              for lr in base_lrs]
    return torch.optim.SGD(groups, lr=1e-3)


def lr_history(
    make_scheduler: Callable[[torch.optim.Optimizer], object],
    base_lrs: Sequence[float],
    steps: int,
    *,
    reload_at: int | None = None,
) -> list[list[float]]:
    """Each group's learning rate under a scheduler: after construction (the rates the
    first optimizer step uses), then after each of ``steps`` rounds of
    ``optimizer.step(); scheduler.step()``. Returns ``steps + 1`` rows, one rate per group.

    With ``reload_at=k``, after the k-th round the optimizer's and the scheduler's
    ``state_dict()`` are loaded into a new optimizer and scheduler that carry on (the
    scheduler is built before the optimizer's state is loaded, as PyTorch asks).
    """
    optimizer = optimizer_with_groups(base_lrs)
    scheduler = make_scheduler(optimizer)
    rows = [[float(g["lr"]) for g in optimizer.param_groups]]
    for step in range(1, steps + 1):
        optimizer.step()
        scheduler.step()
        rows.append([float(g["lr"]) for g in optimizer.param_groups])
        if reload_at is not None and step == reload_at:
            saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
            optimizer = optimizer_with_groups(base_lrs)
            scheduler = make_scheduler(optimizer)
            optimizer.load_state_dict(saved[0])
            scheduler.load_state_dict(saved[1])
    return rows


def rates(rule: Callable[[int, float], float], base_lrs: Sequence[float], steps: int) -> list[list[float]]:
    """:func:`lr_history`'s rows for a schedule given as ``rule(t, base_lr)``."""
    return [[rule(t, lr) for lr in base_lrs] for t in range(steps + 1)]


def replay_with_scheduler(
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
    make_scheduler: Callable[[torch.optim.Optimizer], object],
    schedule: Schedule,
) -> list[list[torch.Tensor]]:
    """Drive an optimizer and its scheduler through ``schedule`` (its gradients; its
    learning-rate changes are left to the scheduler) and return every parameter after
    each step, with ``scheduler.step()`` after each ``optimizer.step()``."""
    params = [[p.clone() for p in group] for group in schedule.initial]
    optimizer = make_optimizer([{"params": g, "lr": lr} for g, lr in zip(params, schedule.lrs)])
    scheduler = make_scheduler(optimizer)
    history = []
    for step in range(schedule.steps):
        optimizer.zero_grad()
        for group, grads in zip(params, schedule.grads[step]):
            for p, g in zip(group, grads):
                p.grad = None if g is None else g.clone()
        optimizer.step()
        scheduler.step()
        history.append([p.detach().clone() for group in params for p in group])
    return history


def minibatches(X: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The minibatches of one epoch, in order; the last one may be smaller."""
    return list(zip(X.split(batch_size), y.split(batch_size)))


def adam_with_schedule(
    X: torch.Tensor,
    y: torch.Tensor,
    make_scheduler: Callable[[torch.optim.Optimizer, int], object],
    lr: float,
    epochs: int,
    batch_size: int,
) -> tuple[torch.Tensor, list[float]]:
    """``torch.optim.Adam`` (default betas and eps) on the mean squared error of Xw ≈ y,
    from w = 0, in float64 on the CPU: ``epochs`` passes over the minibatches in order,
    the scheduler built as ``make_scheduler(optimizer, total_steps)`` and stepped after
    every optimizer step. Returns the final w and the learning rate of each step."""
    X, y = X.detach().to("cpu", F64), y.detach().to("cpu", F64)
    w = torch.zeros(X.shape[1], dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=lr)
    batches = minibatches(X, y, batch_size)
    scheduler = make_scheduler(optimizer, epochs * len(batches))
    lrs = []
    for _ in range(epochs):
        for xb, yb in batches:
            lrs.append(float(optimizer.param_groups[0]["lr"]))
            optimizer.zero_grad()
            (xb @ w - yb).square().mean().backward()
            optimizer.step()
            scheduler.step()
    return w.detach(), lrs
