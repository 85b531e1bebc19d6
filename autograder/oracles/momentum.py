"""Momentum, as equations in float64 on the CPU (chapter 2, assignment 02).

The exponential moving average, the update rule of ``torch.optim.SGD`` with momentum
(dampening, Nesterov, weight decay, maximize) written out step by step, and Polyak's
tuning of heavy-ball momentum on a quadratic. :func:`sgd_momentum_update` also models,
through ``mistake``, the wrong versions of the rule that the checks recognise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .replay import Schedule

F64 = torch.float64

#: The options of ``torch.optim.SGD`` beyond the learning rate, with their defaults.
SGD_DEFAULTS = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                "maximize": False}

#: Wrong versions of the rule that :func:`sgd_momentum_update` can model (``mistake=``).
MISTAKES = (
    "ema",                    # m ← μm + (1 − μ)g from m = 0: the EMA form, not PyTorch's
    "first_step_damped",      # b₁ = (1 − dampening)·g: zero start, or dampening on step 1
    "dampening_ignored",      # b ← μb + g whatever the dampening
    "nesterov_ignored",       # plain momentum when nesterov=True
    "nesterov_from_buffer",   # direction b + μb instead of g + μb
    "nesterov_in_buffer",     # g + μb written back into the buffer, so it compounds
    "nesterov_stale_buffer",  # g + μb with last step's buffer
    "lr_in_buffer",           # Sutskever's form v ← μv + ηg, θ ← θ − v
    "decay_after_momentum",   # weight decay added to the step, not to the gradient
    "decay_ignored",
    "maximize_ignored",
    "maximize_after_decay",   # −(g + λθ): the decay is negated with the gradient
)


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", F64)


def ema(average: torch.Tensor, value: torch.Tensor, beta: float) -> torch.Tensor:
    """One step of the exponential moving average, m ← β·m + (1 − β)·x, in float64."""
    return beta * _f64(average) + (1.0 - beta) * _f64(value)


def sgd_momentum_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    buffer: torch.Tensor | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    mistake: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of ``torch.optim.SGD`` for one tensor, in float64; returns (θ, b).

    g ← (−∇ if maximize else ∇) + λ·θ; if μ ≠ 0: b ← g on the tensor's first step, else
    b ← μ·b + (1 − τ)·g, and the direction is g + μ·b (Nesterov) or b; θ ← θ − η·direction.
    ``buffer`` is ``None`` before the first step. ``mistake`` (one of :data:`MISTAKES`)
    replaces the rule by a known wrong version of it.
    """
    if mistake is not None and mistake not in MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}")
    theta, g = _f64(param), _f64(grad)
    sign = -1.0 if maximize and mistake not in ("maximize_ignored", "maximize_after_decay") else 1.0
    g = sign * g
    decay = weight_decay * theta
    if mistake not in ("decay_after_momentum", "decay_ignored"):
        g = g + decay
    if maximize and mistake == "maximize_after_decay":
        g = -g
    if momentum == 0:
        direction, new_buffer = g, None
    else:
        if mistake == "lr_in_buffer":
            g = lr * g
        if mistake == "ema":
            old = torch.zeros_like(g) if buffer is None else buffer
            new_buffer = momentum * old + (1.0 - momentum) * g
        elif buffer is None:
            damped = (1.0 - dampening) if mistake == "first_step_damped" else 1.0
            new_buffer = damped * g
        else:
            kept = 1.0 if mistake == "dampening_ignored" else 1.0 - dampening
            new_buffer = momentum * buffer + kept * g
        direction = new_buffer
        if nesterov and mistake != "nesterov_ignored":
            if mistake == "nesterov_from_buffer":
                direction = new_buffer + momentum * new_buffer
            elif mistake == "nesterov_in_buffer":
                new_buffer = g + momentum * new_buffer
                direction = new_buffer
            elif mistake == "nesterov_stale_buffer":
                direction = g + momentum * (torch.zeros_like(g) if buffer is None else buffer)
            else:
                direction = g + momentum * new_buffer
    if mistake == "decay_after_momentum":
        direction = direction + decay
    step = direction if mistake == "lr_in_buffer" and momentum != 0 else lr * direction
    return theta - step, new_buffer


def sgd_momentum_equation(
    schedule: Schedule,
    group_options: Sequence[Mapping[str, object]],
    *,
    mistake: str | None = None,
    reset_at: int | None = None,
) -> list[list[torch.Tensor]]:
    """:func:`replay`'s result for ``torch.optim.SGD`` with per-group options
    (``group_options[i]`` holds group i's momentum, dampening, ... as in ``replay``),
    from :func:`sgd_momentum_update` in float64.

    A parameter without a gradient on a step keeps its value and its buffer. With
    ``reset_at=k`` every buffer is forgotten after step k, as by an optimizer whose state
    does not survive ``state_dict()``.
    """
    params = [[_f64(p) for p in group] for group in schedule.initial]
    buffers = [[None for _ in group] for group in params]
    options = [{**SGD_DEFAULTS, **opts} for opts in group_options]
    lrs = list(schedule.lrs)
    history = []
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            lrs[g] = lr
        for group, bufs, grads, lr, opts in zip(params, buffers, schedule.grads[step], lrs, options):
            for i, grad in enumerate(grads):
                if grad is not None:
                    group[i], bufs[i] = sgd_momentum_update(
                        group[i], grad, bufs[i], lr=lr, mistake=mistake, **opts)
        history.append([p.clone() for group in params for p in group])
        if reset_at is not None and step == reset_at:
            buffers = [[None for _ in group] for group in params]
    return history


def polyak_heavy_ball(eigenvalues: torch.Tensor) -> tuple[float, float, float]:
    """Polyak's tuning of heavy-ball momentum for a quadratic with Hessian eigenvalues λ:
    the learning rate 4/(√λ_max + √λ_min)², the momentum ((√κ − 1)/(√κ + 1))², and the
    contraction per step it buys, (√κ − 1)/(√κ + 1), with κ = λ_max/λ_min."""
    lo, hi = float(eigenvalues.min()), float(eigenvalues.max())
    root = math.sqrt(hi / lo)
    rate = (root - 1.0) / (root + 1.0)
    return 4.0 / (math.sqrt(hi) + math.sqrt(lo)) ** 2, rate**2, rate


def heavy_ball_matrix(A: torch.Tensor, lr: float, beta: float) -> torch.Tensor:
    """The linear map of heavy ball on f(θ) = ½ θᵀAθ, acting on the pair (θ_t, θ_{t−1}):
    θ_{t+1} = ((1 + β)I − ηA) θ_t − β θ_{t−1}. In float64."""
    A = _f64(A)
    eye = torch.eye(A.shape[0], dtype=F64)
    top = torch.cat([(1.0 + beta) * eye - lr * A, -beta * eye], dim=1)
    bottom = torch.cat([eye, torch.zeros_like(eye)], dim=1)
    return torch.cat([top, bottom], dim=0)


def heavy_ball_contraction(A: torch.Tensor, lr: float, beta: float) -> float:
    """The error's asymptotic contraction per step for heavy ball with (lr, beta) on
    f(θ) = ½ θᵀAθ: the spectral radius of :func:`heavy_ball_matrix`."""
    return float(torch.linalg.eigvals(heavy_ball_matrix(A, lr, beta)).abs().max())
