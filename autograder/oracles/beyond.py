"""The optimizers after Adam, as equations in float64 on the CPU (chapter 8, assignment 08).

Each ``*_step`` function is one step of one parameter, written from the rule as
``torch.optim`` implements it (``torch/optim/radam.py``, ``nadam.py``, ``adamax.py``,
``_adafactor.py``, ``_muon.py`` in torch 2.13) or, for Lion, which torch does not ship,
from Chen et al. (2023), Algorithm 2. It takes θ, the gradient g, the parameter's state
(``None`` before its first step) and the group's hyperparameters, and returns the new θ
and state. :func:`equation` drives any of them through a scripted run
(:class:`~autograder.oracles.replay.Schedule`), as :func:`~autograder.oracles.replay.replay`
drives an optimizer: each parameter keeps its own step count, which advances only on steps
where it has a gradient, and each group's learning rate may change mid-run.

:func:`newton_schulz` is Muon's orthogonalization, the quintic iteration
X ← aX + b(XXᵀ)X + c(XXᵀ)²X on the short side of the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .replay import Schedule

F64 = torch.float64

RADAM_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      decoupled_weight_decay=False, maximize=False)
NADAM_DEFAULTS = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                      decoupled_weight_decay=False, maximize=False)
ADAMAX_DEFAULTS = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False)
ADAFACTOR_DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
                          maximize=False)
#: Chen et al. (2023) suggest β₁ = 0.9, β₂ = 0.99 and a learning rate 3–10× smaller than AdamW's.
LION_DEFAULTS = dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)
#: Jordan et al. (2024)'s quintic coefficients, torch.optim.Muon's defaults.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
MUON_DEFAULTS = dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                     ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None)

#: RAdam uses the rectified adaptive step only once the length of the approximated simple
#: moving average, ρ_t, exceeds this (Liu et al. use 4; torch.optim.RAdam uses 5).
RADAM_THRESHOLD = 5.0


def matrix_shape(gen: torch.Generator) -> tuple[int, int]:
    """A matrix of 1 to 8 rows and columns, square, tall or wide: a shape Muon takes
    (``make_schedule``'s ``shape``)."""
    return tuple(int(n) for n in torch.randint(1, 9, (2,), generator=gen))


def _decay(theta, g, hyper):
    """Weight decay as torch's RAdam and NAdam apply it: decoupled (θ ← θ(1 − ηλ)) or
    added to the gradient (g ← g + λθ)."""
    wd = hyper["weight_decay"]
    if wd == 0:
        return theta, g
    if hyper.get("decoupled_weight_decay", False):
        return theta * (1 - hyper["lr"] * wd), g
    return theta, g + wd * theta


def radam_rho(t: int, beta2: float) -> float:
    """ρ_t = ρ_∞ − 2tβ₂ᵗ/(1 − β₂ᵗ), with ρ_∞ = 2/(1 − β₂) − 1: the length of the simple
    moving average that the bias-corrected second moment approximates at step t."""
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)


def radam_rectification(t: int, beta2: float) -> float:
    """r_t = √((ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t)), defined for ρ_t > 4."""
    rho_inf = 2 / (1 - beta2) - 1
    rho = radam_rho(t, beta2)
    return math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))


def radam_step(theta, g, state, hyper, *, threshold: float = RADAM_THRESHOLD):
    """One step of ``torch.optim.RAdam``: Adam's moments; while ρ_t ≤ ``threshold`` the
    step is momentum alone, θ ← θ − η·m̂; after, θ ← θ − η·r_t·m̂/(√v̂ + ε), with ε added
    to √v before the correction √(1 − β₂ᵗ) multiplies it back (torch's order)."""
    beta1, beta2 = hyper["betas"]
    state = state or dict(t=0, m=torch.zeros_like(theta), v=torch.zeros_like(theta))
    t = state["t"] + 1
    g = -g if hyper.get("maximize") else g
    theta, g = _decay(theta, g, hyper)
    m = beta1 * state["m"] + (1 - beta1) * g
    v = beta2 * state["v"] + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    if radam_rho(t, beta2) > threshold:
        adaptive = math.sqrt(1 - beta2 ** t) / (v.sqrt() + hyper["eps"])
        theta = theta - hyper["lr"] * radam_rectification(t, beta2) * m_hat * adaptive
    else:
        theta = theta - hyper["lr"] * m_hat
    return theta, dict(t=t, m=m, v=v)


