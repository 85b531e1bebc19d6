"""Part ``adam-optimizer``: a ``torch.optim.Optimizer`` subclass interchangeable with
``torch.optim.Adam``, including ``weight_decay`` (L2, coupled), ``amsgrad`` and
``maximize``.

Oracles: ``torch.optim.Adam`` driven through the same scripted runs
(:func:`autograder.oracles.replay`: random shapes, two param groups with their own
learning rates and, where a check says so, their own betas, eps, amsgrad, weight decay
and maximize; parameters without gradients on some steps; a learning rate changed
mid-run; a ``state_dict`` round trip), and the equations in float64
(:func:`autograder.oracles.adam.adam_equation`).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _adam, _optimizer
from autograder.feedback import Mismatch, call_submission, describe
from autograder.probe import probe

NAME = "Adam"
REFERENCE = torch.optim.Adam
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, "
        "as torch.optim.Adam does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` or update `p` inside "
        "`with torch.no_grad():`."
    ),
    "'betas'": (
        "Likely mistake: keep the betas as one tuple under the name torch.optim.Adam uses, "
        "group['betas']."
    ),
    "KeyError": (
        "Likely mistake: every group's hyperparameters live in the group under torch's names "
        "(lr, betas, eps, weight_decay, amsgrad, maximize); pass them all as `defaults`."
    ),
    "max_exp_avg_sq": (
        "Likely mistake: with amsgrad, create state['max_exp_avg_sq'] when the parameter's "
        "state is created."
    ),
}
DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                maximize=False)


def compare(submission, schedule, dtype, group_options=None, *, reload_at=None):
    __tracebackhide__ = True  # pytest need not print the schedule's tensors
    _adam.compare_with_torch(submission, schedule, dtype, group_options, name=NAME,
                             reference=REFERENCE, hints=HINTS, reload_at=reload_at)


def check_is_a_torch_optimizer_with_torchs_defaults(submission):
    """Subclasses torch.optim.Optimizer; each group holds torch's hyperparameters and defaults"""
    _optimizer.require_optimizer_class(NAME, submission)
    groups = _optimizer.constructed_groups(submission, NAME, {}, HINTS)
    group = groups[0] if groups else {}
    _optimizer.require_defaults(
        group, DEFAULTS, name=NAME, reference=NAME,
        missing=f"after {NAME}([p]), param_groups[0] has no {{key}}: keep every hyperparameter "
                f"under torch.optim.{NAME}'s names ({', '.join(DEFAULTS)}), passed as the "
                "`defaults` dict to `super().__init__(params, defaults)`, so that param groups "
                "can override them.")


@pytest.mark.weight(3)
def check_matches_torch_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.Adam step for step (groups, missing grads, lr changed mid-run)"""
    compare(submission, oracles.make_schedule(seed, dtype, device, steps=20), dtype)


@pytest.mark.weight(2)
def check_param_groups_keep_their_own_settings(submission, seed, dtype, device):
    """Each param group uses its own betas, eps and amsgrad"""
    schedule = oracles.make_schedule(seed, dtype, device, steps=20)
    compare(submission, schedule, dtype, _adam.group_settings(seed))


def check_weight_decay_is_l2_added_to_the_gradient(submission, seed):
    """weight_decay adds λθ to the gradient (L2, coupled), as torch.optim.Adam does"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=15)
    gen = torch.Generator().manual_seed(6000 + seed)
    options = [dict(weight_decay=_adam.uniform(gen, 0.05, 0.5)) for _ in range(2)]
    compare(submission, schedule, torch.float64, options)
    if not _adam.calls_apply_weight_decay(submission, NAME, HINTS):
        raise Mismatch(
            f"{NAME}.step() does not get each parameter's gradient from "
            "self.apply_weight_decay(p, grad, group): put the decay in that method and call it "
            "from step(), since Part 3's AdamW overrides only this method."
        )


def check_amsgrad_keeps_the_maximum_of_v(submission, seed):
    """amsgrad=True divides by the running maximum of v, bias-corrected"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=20)
    compare(submission, schedule, torch.float64, [dict(amsgrad=True), dict(amsgrad=True, betas=(0.8, 0.99))])


def check_maximize_climbs(submission, seed):
    """maximize=True negates the gradient (before any weight decay)"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=15)
    compare(submission, schedule, torch.float64, [dict(maximize=True), dict(maximize=True, weight_decay=0.2)])


