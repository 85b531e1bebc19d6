"""Part ``adagrad-step``: ``adagrad_step(params, grads, sums, lr, eps=1e-10)`` adds each
squared gradient to its running sum G and moves each parameter by −lr·g/(√G + ε), all in
place.

Oracles: ``torch.optim.Adagrad`` driven through the same run (:func:`autograder.oracles.replay`)
and the equations in float64 (:mod:`autograder.oracles.rmsprop`), over many steps whose
gradients differ in scale from tensor to tensor, with a learning rate changed mid-run.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _learner, _rmsprop
from autograder.feedback import Mismatch, describe
from autograder.oracles import rmsprop as equations

NAME = "adagrad_step"
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the "
        "parameters inside `with torch.no_grad():`."
    ),
    "unexpected keyword": "Call signature: adagrad_step(params, grads, sums, lr, eps=1e-10).",
    "positional argument": "Call signature: adagrad_step(params, grads, sums, lr, eps=1e-10).",
}
STEPS = 20


def problem(seed, dtype, device):
    """A run of one group (all gradients present) and an ε that matters at its scales."""
    schedule = _rmsprop.scaled_schedule(seed, dtype, device, steps=STEPS, groups=1,
                                        missing_grad_prob=0.0)
    gen = torch.Generator().manual_seed(20_000 + seed)
    return schedule, _rmsprop.log_uniform(gen, 1e-4, 1e-1)


def equation(schedule, eps, rule=None):
    rule = rule or equations.adagrad_rule
    return equations.functional_run(schedule, rule, eps=eps)


def mistakes(schedule, eps):
    named = {
        "epsilon is added inside the square root, √(G + ε); PyTorch (and Duchi et al.) add "
        "it outside, √G + ε": "eps_inside",
        "the sums are not carried from call to call, so each step divides by |g| alone: "
        "update each tensor of `sums` in place (`s.add_(g * g)`), do not rebind it": "not_kept",
        "the step divides by the sum before this step's g² is added to it": "stale",
        "the gradient is divided by G + ε instead of √G + ε: the square root is missing": "no_sqrt",
        "the gradients g are summed instead of their squares g²": "not_squared",
    }
    variants = {m: (lambda k=k: equation(schedule, eps, _rmsprop.adagrad_mistake(k))[0])
                for m, k in named.items()}
    variants.update(_rmsprop.sign_and_rate_mistakes(lambda s: equation(s, eps)[0], schedule))
    return variants


@pytest.mark.weight(3)
def check_matches_torch_adagrad_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.Adagrad step for step (G ← G + g², θ ← θ − η·g/(√G + ε))"""
    schedule, eps = problem(seed, dtype, device)
    history, _ = _rmsprop.drive_functional(submission, schedule, name=NAME, hints=HINTS, options=dict(eps=eps))
    torch_run = oracles.replay(lambda groups: torch.optim.Adagrad(groups), schedule,
                               group_options=[{"eps": eps}])
    _rmsprop.explain(history, torch_run, schedule, dtype, mistakes(schedule, eps),
                     reference=f"torch.optim.Adagrad (eps={eps:.3g})")
    step = _rmsprop.first_divergence(history, equation(schedule, eps)[0], dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave θ ← θ − η·g/(√G + ε).")


def check_accumulates_the_sums_in_place(submission, seed):
    """Keeps the running sums of squared gradients in the `sums` tensors"""
    schedule, eps = problem(seed, torch.float64, "cpu")
    _, sums = _rmsprop.drive_functional(submission, schedule, name=NAME, hints=HINTS, options=dict(eps=eps))
    expected = equation(schedule, eps)[1]
    if all(torch.equal(s, torch.zeros_like(s)) for s in sums):
        raise Mismatch(
            "after the steps, every tensor in `sums` is still zero: the running sums must "
            "be kept in the tensors you are given, updated in place (`s.add_(g * g)` or "
            "`s += g * g`); `s = s + g * g` rebinds a local name and the sum is lost."
        )
    for i, (s, e) in enumerate(zip(sums, expected)):
        if not _rmsprop.close(s, e, torch.float64):
            raise Mismatch(
                f"after {STEPS} steps, sums[{i}] is {describe(s)}; the sum of the squared "
                f"gradients is {describe(e)}."
            )


def check_keeps_parameters_out_of_the_autograd_graph(submission, seed):
    """Works on leaf tensors that require grad, and leaves them leaves (no grad_fn)"""
    schedule, eps = problem(seed, torch.float64, "cpu")
    params = [p.clone().requires_grad_() for p in schedule.initial[0]]
    grads = schedule.grads[0][0]
    sums = [torch.zeros_like(p) for p in grads]
    seen = _learner.call(submission, NAME, [params, grads, sums, schedule.lrs[0]], dict(eps=eps), HINTS)
    for i, p in enumerate(seen["facts"][0]):
        if p["grad_fn"] is not None or not p["is_leaf"] or not p["requires_grad"]:
            raise Mismatch(
                f"params[{i}] is no longer a leaf that requires grad after the step: the "
                "update was recorded by autograd or replaced the tensor. Likely mistake: "
                "update in place inside `with torch.no_grad():`."
            )


def check_leaves_the_gradients_unchanged(submission, seed):
    """Does not modify the gradients it is given"""
    schedule, eps = problem(seed, torch.float64, "cpu")
    params, saved = schedule.initial[0], schedule.grads[0][0]
    sums = [torch.zeros_like(p) for p in saved]
    seen = _learner.call(submission, NAME, [params, saved, sums, schedule.lrs[0]], dict(eps=eps), HINTS)
    for i, (g, s) in enumerate(zip(seen["args"][1], saved)):
        if not torch.equal(g, s):
            raise Mismatch(
                f"grads[{i}] changed from {describe(s)} to {describe(g)}: an in-place "
                "operation on the gradient (such as `g.mul_(g)` or `g.div_(...)`) corrupts "
                "it for any other code that reads it; compute new tensors instead."
            )
