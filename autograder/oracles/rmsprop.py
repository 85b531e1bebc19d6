"""Adagrad and RMSprop, as equations in float64 on the CPU (chapter 3, assignment 03).

Each rule is written out the way ``torch.optim.Adagrad`` and ``torch.optim.RMSprop``
define it, one small function per equation, so that the checks can compare a learner's
code with PyTorch and with the mathematics independently:

* Adagrad: G ← G + g², θ ← θ − η_t · g / (√G + ε), with η_t = η / (1 + (t − 1)·lr_decay)
  and G₀ = initial_accumulator_value;
* RMSprop: v ← α·v + (1 − α)·g², θ ← θ − η · g / (√v + ε); centered, ḡ ← α·ḡ + (1 − α)·g
  and √(v − ḡ²) in place of √v; with momentum, b ← μ·b + g / (√ṽ + ε) and θ ← θ − η·b;
  weight decay adds λ·θ to g before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from .replay import Schedule

F64 = torch.float64

#: torch.optim.RMSprop's defaults for the options that change the rule.
RMSPROP_DEFAULTS = dict(alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)
#: torch.optim.Adagrad's defaults for the options that change the rule.
ADAGRAD_DEFAULTS = dict(eps=1e-10, weight_decay=0.0, lr_decay=0.0, initial_accumulator_value=0.0)


def as_f64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a float64 CPU tensor outside autograd (itself when it already is one)."""
    if t.dtype == F64 and t.device.type == "cpu" and not t.requires_grad:
        return t
    return t.detach().to("cpu", F64)


