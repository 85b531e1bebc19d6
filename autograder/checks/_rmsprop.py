"""Shared machinery for the checks of assignment 03 (Adagrad and RMSprop).

Three things the other checks do not need:

* runs whose gradients differ in scale from tensor to tensor, with an ε large enough to
  matter, so that where ε sits (inside or outside the square root) shows in the result;
* a comparison that scales its tolerance with the size of the tensor compared (an
  RMSprop step moves a parameter by about the learning rate, and a float32 parameter
  that passes near zero keeps the rounding error of its larger neighbours) and that
  treats NaN in a known mistake as part of the mistake (the running average of g
  instead of g² is negative, and its square root NaN);
* models of the known mistakes, as float64 rules built from the oracle's equations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from autograder import oracles
from autograder.feedback import TOLERANCES, Mismatch, call_submission, describe
from autograder.oracles import rmsprop as equations
from autograder.probe import probe

F64 = torch.float64
#: torch.optim.RMSprop's constructor defaults (tests/test_oracles_rmsprop.py checks them).
TORCH_RMSPROP_DEFAULTS = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)
#: Settings torch.optim.RMSprop rejects with ValueError (tests/test_oracles_rmsprop.py checks it).
TORCH_RMSPROP_INVALID = {"lr": -0.1, "eps": -1e-8, "alpha": -0.5, "momentum": -0.9, "weight_decay": -0.01}


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))


def log_uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(uniform(gen, math.log(lo), math.log(hi)))


def scaled_schedule(seed: int, dtype, device, *, scales=(1e-3, 10.0), **options) -> oracles.Schedule:
    """:func:`oracles.make_schedule`, with each parameter's gradients multiplied by its own
    scale, drawn log-uniformly from ``scales``: the per-parameter step sizes of Adagrad
    and RMSprop exist for exactly such problems."""
    schedule = oracles.make_schedule(seed, dtype, device, **options)
    gen = torch.Generator().manual_seed(10_000 + seed)
    factors = [[log_uniform(gen, *scales) for _ in group] for group in schedule.initial]
    grads = [
        [[None if g is None else g * f for g, f in zip(row, row_factors)]
         for row, row_factors in zip(step, factors)]
        for step in schedule.grads
    ]
    return oracles.Schedule(schedule.initial, schedule.lrs, grads, schedule.lr_changes)


def with_zero_gradients(schedule: oracles.Schedule) -> oracles.Schedule:
    """The run as seen by an optimizer that treats a missing gradient as zero."""
    grads = [
        [[torch.zeros_like(p) if g is None else g for g, p in zip(row, initial)]
         for row, initial in zip(step, schedule.initial)]
        for step in schedule.grads
    ]
    return oracles.Schedule(schedule.initial, schedule.lrs, grads, schedule.lr_changes)


# --- comparing runs -------------------------------------------------------------------

def close(actual, expected, dtype) -> bool:
    """Whether two tensors (or equal-length lists) agree: NaN exactly where ``expected``
    has NaN, and elsewhere within ``dtype``'s tolerance relative to each entry and to
    the largest entry of its tensor."""
    if isinstance(actual, torch.Tensor):
        actual, expected = [actual], [expected]
    if len(actual) != len(expected):
        return False
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    for a, e in zip(actual, expected):
        if not isinstance(a, torch.Tensor) or a.shape != e.shape:
            return False
        a, e = a.detach().to("cpu", F64), e.detach().to("cpu", F64)
        nan = torch.isnan(e)
        if not torch.equal(torch.isnan(a), nan):
            return False
        a, e = a[~nan], e[~nan]
        if e.numel() == 0:
            continue
        if not (torch.isfinite(a).all() and torch.isfinite(e).all()):
            if not torch.equal(a, e):
                return False
            continue
        scale = float(e.abs().max())
        if not bool(((a - e).abs() <= tol["atol"] + tol["rtol"] * (e.abs() + scale)).all()):
            return False
    return True


def _stacked(history) -> torch.Tensor | None:
    """A run as one float64 matrix, a row per step; ``None`` if its shapes vary."""
    try:
        return torch.stack([torch.cat([t.detach().to("cpu", F64).flatten() for t in step])
                            for step in history])
    except (RuntimeError, TypeError, AttributeError):
        return None


def first_divergence(history, reference, dtype) -> int | None:
    """The first step at which two runs disagree (as :func:`close` judges), or ``None``."""
    a, e = _stacked(history), _stacked(reference)
    if a is None or e is None or a.shape != e.shape or any(
            len(x) != len(y) or any(s.shape != t.shape for s, t in zip(x, y))
            for x, y in zip(history, reference)):
        # unusual shapes: compare tensor by tensor
        for step, (x, y) in enumerate(zip(history, reference)):
            if not close(x, y, dtype):
                return step
        return None
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    # each tensor's largest entry, at each step, spread over that tensor's columns
    sizes = [t.numel() for t in reference[0]]
    scale = torch.cat([
        block.abs().nan_to_num(0.0, posinf=0.0, neginf=0.0).amax(dim=1, keepdim=True).expand(-1, n)
        for block, n in zip(e.split(sizes, dim=1), sizes)
    ], dim=1) if e.numel() else e
    nan = torch.isnan(e)
    ok = (torch.isnan(a) == nan) & (
        nan | (a == e) | ((a - e).abs() <= tol["atol"] + tol["rtol"] * (e.abs() + scale))
    )
    bad = (~ok.all(dim=1)).nonzero()
    return int(bad[0]) if len(bad) else None


def explain(
    history, expected, schedule: oracles.Schedule, dtype,
    variants: Mapping[str, Callable[[], list]] = (), *, reference: str,
) -> None:
    """Raise :class:`Mismatch` at the first step where ``history`` leaves ``expected``,
    naming the first mistake in ``variants`` whose run ``history`` reproduces."""
    step = first_divergence(history, expected, dtype)
    if step is None:
        return
    seen, wanted = history[step], expected[step]
    index = next(i for i, (a, b) in enumerate(zip(seen, wanted)) if not close(a, b, dtype))
    message = (
        f"after step {step + 1} of {schedule.steps}, parameter {index} is "
        f"{describe(seen[index])}; {reference} gives {describe(wanted[index])}."
    )
    for mistake, compute in dict(variants).items():
        if first_divergence(history, compute(), dtype) is None:
            message += f" Likely mistake: {mistake}."
            break
    else:
        if schedule.lr_changes and step == min(schedule.lr_changes):
            message += (
                " The runs part ways exactly when the learning rate changes: use the "
                "learning rate of the current call or group on every step."
            )
        elif any(torch.isnan(t).any() for t in seen):
            message += " NaN appeared: is a square root taken of a negative number?"
    raise Mismatch(message)


# --- functional steps -----------------------------------------------------------------

@probe
def drive_functional(learner, schedule: oracles.Schedule, *, name: str, hints=None,
                     options: dict | None = None, constant_lr: bool = False):
    """Call the learner's ``step(params, grads, states, lr, **options)`` once per step of
    ``schedule``'s first group (all gradients present), starting from zero states; with
    ``constant_lr`` the first learning rate throughout. Returns the parameters after each
    step and the final states."""
    hints, options = dict(hints or {}), dict(options or {})
    params = [p.clone() for p in schedule.initial[0]]
    states = [torch.zeros_like(p) for p in params]
    lr = schedule.lrs[0]
    history = []
    for step in range(schedule.steps):
        if not constant_lr:
            lr = schedule.lr_changes.get(step, {}).get(0, lr)
        grads = [g.clone() for g in schedule.grads[step][0]]
        call_submission(name, learner, params, grads, states, lr, hints=hints, **options)
        history.append([p.detach().clone() for p in params])
    return history, states


class _ForgetsItsState(torch.optim.RMSprop):
    """torch.optim.RMSprop as an optimizer that keeps its state outside ``self.state``
    behaves: after load_state_dict() the groups are back, the running averages are not."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.state.clear()


