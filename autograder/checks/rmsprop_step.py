"""Part ``rmsprop-step``: ``rmsprop_step(params, grads, square_avgs, lr, alpha=0.99,
eps=1e-8)`` updates each running average v ← αv + (1 − α)g² and moves each parameter by
−lr·g/(√v + ε), all in place.

Oracles: ``torch.optim.RMSprop`` driven through the same run (:func:`autograder.oracles.replay`)
and the equations in float64 (:mod:`autograder.oracles.rmsprop`), over many steps whose
gradients differ in scale from tensor to tensor, with a learning rate changed mid-run.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _learner, _rmsprop
from autograder.feedback import Mismatch, describe
from autograder.oracles import rmsprop as equations

NAME = "rmsprop_step"
SIGNATURE = "Call signature: rmsprop_step(params, grads, square_avgs, lr, alpha=0.99, eps=1e-8)."
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the "
        "parameters inside `with torch.no_grad():`."
    ),
    "unexpected keyword": SIGNATURE,
    "positional argument": SIGNATURE,
}
STEPS = 25
MISTAKES = ("eps_inside", "not_squared", "sum", "swapped", "not_kept", "no_sqrt")


def problem(seed, dtype, device):
    """A run of one group (all gradients present), a smoothing constant and an ε that
    matters at the run's gradient scales."""
    schedule = _rmsprop.scaled_schedule(seed, dtype, device, steps=STEPS, groups=1,
                                        missing_grad_prob=0.0)
    gen = torch.Generator().manual_seed(30_000 + seed)
    alpha = _rmsprop.uniform(gen, 0.8, 0.995)
    return schedule, dict(alpha=alpha, eps=_rmsprop.log_uniform(gen, 1e-4, 1e-1))


def equation(schedule, options, rule=equations.rmsprop_update):
    return equations.functional_run(schedule, _rmsprop.functional_rmsprop(rule), **options)


def mistakes(schedule, options):
    variants = {
        _rmsprop.RMSPROP_MISTAKES[k]: (
            lambda k=k: equation(schedule, options, _rmsprop.rmsprop_mistake(k))[0]
        )
        for k in MISTAKES
    }
    variants.update(_rmsprop.sign_and_rate_mistakes(lambda s: equation(s, options)[0], schedule))
    return variants


def describe_options(options):
    return f"alpha={options['alpha']:.4g}, eps={options['eps']:.3g}"


@pytest.mark.weight(3)
def check_matches_torch_rmsprop_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.RMSprop step for step (v ← αv + (1 − α)g², θ ← θ − η·g/(√v + ε))"""
    schedule, options = problem(seed, dtype, device)
    history, _ = _rmsprop.drive_functional(submission, schedule, name=NAME, hints=HINTS, options=options)
    torch_run = oracles.replay(lambda groups: torch.optim.RMSprop(groups), schedule,
                               group_options=[options])
    _rmsprop.explain(history, torch_run, schedule, dtype, mistakes(schedule, options),
                     reference=f"torch.optim.RMSprop ({describe_options(options)})")
    step = _rmsprop.first_divergence(history, equation(schedule, options)[0], dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave θ ← θ − η·g/(√v + ε).")


def check_uses_torchs_defaults(submission, seed):
    """Without alpha and eps, uses torch.optim.RMSprop's defaults (alpha=0.99, eps=1e-8)"""
    # Gradients near 1e-8 in one tensor make the default eps visible, in float64.
    schedule = _rmsprop.scaled_schedule(seed, torch.float64, "cpu", steps=6, groups=1,
                                        missing_grad_prob=0.0, scales=(1e-8, 1.0))
    history, _ = _rmsprop.drive_functional(submission, schedule, name=NAME, hints=HINTS, constant_lr=True)
    fixed = oracles.Schedule(schedule.initial, schedule.lrs, schedule.grads, {})
    torch_run = oracles.replay(lambda groups: torch.optim.RMSprop(groups), fixed)
    defaults = dict(alpha=0.99, eps=1e-8)
    variants = {
        "alpha defaults to 0.9 (the value in Hinton's lecture, and Keras's rho) instead of "
        "torch.optim.RMSprop's 0.99": lambda: equation(fixed, dict(defaults, alpha=0.9))[0],
        "eps defaults to 1e-7 (Keras's default) instead of torch.optim.RMSprop's 1e-8":
            lambda: equation(fixed, dict(defaults, eps=1e-7))[0],
        "eps defaults to 1e-10 instead of torch.optim.RMSprop's 1e-8":
            lambda: equation(fixed, dict(defaults, eps=1e-10))[0],
    }
    variants.update({
        _rmsprop.RMSPROP_MISTAKES[k]: (lambda k=k: equation(fixed, defaults, _rmsprop.rmsprop_mistake(k))[0])
        for k in MISTAKES
    })
    _rmsprop.explain(history, torch_run, fixed, torch.float64, variants,
                     reference="torch.optim.RMSprop with its defaults")


