"""Adam in practice as equations (chapter 9, assignment 09): clipping by the global norm,
a dynamic loss scale, Adam on bfloat16 parameters with float32 master weights, and the
schedules large models train with today.

Each function is the rule as PyTorch states it, written out so that a test can hold it
against PyTorch (``torch.nn.utils.clip_grad_norm_``, ``torch.amp.GradScaler``,
``torch.optim.Adam``, ``torch.optim.lr_scheduler``) and a check can compute what a
known mistake would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

F64 = torch.float64
#: What ``clip_grad_norm_`` adds to the norm before dividing, so a zero norm divides safely.
CLIP_EPS = 1e-6


def global_norm(grads: Sequence[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """‖(g₁, …, g_k)‖_p: the p-norm of all the gradients' entries taken together, which is
    the p-norm of the per-tensor p-norms; the largest |entry| for p = ∞. In float64."""
    if not grads:
        return torch.tensor(0.0, dtype=F64)
    norms = torch.stack([torch.linalg.vector_norm(g.detach().to("cpu", F64), norm_type) for g in grads])
    return torch.linalg.vector_norm(norms, norm_type)


def clip_coefficient(total_norm: torch.Tensor | float, max_norm: float) -> torch.Tensor:
    """min(1, max_norm / (‖g‖ + 10⁻⁶)): the factor every gradient is multiplied by.

    It is applied even when it is 1, and when the norm is not finite: an infinite norm
    gives 0 (an infinite entry times 0 is nan), a nan norm gives nan everywhere.
    """
    total_norm = torch.as_tensor(total_norm, dtype=F64)
    return torch.clamp(max_norm / (total_norm + CLIP_EPS), max=1.0)


def clipped(grads: Sequence[torch.Tensor], max_norm: float, norm_type: float = 2.0) -> tuple[torch.Tensor, list]:
    """``clip_grad_norm_`` in float64: the total norm and each gradient times the clip
    coefficient."""
    total = global_norm(grads, norm_type)
    coef = clip_coefficient(total, max_norm)
    return total, [g.detach().to("cpu", F64) * coef for g in grads]


@dataclass
class LossScale:
    """The dynamic loss scale of ``torch.amp.GradScaler``, as its ``update()`` moves it.

    After a step whose unscaled gradients hold an inf or a nan, the optimizer step is
    skipped, the scale is multiplied by ``backoff_factor`` and the count of good steps
    starts again from zero. After ``growth_interval`` good steps in a row the scale is
    multiplied by ``growth_factor`` (only if the result is finite in float32, the scale's
    dtype) and the count restarts.
    """

    scale: float = 2.0 ** 16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    good_steps: int = 0
    history: list = field(default_factory=list)

    def update(self, found_inf: bool) -> bool:
        """Move the scale after one step; returns whether the optimizer step was taken."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.good_steps = 0
        else:
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                grown = float(torch.tensor(self.scale * self.growth_factor, dtype=torch.float32))
                if math.isfinite(grown):
                    self.scale = grown
                self.good_steps = 0
        self.history.append(self.scale)
        return not found_inf


def loss_scale_decisions(overflows: Sequence[bool], init_scale: float = 2.0 ** 16,
                         **options) -> tuple[list[float], list[bool]]:
    """The scale after each step and whether each step was taken, for a run whose steps
    overflow (or not) as ``overflows`` says; the options are ``GradScaler``'s."""
    scale = LossScale(init_scale, **options)
    taken = [scale.update(bool(o)) for o in overflows]
    return scale.history, taken


def adam_update(param, grad, exp_avg, exp_avg_sq, step: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """One step of Adam (``torch.optim.Adam``'s form: ε added to √v̂) in the tensors' own
    dtype; returns the new (param, exp_avg, exp_avg_sq), changing none of them."""
    beta1, beta2 = betas
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq


def master_adam(params_bf16, grads_bf16, steps: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                state_dtype: torch.dtype = F64):
    """Adam on low-precision parameters with master weights: the master copy and both
    moments kept in ``state_dtype``, the gradient of step t (``grads_bf16[t]``, one per
    parameter) cast up, and the parameter overwritten by the master rounded to its own
    dtype after every step. Returns, after each step, (params, masters, exp_avgs,
    exp_avg_sqs)."""
    masters = [p.detach().to(state_dtype) for p in params_bf16]
    m = [torch.zeros_like(w) for w in masters]
    v = [torch.zeros_like(w) for w in masters]
    history = []
    for t in range(steps):
        for i, g in enumerate(grads_bf16[t]):
            masters[i], m[i], v[i] = adam_update(masters[i], g.to(state_dtype), m[i], v[i], t + 1, lr, betas, eps)
        params = [w.to(p.dtype) for w, p in zip(masters, params_bf16)]
        history.append(([p.clone() for p in params], [w.clone() for w in masters],
                        [x.clone() for x in m], [x.clone() for x in v]))
    return history


def wsd_factor(step: int, warmup_steps: int, stable_steps: int, decay_steps: int, min_ratio: float = 0.0) -> float:
    """Warmup-stable-decay: the multiplier of the base rate at step t (W, S, D the
    phases' lengths, r = ``min_ratio``)::

        (t + 1) / W                       for t < W
        1                                 for W ≤ t < W + S
        1 − (1 − r)·(t − W − S) / D       for W + S ≤ t ≤ W + S + D
        r                                 after

    The decay starts from the peak at step W + S and reaches r on step W + S + D.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    into_decay = step - warmup_steps - stable_steps
    if into_decay < 0:
        return 1.0
    if into_decay >= decay_steps:
        return min_ratio
    return 1.0 - (1.0 - min_ratio) * into_decay / decay_steps


def wsd_reference(optimizer, warmup_steps, stable_steps, decay_steps, min_ratio=0.0):
    """``torch.optim.lr_scheduler.LambdaLR`` with :func:`wsd_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: wsd_factor(t, warmup_steps, stable_steps, decay_steps, min_ratio))


def inverse_sqrt_factor(step: int, warmup_steps: int) -> float:
    """The Transformer's schedule as a multiplier of the peak rate: a linear ramp to the
    peak at step W, then 1/√(t/W): min((t + 1)/W, √(W/(t + 1))), counting steps from 0."""
    return min((step + 1) / warmup_steps, math.sqrt(warmup_steps / (step + 1)))


def one_cycle_lr(step: int, total_steps: int, max_lr: float, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """``OneCycleLR``'s rate at step t (cosine annealing, two phases): from max_lr/div up
    to max_lr at step pct·T − 1, then down to max_lr/(div·final_div) at step T − 1, each
    phase along a half cosine."""
    initial = max_lr / div_factor
    peak_step = pct_start * total_steps - 1
    if step <= peak_step:
        pct, lr_from, lr_to = step / peak_step, initial, max_lr
    else:
        pct, lr_from, lr_to = (step - peak_step) / (total_steps - 1 - peak_step), max_lr, initial / final_div_factor
    return lr_to + (lr_from - lr_to) / 2.0 * (math.cos(math.pi * pct) + 1)