def accumulate_squares(total: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Adagrad's accumulator, G_t = G_{t−1} + g_t ⊙ g_t."""
    return total + grad * grad


def ema(average: torch.Tensor, value: torch.Tensor, alpha: float) -> torch.Tensor:
    """The exponential moving average, α·average + (1 − α)·value."""
    return alpha * average + (1.0 - alpha) * value


def root_plus_eps(second_moment: torch.Tensor, eps: float) -> torch.Tensor:
    """The denominator √v + ε, with ε outside the square root as in PyTorch."""
    return second_moment.sqrt() + eps


def adagrad_lr(lr: float, step: int, lr_decay: float) -> float:
    """torch.optim.Adagrad's decayed rate at step t (counted from 1): η / (1 + (t − 1)·lr_decay)."""
    return lr / (1.0 + (step - 1) * lr_decay)


def adagrad_update(
    param: torch.Tensor, grad: torch.Tensor, total: torch.Tensor, lr: float, eps: float = 1e-10,
    *, weight_decay: float = 0.0, lr_decay: float = 0.0, step: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adagrad step for one tensor: returns the new (θ, G)."""
    param, grad, total = as_f64(param), as_f64(grad), as_f64(total)
    if weight_decay:
        grad = grad + weight_decay * param
    total = accumulate_squares(total, grad)
    return param - adagrad_lr(lr, step, lr_decay) * grad / root_plus_eps(total, eps), total


def rmsprop_update(
    param: torch.Tensor, grad: torch.Tensor, state: Mapping[str, torch.Tensor], lr: float, *,
    alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
    centered: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step of torch.optim.RMSprop for one tensor: returns the new θ and state.

    ``state`` holds ``square_avg`` and, when used, ``grad_avg`` and ``momentum_buffer``
    (missing entries start at zero)."""
    param, grad = as_f64(param), as_f64(grad)
    zeros = torch.zeros_like(param)
    if weight_decay:
        grad = grad + weight_decay * param
    new = {"square_avg": ema(as_f64(state.get("square_avg", zeros)), grad * grad, alpha)}
    second_moment = new["square_avg"]
    if centered:
        new["grad_avg"] = ema(as_f64(state.get("grad_avg", zeros)), grad, alpha)
        second_moment = second_moment - new["grad_avg"] ** 2
    scaled = grad / root_plus_eps(second_moment, eps)
    if momentum > 0:
        new["momentum_buffer"] = momentum * as_f64(state.get("momentum_buffer", zeros)) + scaled
        return param - lr * new["momentum_buffer"], new
    return param - lr * scaled, new


#: The signature of a per-tensor RMSprop rule: (θ, g, state, lr, **options) -> (θ, state).
RMSpropRule = Callable[..., tuple[torch.Tensor, dict]]


def rmsprop_equation(
    schedule: Schedule, group_options: Sequence[Mapping] | None = None,
    rule: RMSpropRule = rmsprop_update,
) -> list[list[torch.Tensor]]:
    """:func:`replay`'s result for torch.optim.RMSprop, from the equations in float64.

    ``group_options`` gives each group's options (torch's defaults otherwise); a parameter
    without a gradient neither moves nor changes its state. ``rule`` replaces the
    per-tensor update (the checks pass models of known mistakes)."""
    options = [dict(RMSPROP_DEFAULTS, **(o or {})) for o in (group_options or [{}] * len(schedule.initial))]
    params = [[as_f64(p) for p in group] for group in schedule.initial]
    states = [[{} for _ in group] for group in params]
    lrs = list(schedule.lrs)
    history = []
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            lrs[g] = lr
        for group, grads, state, lr, opts in zip(params, schedule.grads[step], states, lrs, options):
            for i, grad in enumerate(grads):
                if grad is not None:
                    group[i], state[i] = rule(group[i], grad, state[i], lr, **opts)
        history.append([p.clone() for group in params for p in group])
    return history


def adagrad_equation(
    schedule: Schedule, group_options: Sequence[Mapping] | None = None, *,
    initial_accumulator_value: float = 0.0,
) -> list[list[torch.Tensor]]:
    """:func:`replay`'s result for torch.optim.Adagrad, from the equations in float64.

    Each parameter counts its own steps (only those on which it had a gradient), which
    is what ``lr_decay`` is applied to, as in PyTorch. Like PyTorch, every sum starts at
    the constructor's ``initial_accumulator_value``: torch.optim.Adagrad fills its state
    when it is built, and a value given in a param group is stored but never used."""
    options = [dict(ADAGRAD_DEFAULTS, **(o or {})) for o in (group_options or [{}] * len(schedule.initial))]
    params = [[as_f64(p) for p in group] for group in schedule.initial]
    totals = [[torch.full_like(p, float(initial_accumulator_value)) for p in group] for group in params]
    counts = [[0 for _ in group] for group in params]
    lrs = list(schedule.lrs)
    history = []
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            lrs[g] = lr
        for group, grads, total, count, lr, o in zip(params, schedule.grads[step], totals, counts, lrs, options):
            for i, grad in enumerate(grads):
                if grad is None:
                    continue
                count[i] += 1
                group[i], total[i] = adagrad_update(
                    group[i], grad, total[i], lr, o["eps"], weight_decay=o["weight_decay"],
                    lr_decay=o["lr_decay"], step=count[i],
                )
        history.append([p.clone() for group in params for p in group])
    return history


def functional_run(
    schedule: Schedule, update: Callable[..., tuple[torch.Tensor, object]], **options,
) -> tuple[list[list[torch.Tensor]], list]:
    """A run of a per-tensor rule over the first group of ``schedule``, as a functional
    step (``adagrad_step``, ``rmsprop_step``) driven by the checks would make it: every
    parameter gets its gradient on every step, at the group's current learning rate.

    ``update(θ, g, state, lr, **options)`` returns ``(θ, state)``; the state starts as
    ``None`` (the rule creates it). Returns the parameters after each step and the final
    states."""
    params = [as_f64(p) for p in schedule.initial[0]]
    states: list = [None] * len(params)
    lr = schedule.lrs[0]
    history = []
    for step in range(schedule.steps):
        lr = schedule.lr_changes.get(step, {}).get(0, lr)
        for i, grad in enumerate(schedule.grads[step][0]):
            params[i], states[i] = update(params[i], grad, states[i], lr, **options)
        history.append([p.clone() for p in params])
    return history, states


def adagrad_rule(param, grad, total, lr, *, eps):
    """:func:`adagrad_update` as a :func:`functional_run` rule (G starts at zero)."""
    total = torch.zeros_like(as_f64(param)) if total is None else total
    return adagrad_update(param, grad, total, lr, eps)


def rmsprop_rule(param, grad, square_avg, lr, *, alpha, eps):
    """:func:`rmsprop_update` (no momentum, not centered) as a :func:`functional_run` rule,
    with the running average v as the state."""
    state = {} if square_avg is None else {"square_avg": square_avg}
    param, state = rmsprop_update(param, grad, state, lr, alpha=alpha, eps=eps)
    return param, state["square_avg"]
