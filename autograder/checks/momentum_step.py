"""Part ``momentum-step``: ``momentum_step(params, grads, buffers, lr, momentum,
dampening=0.0, nesterov=False)`` is one step of PyTorch's momentum over lists of tensors.

``buffers`` holds one momentum buffer per parameter, ``None`` before the first step:
b ← g on the first step, b ← μ·b + (1 − τ)·g after it; the parameter moves by −η·b, or
by −η·(g + μ·b) with Nesterov. Oracles: ``torch.optim.SGD`` fed the same gradients and
learning rates (:func:`autograder.oracles.replay`), and the rule in float64
(:func:`autograder.oracles.momentum.sgd_momentum_equation`).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _learner, _optimizer
from autograder.feedback import Mismatch, call_submission, describe
from autograder.oracles import momentum
from autograder.probe import probe

NAME = "momentum_step"
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the "
        "parameters inside `with torch.no_grad():`."
    ),
    "NoneType": (
        "Likely mistake: on the first step the buffers are None; create each one "
        "(`buffers[i] = g.clone()`) before updating it."
    ),
    "unexpected keyword": (
        "Call signature: momentum_step(params, grads, buffers, lr, momentum, dampening=0.0, "
        "nesterov=False)."
    ),
    "positional argument": (
        "Call signature: momentum_step(params, grads, buffers, lr, momentum, dampening=0.0, "
        "nesterov=False)."
    ),
}

#: What each wrong version of the rule looks like to the learner.
MISTAKES = {
    "ema": "this is the EMA form, b ← μ·b + (1 − μ)·g from b = 0; PyTorch's buffer is "
           "b ← μ·b + (1 − dampening)·g and starts at the first gradient itself",
    "first_step_damped": "the first step's buffer is (1 − dampening)·g (a buffer started at "
                         "zero, or dampening applied on the first step); PyTorch starts it at "
                         "g itself and damps only later gradients",
    "dampening_ignored": "the dampening is ignored (b ← μ·b + g)",
    "nesterov_ignored": "nesterov=True is ignored: the step uses b, not g + μ·b",
    "nesterov_from_buffer": "the Nesterov look-ahead is applied twice: the direction is "
                            "b + μ·b, built from the buffer instead of the gradient (g + μ·b)",
    "nesterov_in_buffer": "the Nesterov look-ahead is applied twice: g + μ·b was written "
                          "back into the buffer, so it is carried into the next step; keep "
                          "b ← μ·b + g in the buffer and use g + μ·b only for the step",
    "nesterov_stale_buffer": "the Nesterov direction g + μ·b uses the buffer from before "
                             "this step's update; update b first",
    "lr_in_buffer": "the learning rate is folded into the buffer (Sutskever's form, "
                    "v ← μ·v + η·g and θ ← θ − v): it agrees with PyTorch's only until "
                    "the learning rate changes",
}


@probe
def run_functional(learner, schedule, options):
    """Call the learner's function once per step of ``schedule`` (one group, every
    gradient present) and return the parameters after each step."""
    params = [p.clone() for p in schedule.initial[0]]
    buffers = [None] * len(params)
    lr = schedule.lrs[0]
    history = []
    for step in range(schedule.steps):
        lr = schedule.lr_changes.get(step, {}).get(0, lr)
        grads = [g.clone() for g in schedule.grads[step][0]]
        call_submission(NAME, learner, params, grads, buffers, lr, options["momentum"],
                        hints=HINTS, **{k: v for k, v in options.items() if k != "momentum"})
        history.append([p.detach().clone() for p in params])
    return history


def schedule_and_options(seed, dtype, device, **extra):
    gen = torch.Generator().manual_seed(4000 + seed)
    options = {"momentum": float(torch.empty(()).uniform_(0.5, 0.95, generator=gen)), **extra}
    if extra.get("dampening") == "random":
        options["dampening"] = float(torch.empty(()).uniform_(0.1, 0.9, generator=gen))
    schedule = oracles.make_schedule(seed, dtype, device, steps=20, groups=1,
                                     missing_grad_prob=0.0, lr_range=(1e-3, 0.2))
    return schedule, options


def compare(submission, seed, dtype, device, **extra):
    schedule, options = schedule_and_options(seed, dtype, device, **extra)
    history = run_functional(submission, schedule, options)
    expected = oracles.replay(lambda groups: torch.optim.SGD(groups, lr=1e-3), schedule,
                              group_options=[options])
    variants = {message: (lambda m=m: momentum.sgd_momentum_equation(schedule, [options], mistake=m))
                for m, message in MISTAKES.items()}
    # The learning rate is an argument here, so the advice about param_groups does not apply.
    quiet = oracles.Schedule(schedule.initial, schedule.lrs, schedule.grads, {})
    settings = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in options.items())
    _optimizer.explain_divergence(history, expected, quiet, dtype, variants,
                                  reference=f"torch.optim.SGD({settings})")
    equation = momentum.sgd_momentum_equation(schedule, [options])
    step = oracles.first_divergence(history, equation, dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave PyTorch's momentum rule.")


@pytest.mark.weight(2)
def check_matches_sgd_with_momentum(submission, seed, dtype, device):
    """Matches torch.optim.SGD(momentum=μ) step for step, the learning rate changed mid-run"""
    compare(submission, seed, dtype, device)


def check_matches_sgd_with_dampening(submission, seed, dtype, device):
    """Matches torch.optim.SGD(momentum=μ, dampening=τ): the first step is not damped"""
    compare(submission, seed, dtype, device, dampening="random")


def check_matches_sgd_with_nesterov(submission, seed, dtype, device):
    """Matches torch.optim.SGD(momentum=μ, nesterov=True): the step is g + μ·b"""
    compare(submission, seed, dtype, device, nesterov=True)


def check_keeps_its_state_in_the_buffers(submission, seed):
    """Fills the buffers on the first call, with copies; moves the parameters in place, not the gradients"""
    schedule, options = schedule_and_options(seed, torch.float64, "cpu")
    params = [p.clone().requires_grad_() for p in schedule.initial[0]]
    grads = [g.clone() for g in schedule.grads[0][0]]
    seen = _learner.call(submission, NAME, [params, grads, [None] * len(params), 0.1, options["momentum"]],
                         hints=HINTS)
    buffers = seen["args"][2]
    if len(buffers) != len(params) or any(not isinstance(b, torch.Tensor) for b in buffers):
        raise Mismatch(
            "after the first call, `buffers` should hold one tensor per parameter (it held "
            f"{describe(buffers)}): replace each None with the new buffer, "
            "`buffers[i] = g.clone()`, so the next call can continue from it."
        )
    if any(f["replaced"] or f["storage_replaced"] for f in seen["facts"][0]):
        raise Mismatch(
            "the list `params` now holds new tensors (or new storage): move the caller's "
            "parameters in place, with `p.add_(..., alpha=-lr)` under `torch.no_grad()`."
        )
    for i, p in enumerate(seen["facts"][0]):
        if p["grad_fn"] is not None or not p["requires_grad"]:
            raise Mismatch(
                f"params[{i}] is no longer a leaf that requires grad: update it in place inside "
                "`with torch.no_grad():`."
            )
    require_gradients_unchanged(seen["args"][1], grads, "")
    for i, fact in enumerate(seen["facts"][2]):
        if fact.get("shares_with") == [1, i]:
            raise Mismatch(
                f"buffers[{i}] is the gradient tensor itself, not a copy: zeroing the gradient "
                "before the next step would wipe the momentum. Start the buffer with `g.clone()`."
            )
    # With Nesterov, on the first call and on a later one (buffers present).
    buffers = [None] * len(params)
    for step in (0, 1):
        grads = [g.clone() for g in schedule.grads[step][0]]
        seen = _learner.call(submission, NAME, [params, grads, buffers, 0.1, options["momentum"]],
                             {"nesterov": True}, hints=HINTS)
        require_gradients_unchanged(seen["args"][1], grads, f" (nesterov=True, call {step + 1})")
        params, buffers = seen["args"][0], seen["args"][2]


def require_gradients_unchanged(after, before, when: str) -> None:
    """Raise :class:`Mismatch` if a call changed the caller's gradients (``after`` against
    copies taken ``before`` it); ``when`` names the call in the message."""
    for i, (g, s) in enumerate(zip(after, before)):
        if not torch.equal(g, s):
            raise Mismatch(
                f"grads[{i}] changed during the call{when}: the buffer or the Nesterov direction was "
                "built in place on the gradient; work on a copy (`g.add(buf, alpha=momentum)`)."
            )