def nadam_mu(t: int, beta1: float, momentum_decay: float) -> float:
    """Dozat's momentum schedule as torch writes it: μ_t = β₁(1 − ½·0.96^(tψ))."""
    return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def nadam_step(theta, g, state, hyper):
    """One step of ``torch.optim.NAdam``: Nesterov inside Adam. With μ_t from
    :func:`nadam_mu` and their running product Π_t = μ₁⋯μ_t,
    θ ← θ − η[(1 − μ_t)/(1 − Π_t)·g + μ_{t+1}/(1 − Π_{t+1})·m] / (√v̂ + ε)."""
    beta1, beta2 = hyper["betas"]
    state = state or dict(t=0, m=torch.zeros_like(theta), v=torch.zeros_like(theta), mu_product=1.0)
    t = state["t"] + 1
    g = -g if hyper.get("maximize") else g
    theta, g = _decay(theta, g, hyper)
    mu = nadam_mu(t, beta1, hyper["momentum_decay"])
    mu_next = nadam_mu(t + 1, beta1, hyper["momentum_decay"])
    # torch keeps Π_t in a float32 tensor (its scalar dtype) whatever the parameter's dtype.
    product = float(torch.tensor(state["mu_product"], dtype=torch.float32) * mu)
    m = beta1 * state["m"] + (1 - beta1) * g
    v = beta2 * state["v"] + (1 - beta2) * g * g
    denom = (v / (1 - beta2 ** t)).sqrt() + hyper["eps"]
    lr = hyper["lr"]
    theta = theta - lr * (1 - mu) / (1 - product) * g / denom
    theta = theta - lr * mu_next / (1 - product * mu_next) * m / denom
    return theta, dict(t=t, m=m, v=v, mu_product=product)


def adamax_step(theta, g, state, hyper):
    """One step of ``torch.optim.Adamax``, Adam's ∞-norm limit (Kingma & Ba, §7):
    u ← max(β₂u, |g| + ε), θ ← θ − η/(1 − β₁ᵗ)·m/u. Weight decay is added to the gradient."""
    beta1, beta2 = hyper["betas"]
    state = state or dict(t=0, m=torch.zeros_like(theta), u=torch.zeros_like(theta))
    t = state["t"] + 1
    g = -g if hyper.get("maximize") else g
    if hyper["weight_decay"]:
        g = g + hyper["weight_decay"] * theta
    m = beta1 * state["m"] + (1 - beta1) * g
    u = torch.maximum(beta2 * state["u"], g.abs() + hyper["eps"])
    theta = theta - hyper["lr"] / (1 - beta1 ** t) * m / u
    return theta, dict(t=t, m=m, u=u)


def adafactor_step(theta, g, state, hyper, *, dtype: torch.dtype = F64):
    """One step of ``torch.optim.Adafactor`` (Shazeer & Stern 2018, as torch implements it).

    With β̂₂ₜ = 1 − t^c (c = ``beta2_decay``), relative step ρ_t = min(η, 1/√t) and
    α_t = max(ε₂, RMS(θ))·ρ_t (θ before the decay): a matrix (or any tensor of rank ≥ 2,
    over its last two dimensions) keeps only the row and column means of g², R and C,
    each an average with weight t^c, and estimates v̂ = R·C / mean(R), the mean clamped
    at ε₁; a vector keeps v̂ itself. Then u = g/√max(v̂, ε₁²), and
    θ ← θ(1 − ηλ) − α_t·u / max(1, RMS(u)/d). ε₁ defaults to the machine epsilon of
    ``dtype``, the parameter's own dtype.
    """
    eps1, eps2 = hyper["eps"]
    eps1 = torch.finfo(dtype).eps if eps1 is None else eps1
    factored = theta.dim() > 1
    if state is None:
        if factored:
            state = dict(t=0, row=torch.zeros_like(theta.sum(-1, keepdim=True)),
                         col=torch.zeros_like(theta.sum(-2, keepdim=True)))
        else:
            state = dict(t=0, variance=torch.zeros_like(theta))
    t = state["t"] + 1
    g = -g if hyper.get("maximize") else g
    weight = t ** hyper["beta2_decay"]
    rho = min(hyper["lr"], 1 / math.sqrt(t))
    alpha = max(eps2, float(theta.norm()) / math.sqrt(theta.numel())) * rho
    theta = theta * (1 - hyper["lr"] * hyper["weight_decay"])
    if factored:
        row = state["row"] + weight * ((g * g).mean(-1, keepdim=True) - state["row"])
        col = state["col"] + weight * ((g * g).mean(-2, keepdim=True) - state["col"])
        estimate = row @ col / row.mean(-2, keepdim=True).clamp(min=eps1)
        new_state = dict(t=t, row=row, col=col)
    else:
        estimate = state["variance"] + weight * (g * g - state["variance"])
        new_state = dict(t=t, variance=estimate)
    update = g / estimate.clamp(min=eps1 * eps1).sqrt()
    clip = max(1.0, float(update.norm()) / (math.sqrt(update.numel()) * hyper["d"]))
    return theta - alpha / clip * update, new_state


