"""Part ``radam-step``: ``radam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999,
eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False)`` is one step of
``torch.optim.RAdam`` on lists of tensors, in place.

The learner's function is called for t = 1, 2, …, T with the check's own moment tensors
(zeros at first). The oracle is :func:`autograder.oracles.beyond.radam_step` in float64,
checked against ``torch.optim.RAdam`` by the test suite: Adam's moments; while
ρ_t ≤ 5 the step is θ ← θ − η·m̂; after, θ ← θ − η·r_t·m̂·√(1 − β₂ᵗ)/(√v + ε).
"""

import math

import pytest
import torch

from autograder.feedback import Mismatch, call_submission, describe
from autograder.feedback import close as is_close
from autograder.oracles import beyond
from autograder.probe import probe

NAME = "radam_step"
SIGNATURE = ("Call signature: radam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, "
             "weight_decay=0.0, decoupled_weight_decay=False).")
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the tensors inside "
        "`with torch.no_grad():`."
    ),
    "unexpected keyword": SIGNATURE,
    "positional argument": SIGNATURE,
    "math domain error": (
        "Likely mistake: the rectification r_t is computed while 2 < ρ_t < 4, where the square "
        "root's argument is negative (ρ₁ = 1, so the first step alone does not show it); "
        "compute r_t only once ρ_t > 5."
    ),
    "division by zero": "Likely mistake: a bias correction 1 − βᵗ with t = 0; t is 1 on the first step.",
}


def mistaken_step(theta, g, state, hyper, *, threshold=beyond.RADAM_THRESHOLD, eps_after=False, decay=None,
                  warm="corrected", rectified=True):
    """RAdam's step with one known mistake: another ``threshold``; ε added to √v̂ after the
    correction (``eps_after``, Adam's placement); ``decay`` "coupled" (added to the gradient
    although decoupled was asked) or "unscaled" (θ(1 − λ), without η); ``warm``
    "uncorrected" (θ − ηm in the first steps); ``rectified=False`` (no r_t)."""
    beta1, beta2 = hyper["betas"]
    state = state or dict(t=0, m=torch.zeros_like(theta), v=torch.zeros_like(theta))
    t = state["t"] + 1
    wd = hyper["weight_decay"]
    if wd and (decay == "coupled" or not hyper["decoupled_weight_decay"]):
        g = g + wd * theta
    elif wd:
        theta = theta * (1 - (1 if decay == "unscaled" else hyper["lr"]) * wd)
    m = beta1 * state["m"] + (1 - beta1) * g
    v = beta2 * state["v"] + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    lr = hyper["lr"]
    if beyond.radam_rho(t, beta2) > threshold:
        if eps_after:
            adaptive = 1 / ((v / (1 - beta2 ** t)).sqrt() + hyper["eps"])
        else:
            adaptive = math.sqrt(1 - beta2 ** t) / (v.sqrt() + hyper["eps"])
        r = beyond.radam_rectification(t, beta2) if rectified else 1.0
        theta = theta - lr * r * m_hat * adaptive
    else:
        theta = theta - lr * (m if warm == "uncorrected" else m_hat)
    return theta, dict(t=t, m=m, v=v)


MISTAKES = {
    "the threshold is ρ_t > 4 (the paper's), where torch.optim.RAdam uses ρ_t > 5": dict(threshold=4.0),
    "ε is added to the bias-corrected √v̂ (Adam's placement); torch adds it to √v and then "
    "multiplies by √(1 − β₂ᵗ)": dict(eps_after=True),
    "the rectification factor r_t is missing from the adaptive step": dict(rectified=False),
    "in the first steps (ρ_t ≤ 5) the step uses m without its bias correction; it is θ ← θ − η·m̂":
        dict(warm="uncorrected"),
    "with decoupled_weight_decay=True the decay is added to the gradient (coupled); decoupled, it "
    "shrinks the parameter, θ ← θ(1 − ηλ)": dict(decay="coupled"),
    "the decoupled decay is θ ← θ(1 − λ); it is scaled by the learning rate, θ ← θ(1 − ηλ)":
        dict(decay="unscaled"),
}


def log_uniform(gen, lo, hi):
    return lo * (hi / lo) ** float(torch.rand((), generator=gen, dtype=torch.float64))


