"""Part ``gd-step``: ``gd_step(params, grads, lr)`` moves each tensor in place by −lr·grad.

The oracle is the equation θ ← θ − η·g in float64 (:func:`autograder.oracles.gd_update`).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _learner
from autograder.feedback import Mismatch, describe, expect_close

NAME = "gd_step"
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the "
        "parameters inside `with torch.no_grad():`."
    ),
    "unexpected keyword": "Call signature: gd_step(params, grads, lr).",
    "positional argument": "Call signature: gd_step(params, grads, lr).",
}


def problem(seed, dtype, device, *, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [oracles.random_shape(gen) for _ in range(1 + seed % 4)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype) for s in shapes]
    grads = [torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype) for s in shapes]
    lr = float(torch.empty(()).uniform_(0.01, 0.5, generator=gen))
    if requires_grad:
        params = [p.requires_grad_() for p in params]
    return params, grads, lr


@pytest.mark.weight(3)
def check_moves_each_tensor_by_minus_lr_times_grad(submission, seed, dtype, device):
    """Every tensor moves by −lr·grad (θ ← θ − η·g)"""
    before, grads, lr = problem(seed, dtype, device)
    # A submission that also changes `grads` is judged on the update it made with the
    # gradients it was given (and loses only the check that they stay unchanged).
    seen = _learner.call(submission, NAME, [before, grads, lr], hints=HINTS, own_update=True)
    expect_close(
        seen["args"][0],
        oracles.gd_update(before, grads, lr),
        what=f"parameters after gd_step(params, grads, lr={lr:.4g})",
        variants={
            "the sign is flipped (θ + η·g climbs the loss instead of descending)": lambda: [
                b + lr * g for b, g in zip(before, grads)
            ],
            "the learning rate is ignored (θ − g)": lambda: [b - g for b, g in zip(before, grads)],
            "the parameters did not change: assigning `p = p - lr * g` rebinds a local name "
            "and leaves the caller's tensor alone; update in place with `p -= lr * g` or "
            "`p.sub_(lr * g)`": lambda: before,
            "the update is applied twice": lambda: [b - 2 * lr * g for b, g in zip(before, grads)],
        },
        dtype=dtype,
    )


def check_updates_the_same_tensor_objects(submission, seed):
    """Updates in place: the caller's tensors change, and no new tensors replace them"""
    before, grads, lr = problem(seed, torch.float64, "cpu")
    seen = _learner.call(submission, NAME, [before, grads, lr], hints=HINTS)
    facts = seen["facts"][0]
    if any(f["replaced"] for f in facts):
        raise Mismatch(
            "the list `params` now holds new tensor objects: the step must change the "
            "existing tensors in place (an optimizer's caller keeps references to them). "
            "Likely mistake: `params[i] = params[i] - lr * g`; use `params[i].sub_(lr * g)`."
        )
    if all(torch.equal(p, b) for p, b in zip(seen["args"][0], before)):
        raise Mismatch(
            "no parameter changed. Likely mistake: `p = p - lr * g` rebinds a local name; "
            "update in place with `p -= lr * g` or `p.sub_(lr * g)`."
        )


def check_keeps_parameters_out_of_the_autograd_graph(submission, seed):
    """Works on leaf tensors that require grad, and leaves them leaves (no grad_fn)"""
    params, grads, lr = problem(seed, torch.float64, "cpu", requires_grad=True)
    seen = _learner.call(submission, NAME, [params, grads, lr], hints=HINTS)
    for i, p in enumerate(seen["facts"][0]):
        if p["grad_fn"] is not None or not p["is_leaf"]:
            raise Mismatch(
                f"params[{i}] has grad_fn={p['grad_fn']} after the step: the "
                "update was recorded by autograd, so the parameter is no longer a leaf and "
                "the next backward() would not fill its .grad. Likely mistake: the update "
                "ran outside `with torch.no_grad():`."
            )
        if not p["requires_grad"]:
            raise Mismatch(
                f"params[{i}] no longer requires grad after the step: update the tensor "
                "itself in place rather than replacing it with a detached copy."
            )


def check_leaves_the_gradients_unchanged(submission, seed):
    """Does not modify the gradients it is given"""
    params, saved, lr = problem(seed, torch.float64, "cpu")
    seen = _learner.call(submission, NAME, [params, saved, lr], hints=HINTS)
    for i, (g, s) in enumerate(zip(seen["args"][1], saved)):
        if not torch.equal(g, s):
            raise Mismatch(
                f"grads[{i}] changed from {describe(s)} to {describe(g)}: an in-place "
                "operation on the gradient (such as `g.mul_(lr)`) corrupts it for any other "
                "code that reads it; compute `lr * g` as a new tensor instead."
            )