def lion_step(theta, g, state, hyper):
    """One step of Lion (Chen et al. 2023, Algorithm 2): c = β₁m + (1 − β₁)g,
    θ ← θ(1 − ηλ) − η·sign(c), then m ← β₂m + (1 − β₂)g. The sign is taken of the
    interpolation, after it; the momentum kept uses β₂, not β₁."""
    beta1, beta2 = hyper["betas"]
    m = torch.zeros_like(theta) if state is None else state["m"]
    c = beta1 * m + (1 - beta1) * g
    theta = theta * (1 - hyper["lr"] * hyper["weight_decay"]) - hyper["lr"] * torch.sign(c)
    return theta, dict(m=beta2 * m + (1 - beta2) * g)


def newton_schulz(G: torch.Tensor, steps: int = 5, *, coefficients=NS_COEFFICIENTS, eps: float = 1e-7,
                  dtype: torch.dtype = F64, normalized: bool = True) -> torch.Tensor:
    """Muon's orthogonalization of a matrix G, in ``dtype``: X₀ = G/max(‖G‖_F, ε) (so every
    singular value is at most 1), transposed first if G is tall so that A = XXᵀ is the
    smaller Gram matrix; then ``steps`` times X ← aX + (bA + cA²)X. Each singular value σ
    of X goes to p(σ) = aσ + bσ³ + cσ⁵, which pushes it towards 1 (the coefficients make
    p'(0) = a large, so small ones grow fast) while the singular vectors stay: the result
    is close to UVᵀ for G = USVᵀ. ``normalized=False`` leaves out the division (for a
    G already scaled otherwise)."""
    a, b, c = coefficients
    X = G.detach().to(dtype)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    if normalized:
        X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def muon_adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: Sequence[int]) -> float:
    """torch.optim.Muon's learning rate for a matrix of shape (A, B): η·√max(1, A/B)
    ("original", the default) or 0.2·η·√max(A, B) ("match_rms_adamw", Liu et al. 2025)."""
    rows, cols = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr


def muon_step(theta, g, state, hyper, *, orthogonalize: Callable | None = None):
    """One step of ``torch.optim.Muon`` on a matrix: B ← μB + (1 − μ)g (torch's lerp form),
    the update g + μ(B − g) with Nesterov (else B), orthogonalized by :func:`newton_schulz`
    (or ``orthogonalize``, a function of the update), then θ ← θ(1 − ηλ) − η'·O with η'
    from :func:`muon_adjusted_lr`."""
    mu = hyper["momentum"]
    buffer = torch.zeros_like(theta) if state is None else state["momentum_buffer"]
    buffer = buffer + (1 - mu) * (g - buffer)
    update = g + mu * (buffer - g) if hyper["nesterov"] else buffer
    if orthogonalize is None:
        O = newton_schulz(update, hyper["ns_steps"], coefficients=hyper["ns_coefficients"], eps=hyper["eps"])
    else:
        O = orthogonalize(update).to(F64)
    lr = hyper["lr"]
    theta = theta * (1 - lr * hyper["weight_decay"]) - muon_adjusted_lr(lr, hyper["adjust_lr_fn"], theta.shape) * O
    return theta, dict(momentum_buffer=buffer)


def equation(step: Callable, schedule: Schedule, group_options: Sequence[dict] | None = None, *,
             defaults: dict, constructor: dict | None = None, **step_options) -> list[list[torch.Tensor]]:
    """:func:`~autograder.oracles.replay.replay`'s result for the optimizer whose one-parameter
    step is ``step``, from the equations in float64. ``defaults`` are the optimizer's own,
    ``constructor`` the keywords it is built with, ``group_options`` each group's; a step
    that takes ``dtype`` (:func:`adafactor_step`) receives the schedule's."""
    base = dict(defaults, **(constructor or {}))
    options = list(group_options) if group_options else [{} for _ in schedule.initial]
    groups = [dict(base, lr=lr, **extra) for lr, extra in zip(schedule.lrs, options)]
    params = [[p.detach().to("cpu", F64) for p in group] for group in schedule.initial]
    dtypes = [[p.dtype for p in group] for group in schedule.initial]
    state = [[None for _ in group] for group in params]
    history = []
    for k in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(k, {}).items():
            groups[g]["lr"] = lr
        for group, hyper, grads, states, kinds in zip(params, groups, schedule.grads[k], state, dtypes):
            for i, grad in enumerate(grads):
                if grad is None:
                    continue
                # Adafactor's default ε₁ is the machine epsilon of the parameter's own dtype.
                extra = dict(step_options, dtype=kinds[i]) if step is adafactor_step else step_options
                group[i], states[i] = step(group[i], grad.detach().to("cpu", F64), states[i], hyper, **extra)
        history.append([p.clone() for group in params for p in group])
    return history