def check_keeps_the_running_averages_in_place(submission, seed):
    """Keeps the running averages of squared gradients in the `square_avgs` tensors"""
    schedule, options = problem(seed, torch.float64, "cpu")
    _, states = _rmsprop.drive_functional(submission, schedule, name=NAME, hints=HINTS, options=options)
    expected = equation(schedule, options)[1]
    if all(torch.equal(s, torch.zeros_like(s)) for s in states):
        raise Mismatch(
            "after the steps, every tensor in `square_avgs` is still zero: the running "
            "averages must be kept in the tensors you are given, updated in place "
            "(`v.mul_(alpha).add_(...)`); `v = alpha * v + ...` rebinds a local name and "
            "the average is lost."
        )
    for i, (s, e) in enumerate(zip(states, expected)):
        if not _rmsprop.close(s, e, torch.float64):
            variants = {
                _rmsprop.RMSPROP_MISTAKES[k]: equation(schedule, options, _rmsprop.rmsprop_mistake(k))[1][i]
                for k in ("not_squared", "sum", "swapped")
            }
            hint = next((f" Likely mistake: {m}." for m, v in variants.items()
                         if _rmsprop.close(s, v, torch.float64)), "")
            raise Mismatch(
                f"after {STEPS} steps with {describe_options(options)}, square_avgs[{i}] is "
                f"{describe(s)}; the moving average of g² is {describe(e)}.{hint}"
            )


def check_keeps_parameters_out_of_the_autograd_graph(submission, seed):
    """Works on leaf tensors that require grad, and leaves them leaves (no grad_fn)"""
    schedule, options = problem(seed, torch.float64, "cpu")
    params = [p.clone().requires_grad_() for p in schedule.initial[0]]
    grads = schedule.grads[0][0]
    states = [torch.zeros_like(g) for g in grads]
    seen = _learner.call(submission, NAME, [params, grads, states, schedule.lrs[0]], options, HINTS)
    for i, p in enumerate(seen["facts"][0]):
        if p["grad_fn"] is not None or not p["is_leaf"] or not p["requires_grad"]:
            raise Mismatch(
                f"params[{i}] is no longer a leaf that requires grad after the step: the "
                "update was recorded by autograd or replaced the tensor. Likely mistake: "
                "update in place inside `with torch.no_grad():`."
            )


def check_leaves_the_gradients_unchanged(submission, seed):
    """Does not modify the gradients it is given"""
    schedule, options = problem(seed, torch.float64, "cpu")
    params, saved = schedule.initial[0], schedule.grads[0][0]
    states = [torch.zeros_like(g) for g in saved]
    seen = _learner.call(submission, NAME, [params, saved, states, schedule.lrs[0]], options, HINTS)
    for i, (g, s) in enumerate(zip(seen["args"][1], saved)):
        if not torch.equal(g, s):
            raise Mismatch(
                f"grads[{i}] changed from {describe(s)} to {describe(g)}: an in-place "
                "operation on the gradient (such as `g.pow_(2)` or `g.mul_(g)`) corrupts it "
                "for any other code that reads it; compute new tensors instead."
            )