def lost_state_after_reload(schedule: oracles.Schedule, options, reload_at: int):
    """The mistake of keeping running averages where ``state_dict()`` does not see them."""
    return {
        "after load_state_dict() the run carries on from empty state: keep every running "
        "average and buffer in `self.state[p]`, the dict of tensors that state_dict() saves": (
            lambda: oracles.replay(lambda groups: _ForgetsItsState(groups, lr=1e-3), schedule,
                                   group_options=options, reload_at=reload_at)
        ),
    }


def sign_and_rate_mistakes(run: Callable[[oracles.Schedule], list], schedule: oracles.Schedule):
    """A flipped sign, an ignored learning rate, and parameters that never moved."""
    return {
        "the sign is flipped (parameters climb the loss)": lambda: run(schedule.with_lr(factor=-1.0)),
        "the learning rate is ignored (as if it were 1)": lambda: run(schedule.with_lr(fixed=1.0)),
        "the parameters did not change: assigning `p = p - ...` rebinds a local name and "
        "leaves the caller's tensor alone; update in place (`p.sub_(...)`, `p.addcdiv_(...)`)":
            lambda: [[p.clone() for p in schedule.initial[0]] for _ in range(schedule.steps)],
    }


# --- models of known mistakes ---------------------------------------------------------

def adagrad_mistake(kind: str):
    """A functional-run rule for Adagrad with one mistake: ``eps_inside``, ``not_kept``
    (the sum is not carried between calls), ``no_sqrt``, ``not_squared`` or ``stale``
    (the step divides by the sum before this step's g² is added)."""

    def rule(param, grad, total, lr, *, eps):
        p, g = equations.as_f64(param), equations.as_f64(grad)
        old = torch.zeros_like(p) if total is None else total
        added = old + (g if kind == "not_squared" else g * g)
        used = {"not_kept": g * g, "stale": old}.get(kind, added)
        if kind == "eps_inside":
            denominator = (used + eps).sqrt()
        elif kind == "no_sqrt":
            denominator = used + eps
        else:
            denominator = used.sqrt() + eps
        return p - lr * g / denominator, added

    return rule