def problem(seed, dtype, device, *, decay=None):
    """Random shapes, 8 to 16 steps of random gradients, random hyperparameters (β₂ between
    0.99 and 0.999, so that the rectified phase starts within the run)."""
    gen = torch.Generator().manual_seed(8100 + seed)
    shapes = [tuple(int(n) for n in torch.randint(1, 5, (int(torch.randint(0, 3, (1,), generator=gen)),),
                                                  generator=gen)) for _ in range(1 + seed % 3)]
    steps = int(torch.randint(8, 17, (1,), generator=gen))
    hyper = dict(lr=log_uniform(gen, 1e-3, 0.1), beta1=0.7 + 0.25 * float(torch.rand((), generator=gen)),
                 beta2=0.99 + 0.009 * float(torch.rand((), generator=gen)), eps=log_uniform(gen, 1e-3, 1e-1),
                 weight_decay=0.0, decoupled_weight_decay=False)
    if decay is not None:
        hyper.update(weight_decay=log_uniform(gen, 0.05, 0.5), decoupled_weight_decay=decay == "decoupled")

    def tensor(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)

    return [tensor(s) for s in shapes], [[tensor(s) for s in shapes] for _ in range(steps)], hyper


@probe
def run(learner, params, grads, hyper):
    """Call the learner's step for t = 1, …, T; return the params after each step."""
    params = [p.clone() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        call_submission(NAME, learner, params, [g.clone() for g in step_grads], ms, vs, t, hyper["lr"],
                        beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"],
                        weight_decay=hyper["weight_decay"],
                        decoupled_weight_decay=hyper["decoupled_weight_decay"], hints=HINTS)
        history.append([p.clone() for p in params])
    return history


def equation(params, grads, hyper, step=beyond.radam_step, **options):
    """The run of ``step`` (the oracle, or :func:`mistaken_step` with ``options``) in float64."""
    settings = dict(lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
                    weight_decay=hyper["weight_decay"], decoupled_weight_decay=hyper["decoupled_weight_decay"])
    theta = [p.to("cpu", torch.float64) for p in params]
    states = [None] * len(theta)
    history = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            theta[i], states[i] = step(theta[i], g.to("cpu", torch.float64), states[i], settings, **options)
        history.append([p.clone() for p in theta])
    return history


def compare(submission, params, grads, hyper, dtype):
    history = run(submission, params, grads, hyper)
    expected = equation(params, grads, hyper)
    for t, (seen, wanted) in enumerate(zip(history, expected), start=1):
        if is_close(seen, wanted, dtype):
            continue
        index = next(i for i, (a, b) in enumerate(zip(seen, wanted)) if not is_close([a], [b], dtype))
        rho = beyond.radam_rho(t, hyper["beta2"])
        message = (f"after step t = {t} (ρ_t = {rho:.3g}, so the step is "
                   f"{'rectified' if rho > beyond.RADAM_THRESHOLD else 'momentum alone'}), params[{index}] "
                   f"is {describe(seen[index])}; torch.optim.RAdam gives {describe(wanted[index])}.")
        for mistake, options in MISTAKES.items():
            if all(is_close(a, b, dtype) for a, b in zip(history, equation(params, grads, hyper, mistaken_step,
                                                                            **options))):
                message += f" Likely mistake: {mistake}."
                break
        raise Mismatch(message)


def check_first_steps_are_momentum_alone(submission, seed, dtype, device):
    """While ρ_t ≤ 5 (the first steps) the step is θ ← θ − η·m̂, as torch.optim.RAdam takes it"""
    params, grads, hyper = problem(seed, dtype, device)
    hyper.update(beta2=0.999)
    compare(submission, params, grads[:5], hyper, dtype)


@pytest.mark.weight(2)
def check_matches_torch_radam(submission, seed, dtype, device):
    """Matches torch.optim.RAdam step after step, through the rectified phase"""
    compare(submission, *problem(seed, dtype, device), dtype)


@pytest.mark.weight(2)
def check_weight_decay_coupled_and_decoupled(submission, seed, dtype, device):
    """Weight decay as torch.optim.RAdam applies it, coupled (L2) and decoupled (θ(1 − ηλ))"""
    for decay in ("coupled", "decoupled"):
        compare(submission, *problem(seed, dtype, device, decay=decay), dtype)
