"""Part ``adamw-optimizer``: a ``torch.optim.Optimizer`` subclass interchangeable with
``torch.optim.AdamW``, whose weight decay is decoupled from the gradient and scaled by
the current learning rate: θ ← θ(1 − ηλ), then the Adam step.

Oracles: ``torch.optim.AdamW`` through the same scripted runs as the Adam checks
(:func:`autograder.oracles.replay`), each group with its own weight decay and a learning
rate changed mid-run (the decay must follow it), and the equations in float64
(:func:`autograder.oracles.adam.adam_equation` with ``decoupled=True``).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _adam, _optimizer
from autograder.feedback import Mismatch

NAME = "AdamW"
REFERENCE = torch.optim.AdamW
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, "
        "as torch.optim.AdamW does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` or change `p` inside "
        "`with torch.no_grad():`."
    ),
    "KeyError": (
        "Likely mistake: every group's hyperparameters live in the group under torch's names "
        "(lr, betas, eps, weight_decay, amsgrad, maximize)."
    ),
}
DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                maximize=False)


def compare(submission, schedule, dtype, group_options=None, *, reload_at=None):
    __tracebackhide__ = True  # pytest need not print the schedule's tensors
    try:
        _adam.compare_with_torch(submission, schedule, dtype, group_options, name=NAME,
                                 reference=REFERENCE, hints=HINTS, reload_at=reload_at)
    except Mismatch:
        if _adam.calls_apply_weight_decay(submission, NAME, HINTS):
            raise
        # The override is right or wrong, but never runs: the mistake is in Part 2.
        raise Mismatch(
            f"{NAME}'s run leaves torch.optim.AdamW's, and its step() (inherited from your Adam) "
            "never calls apply_weight_decay, the method AdamW overrides. Likely mistake: Part 2's "
            "Adam.step() applies the weight decay itself; make it get each gradient from "
            "self.apply_weight_decay(p, grad, group)."
        ) from None


def decays(seed):
    """Each group's own weight decay λ ∈ [0.05, 0.5]."""
    gen = torch.Generator().manual_seed(8000 + seed)
    return [dict(weight_decay=_adam.uniform(gen, 0.05, 0.5)) for _ in range(2)]


def check_is_a_torch_optimizer_with_torchs_defaults(submission):
    """Subclasses torch.optim.Optimizer, with torch.optim.AdamW's defaults (weight_decay=1e-2)"""
    _optimizer.require_optimizer_class(NAME, submission)
    groups = _optimizer.constructed_groups(submission, NAME, {}, HINTS)
    group = groups[0] if groups else {}
    _optimizer.require_defaults(group, DEFAULTS, name=NAME, reference=NAME)


@pytest.mark.weight(3)
def check_matches_torch_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.AdamW step for step (own decay per group, lr changed mid-run)"""
    compare(submission, oracles.make_schedule(seed, dtype, device, steps=20), dtype, decays(seed))


def check_default_weight_decay(submission, seed):
    """Without a weight_decay argument, decays by the default λ = 1e-2 like torch.optim.AdamW"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=15, lr_range=(0.1, 0.5))
    compare(submission, schedule, torch.float64)


def check_amsgrad_and_maximize_with_decoupled_decay(submission, seed):
    """amsgrad and maximize work with the decoupled decay, per param group"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=15)
    options = [dict(amsgrad=True, **decays(seed)[0]), dict(maximize=True, **decays(seed)[1])]
    compare(submission, schedule, torch.float64, options)


def check_state_dict_round_trip(submission, seed):
    """Carries on identically after a state_dict round trip"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=12)
    compare(submission, schedule, torch.float64, decays(seed), reload_at=5)