def rmsprop_mistake(kind: str):
    """A rule for torch.optim.RMSprop's options with one mistake (see :data:`RMSPROP_MISTAKES`)."""

    def rule(param, grad, state, lr, *, alpha, eps, weight_decay, momentum, centered):
        p, g = equations.as_f64(param), equations.as_f64(grad)
        zeros = torch.zeros_like(p)
        if weight_decay and kind == "decoupled_decay":
            p = p * (1.0 - lr * weight_decay)
        elif weight_decay and kind not in ("decay_ignored", "decay_after_step"):
            g = g + weight_decay * p
        square = g if kind == "not_squared" else g * g
        old = state.get("square_avg", zeros)
        if kind == "sum":
            v = old + square
        elif kind == "swapped":
            v = equations.ema(old, square, 1.0 - alpha)
        elif kind == "not_kept":
            v = (1.0 - alpha) * square
        else:
            v = equations.ema(old, square, alpha)
        new = {"square_avg": v}
        second = v
        if centered and kind != "centered_ignored":
            mean = equations.ema(state.get("grad_avg", zeros), g, alpha)
            new["grad_avg"] = mean
            second = v - (mean if kind == "mean_not_squared" else mean * mean)
        if kind == "eps_inside":
            denominator = (second + eps).sqrt()
        elif kind == "no_sqrt":
            denominator = second + eps
        else:
            denominator = equations.root_plus_eps(second, eps)
        if momentum > 0 and kind != "momentum_ignored":
            old_buffer = state.get("momentum_buffer", zeros)
            if kind == "momentum_before":
                new["momentum_buffer"] = momentum * old_buffer + g
                step = new["momentum_buffer"] / denominator
            else:
                new["momentum_buffer"] = momentum * old_buffer + g / denominator
                step = new["momentum_buffer"]
        else:
            step = g / denominator
        if weight_decay and kind == "decay_after_step":
            return (p - lr * step) * (1.0 - lr * weight_decay), new
        return p - lr * step, new

    return rule


def functional_rmsprop(rule):
    """An RMSprop rule (:func:`rmsprop_mistake` or the oracle's) as a functional-run rule
    whose state is the running average v alone: no momentum, not centered, no decay."""

    def functional(param, grad, square_avg, lr, *, alpha, eps):
        state = {} if square_avg is None else {"square_avg": square_avg}
        param, state = rule(param, grad, state, lr, alpha=alpha, eps=eps, weight_decay=0.0,
                            momentum=0.0, centered=False)
        return param, state["square_avg"]

    return functional


#: What each modelled RMSprop mistake is called in feedback.
RMSPROP_MISTAKES = {
    "eps_inside": "epsilon is added inside the square root, √(v + ε); PyTorch adds it "
                  "outside, √v + ε",
    "not_squared": "the running average is of the gradient g instead of its square g² "
                   "(v ← αv + (1 − α)g is negative where g is, and its square root NaN)",
    "sum": "the squared gradients are summed, as Adagrad does (v ← v + g²), where "
           "RMSprop keeps their moving average v ← αv + (1 − α)g²",
    "swapped": "alpha and 1 − alpha are swapped: the average must keep α of the old v "
               "and add (1 − α)·g² (v ← αv + (1 − α)g²)",
    "not_kept": "the running average is not carried from step to step (v is rebuilt from "
                "this step's gradient alone); update the state tensor in place",
    "no_sqrt": "the gradient is divided by v + ε instead of √v + ε: the square root is "
               "missing",
    "mean_not_squared": "the centered variance subtracts the mean ḡ instead of its square: "
                        "it is v − ḡ²",
    "centered_ignored": "centered=True is ignored: the square of the mean, ḡ², is never "
                        "subtracted from v",
    "momentum_before": "momentum is applied to the raw gradient before the division "
                       "(b ← μb + g, θ ← θ − η·b/(√v + ε)); PyTorch accumulates the scaled "
                       "step, b ← μb + g/(√v + ε), θ ← θ − η·b",
    "momentum_ignored": "the momentum option is ignored",
    "decoupled_decay": "weight decay is applied after the scaling, straight to the "
                       "parameter (θ ← θ − ηλθ, as AdamW does); torch.optim.RMSprop adds "
                       "λθ to the gradient first, so the decay is scaled and averaged too",
    "decay_after_step": "weight decay is applied after the scaled step, straight to the "
                        "parameter (θ ← θ·(1 − ηλ)); torch.optim.RMSprop adds λθ to the "
                        "gradient first, so the decay is scaled and averaged too",
    "decay_ignored": "the weight_decay option is ignored",
}
