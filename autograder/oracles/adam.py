"""Adam, as equations in float64 on the CPU (chapter 4, assignment 04).

Kingma & Ba (2015), Algorithm 1, one function per line of it: the two moments are the
same exponential moving average (:func:`ema`) of the gradient and of its square, each
divided by its bias correction (:func:`bias_corrected`), and the step is
θ ← θ − η·m̂/(√v̂ + ε) (:func:`algorithm1_step`). The paper's Section 2 notes an
"efficient" reordering (:func:`efficient_step`) that moves the corrections into the step
size; it is not the same rule, because ε then meets the *uncorrected* √v.

:func:`adam_equation` extends Algorithm 1 to what ``torch.optim.Adam`` and
``torch.optim.AdamW`` do with param groups (weight decay, AMSGrad, maximize), and
:func:`scalar_adam` is the plain-Python training loop with cosine learning-rate decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .replay import Schedule

F64 = torch.float64

#: torch.optim.Adam's defaults (AdamW's differ only in weight_decay = 1e-2).
ADAM_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                     maximize=False)


def ema(average, value, beta: float):
    """The exponential moving average β·average + (1 − β)·value (both moments use it)."""
    return beta * average + (1 - beta) * value


def bias_corrected(average, beta: float, t: int):
    """An average started at zero, divided by 1 − βᵗ so that it is unbiased at step t ≥ 1."""
    return average / (1 - beta ** t)


def algorithm1_step(theta, g, m, v, t: int, *, lr: float, beta1: float, beta2: float, eps: float):
    """One iteration of Algorithm 1 at step t (t = 1 on the first step): returns the new
    (θ, m, v) with m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − η·m̂/(√v̂ + ε)."""
    m = ema(m, g, beta1)
    v = ema(v, g * g, beta2)
    m_hat, v_hat = bias_corrected(m, beta1, t), bias_corrected(v, beta2, t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


def efficient_step(theta, g, m, v, t: int, *, lr: float, beta1: float, beta2: float, eps: float):
    """The paper's "efficient" ordering (Section 2): η_t = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) and
    θ ← θ − η_t·m/(√v + ε). Equal to :func:`algorithm1_step` with ε replaced by
    ε/√(1 − β₂ᵗ), so it differs wherever √v̂ is not much larger than ε."""
    m = ema(m, g, beta1)
    v = ema(v, g * g, beta2)
    lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return theta - lr_t * m / (v.sqrt() + eps), m, v


def algorithm1(
    params: Sequence[torch.Tensor],
    grads: Sequence[Sequence[torch.Tensor]],
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    step=algorithm1_step,
) -> list[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]:
    """Algorithm 1 from m = v = 0 over the gradients ``grads[k]`` of step k + 1, in
    float64: the list of (params, ms, vs) after each step. ``step`` may be
    :func:`efficient_step` to run the paper's reordering instead."""
    theta = [p.detach().to("cpu", F64) for p in params]
    m = [torch.zeros_like(p) for p in theta]
    v = [torch.zeros_like(p) for p in theta]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            theta[i], m[i], v[i] = step(theta[i], g.detach().to("cpu", F64), m[i], v[i], t,
                                        lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        history.append(([p.clone() for p in theta], [x.clone() for x in m], [x.clone() for x in v]))
    return history


def adam_equation(
    schedule: Schedule,
    group_options: Sequence[dict] | None = None,
    *,
    decoupled: bool = False,
    defaults: dict | None = None,
) -> list[list[torch.Tensor]]:
    """:func:`replay`'s result for ``torch.optim.Adam`` (``decoupled=False``) or
    ``torch.optim.AdamW`` (``decoupled=True``), from the equations in float64.

    Each parameter keeps its own step count t, which advances only on steps where it has
    a gradient. Per group: with ``maximize`` the gradient is negated first; weight decay λ
    is either added to the gradient (coupled, L2: g ← g + λθ) or shrinks the parameter
    (decoupled: θ ← θ(1 − ηλ), with η the group's current rate); with ``amsgrad`` the
    denominator uses v_max = max(v_max, v), the running maximum of the *uncorrected*
    second moment, divided by 1 − β₂ᵗ. ``defaults`` are the constructor's keywords
    (:data:`ADAM_DEFAULTS`, with weight_decay = 1e-2 when decoupled).
    """
    base = dict(ADAM_DEFAULTS, weight_decay=1e-2 if decoupled else 0.0)
    base.update(defaults or {})
    options = list(group_options) if group_options else [{} for _ in schedule.initial]
    groups = [dict(base, lr=lr, **extra) for lr, extra in zip(schedule.lrs, options)]
    params = [[p.detach().to("cpu", F64) for p in group] for group in schedule.initial]
    state = [[None for _ in group] for group in params]
    history = []
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            groups[g]["lr"] = lr
        for group, hyper, grads, states in zip(params, groups, schedule.grads[step], state):
            for i, grad in enumerate(grads):
                if grad is None:
                    continue
                if states[i] is None:
                    states[i] = dict(t=0, m=torch.zeros_like(group[i]), v=torch.zeros_like(group[i]),
                                     v_max=torch.zeros_like(group[i]))
                group[i], states[i] = adam_torch_step(group[i], grad.detach().to("cpu", F64),
                                                      states[i], hyper, decoupled=decoupled)
        history.append([p.clone() for group in params for p in group])
    return history


def adam_torch_step(theta, g, state: dict, hyper: dict, *, decoupled: bool):
    """One step of ``torch.optim.Adam``/``AdamW`` for one parameter, in float64: returns
    the new θ and state (t, m, v, v_max). See :func:`adam_equation`."""
    lr, (beta1, beta2), eps, wd = hyper["lr"], hyper["betas"], hyper["eps"], hyper["weight_decay"]
    t = state["t"] + 1
    if hyper["maximize"]:
        g = -g
    if wd != 0 and decoupled:
        theta = theta * (1 - lr * wd)
    elif wd != 0:
        g = g + wd * theta
    m, v = ema(state["m"], g, beta1), ema(state["v"], g * g, beta2)
    v_max = torch.maximum(state["v_max"], v) if hyper["amsgrad"] else state["v_max"]
    v_hat = bias_corrected(v_max if hyper["amsgrad"] else v, beta2, t)
    theta = theta - lr * bias_corrected(m, beta1, t) / (v_hat.sqrt() + eps)
    return theta, dict(t=t, m=m, v=v, v_max=v_max)


def cosine_decay(lr: float, t: int, num_steps: int) -> float:
    """The cosine schedule η_t = η·½(1 + cos(π·t/T)) at step t = 0, 1, …, T − 1."""
    return lr * 0.5 * (1 + math.cos(math.pi * t / num_steps))


def scalar_adam(
    grad_fn: Callable[[list[float]], Sequence[float]],
    params: Sequence[float],
    num_steps: int,
    *,
    lr: float = 1e-2,
    beta1: float = 0.9,
    beta2: float = 0.95,
    eps: float = 1e-8,
) -> list[list[float]]:
    """Adam on plain Python floats with cosine decay: at step t = 0, …, T − 1 the gradient
    is taken at the current parameters, the moments are corrected with t + 1 (their step
    number), and the rate is :func:`cosine_decay`. Returns the parameters after each step."""
    theta = [float(p) for p in params]
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    history = []
    for t in range(num_steps):
        lr_t = cosine_decay(lr, t, num_steps)
        grads = [float(g) for g in grad_fn(list(theta))]
        for i, g in enumerate(grads):
            m[i], v[i] = ema(m[i], g, beta1), ema(v[i], g * g, beta2)
            m_hat, v_hat = bias_corrected(m[i], beta1, t + 1), bias_corrected(v[i], beta2, t + 1)
            theta[i] -= lr_t * m_hat / (math.sqrt(v_hat) + eps)
        history.append(list(theta))
    return history


def torch_scalar_adam(
    grad_fn: Callable[[list[float]], Sequence[float]],
    params: Sequence[float],
    num_steps: int,
    *,
    lr: float = 1e-2,
    beta1: float = 0.9,
    beta2: float = 0.95,
    eps: float = 1e-8,
) -> torch.Tensor:
    """What :func:`scalar_adam` computes, by ``torch.optim.Adam`` and
    ``torch.optim.lr_scheduler.LambdaLR`` with the factor ½(1 + cos(π·t/T)), in float64:
    the parameters after each step, as a (num_steps × len(params)) tensor."""
    p = torch.tensor([float(x) for x in params], dtype=F64)
    optimizer = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    cosine = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / num_steps)))
    history = []
    for _ in range(num_steps):
        p.grad = torch.tensor([float(g) for g in grad_fn(p.tolist())], dtype=F64)
        optimizer.step()
        cosine.step()
        history.append(p.clone())
    return torch.stack(history)