def check_epsilon_with_tiny_gradients(submission, seed, dtype):
    """With gradients of 1e-8 to 1e-6 and the default ε = 1e-8, still matches torch"""
    schedule = oracles.make_schedule(seed, dtype, "cpu", steps=15)
    gen = torch.Generator().manual_seed(7000 + seed)
    scales = [10 ** _adam.uniform(gen, -8, -6) for _ in range(schedule.steps)]
    schedule.grads = [[[None if g is None else g * scale for g in group] for group in step]
                      for step, scale in zip(schedule.grads, scales)]
    compare(submission, schedule, dtype)


def check_state_dict_round_trip(submission, seed):
    """Resumes from its state_dict and from torch.optim.Adam's; takes a group added later"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=12)
    options = [dict(amsgrad=True), {}]
    compare(submission, schedule, torch.float64, options, reload_at=5)
    _optimizer.require_add_param_group(submission, schedule, name=NAME, reference=REFERENCE,
                                       group_options=options, hints=HINTS)
    _optimizer.require_interchangeable(submission, schedule, name=NAME, reference=REFERENCE, reload_at=5,
                                       state="'step', 'exp_avg' and 'exp_avg_sq' (and 'max_exp_avg_sq' with amsgrad)",
                                       group_options=options, hints=HINTS)
    taken, saved = step_counts(submission, schedule.initial[0])
    for i, count in enumerate(taken):
        entry = saved.get(i, {}) if isinstance(saved, dict) else {}
        entry = entry if isinstance(entry, dict) else {}
        if "step" not in entry:
            raise Mismatch(
                f"state_dict()['state'][{i}] holds {sorted(map(str, entry)) or 'nothing'} but no 'step': "
                "keep each parameter's step count in self.state[p]['step'], next to 'exp_avg' and "
                "'exp_avg_sq', so that it is saved and restored with the moments."
            )
        try:
            step = float(entry["step"])
        except (TypeError, ValueError, RuntimeError):
            step = float("nan")
        if step != count:
            raise Mismatch(
                f"parameter {i} had a gradient on {count} of 4 steps, but its state['step'] is "
                f"{step:g}: count only the steps on which the parameter was updated."
            )


@probe
def step_counts(learner, initial):
    """Four steps in which some parameters get no gradient: how many steps each parameter
    took, and ``state_dict()['state']`` afterwards."""
    params = [p.clone().requires_grad_() for p in initial]
    optimizer = call_submission(f"{NAME}(params)", learner, params, hints=HINTS)
    taken = [0 for _ in params]
    for step in range(4):
        for i, p in enumerate(params):
            p.grad = None if (i + step) % 3 == 0 else torch.ones_like(p)
            taken[i] += p.grad is not None
        call_submission(f"{NAME}.step", optimizer.step, hints=HINTS)
    return taken, call_submission(f"{NAME}.state_dict", optimizer.state_dict, hints=HINTS)["state"]


def check_rejects_invalid_hyperparameters(submission):
    """Raises ValueError for a negative lr, eps or weight_decay, and betas outside [0, 1); accepts 0"""
    _optimizer.require_accepts(submission, NAME, [dict(lr=0.0), dict(eps=0.0), dict(weight_decay=0.0),
                                                  dict(betas=(0.0, 0.999)), dict(betas=(0.9, 0.0))], REFERENCE)
    settings = [dict(lr=-1e-3), dict(eps=-1e-8), dict(betas=(1.0, 0.999)), dict(betas=(0.9, 1.0)),
                dict(betas=(-0.1, 0.999)), dict(weight_decay=-0.1)]
    for bad, error in zip(settings, _optimizer.rejections(submission, NAME, settings)):
        text = ", ".join(f"{k}={v!r}" for k, v in bad.items())
        if error is not None and "ValueError" in error:
            continue
        if error is not None:
            raise Mismatch(f"{NAME}([p], {text}) should raise ValueError; instead {error}")
        raise Mismatch(
            f"{NAME}([p], {text}) was accepted: raise ValueError, as torch.optim.{NAME} does "
            "(lr, eps and weight_decay must be ≥ 0, and each beta in [0, 1))."
        )


def check_step_takes_a_closure(submission):
    """step(closure) re-evaluates the loss with gradients enabled and returns it"""
    w = _optimizer.step_with_closure(NAME, submission, torch.tensor([1.0, -2.0], requires_grad=True),
                                     dict(lr=0.1), HINTS)
    expected = torch.tensor([0.9, -1.9])  # the first step moves each coordinate by lr·sign(g)
    if not torch.allclose(w, expected):
        raise Mismatch(
            f"after one step(closure) with lr=0.1, w should be {describe(expected)}; saw "
            f"{describe(w)}."
        )
