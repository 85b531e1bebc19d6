"""Part ``lion-optimizer``: ``Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)``,
a ``torch.optim.Optimizer`` subclass that follows Chen et al. (2023), Algorithm 2.

torch has no Lion: the oracle is the paper's rule in float64
(:func:`autograder.oracles.beyond.lion_step`), driven through the same scripted runs as
every optimizer of the course (:func:`autograder.oracles.replay`: two param groups with
their own betas and decay, missing gradients, a learning rate changed mid-run, a
``state_dict`` round trip). The update is sign(β₁m + (1 − β₁)g), the decay
θ ← θ(1 − ηλ) is decoupled, and the momentum kept is β₂m + (1 − β₂)g.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _beyond, _optimizer
from autograder.feedback import Mismatch
from autograder.oracles import beyond

NAME = "Lion"
HINTS = {
    "NoneType": "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped.",
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` so that the update is not recorded."
    ),
    "KeyError": (
        "Likely mistake: keep lr, betas and weight_decay in each group under these names, passed as "
        "the `defaults` dict to `super().__init__(params, defaults)`."
    ),
}
DEFAULTS = beyond.LION_DEFAULTS


def mistaken_step(theta, g, state, hyper, *, mistake):
    """Lion's step with one known mistake (see :data:`MISTAKES`)."""
    beta1, beta2 = hyper["betas"]
    lr, wd = hyper["lr"], hyper["weight_decay"]
    m = torch.zeros_like(theta) if state is None else state["m"]
    if mistake == "coupled":
        g = g + wd * theta
        wd = 0.0
    if mistake == "sign-first":
        update = beta1 * m + (1 - beta1) * torch.sign(g)
    elif mistake == "momentum-first":
        m = beta2 * m + (1 - beta2) * g
        update = torch.sign(m)
    else:
        update = torch.sign(beta1 * m + (1 - beta1) * g)
    decay = wd if mistake == "unscaled-decay" else lr * wd
    theta = theta * (1 - decay) - lr * update
    if mistake != "momentum-first":
        kept = beta1 if mistake == "one-beta" else beta2
        m = kept * m + (1 - kept) * g
    return theta, dict(m=m)


MISTAKES = {
    "the sign is applied before the interpolation (to g alone); the update is "
    "sign(β₁·m + (1 − β₁)·g), every coordinate ±η": "sign-first",
    "the momentum is updated before the update is taken from it; Lion interpolates with the old "
    "m (β₁), then updates m with β₂": "momentum-first",
    "the momentum kept is β₁·m + (1 − β₁)·g; Lion keeps β₂·m + (1 − β₂)·g (β₁ is only for the "
    "update)": "one-beta",
    "the weight decay is added to the gradient (coupled); Lion's decay is decoupled, "
    "θ ← θ(1 − ηλ)": "coupled",
    "the decay is θ ← θ(1 − λ); it is scaled by the learning rate, θ ← θ(1 − ηλ)": "unscaled-decay",
}


def group_options(seed):
    """Each of two groups' own betas and weight decay."""
    gen = torch.Generator().manual_seed(8200 + seed)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))

    return [dict(betas=(uniform(0.8, 0.95), uniform(0.95, 0.999)), weight_decay=uniform(0.05, 1.0))
            for _ in range(2)]


def compare(submission, schedule, dtype, options, *, reload_at=None):
    __tracebackhide__ = True  # pytest need not print the schedule's tensors
    _beyond.compare(submission, schedule, dtype, options, name=NAME, hints=HINTS, step=beyond.lion_step,
                    defaults=DEFAULTS, mistaken_step=mistaken_step, mistakes=MISTAKES,
                    reference="Lion's Algorithm 2", reload_at=reload_at)


def check_is_a_torch_optimizer_with_lions_defaults(submission):
    """Subclasses torch.optim.Optimizer with its own step; defaults lr=1e-4, betas=(0.9, 0.99), weight_decay=0"""
    _optimizer.require_optimizer_class(NAME, submission)
    _optimizer.require_own_optimizer(NAME, submission)
    groups = _optimizer.constructed_groups(submission, NAME, {}, HINTS)
    _optimizer.require_defaults(groups[0] if groups else {}, DEFAULTS, name=NAME, reference="Lion",
                                advice="Pass lr, betas and weight_decay to `super().__init__` as the defaults.")


@pytest.mark.weight(3)
def check_follows_algorithm_2(submission, seed, dtype, device):
    """Follows the paper's Algorithm 2 step for step (own betas and decay per group, missing grads, lr changed)"""
    compare(submission, oracles.make_schedule(seed, dtype, device, steps=15), dtype, group_options(seed))


def check_state_dict_round_trip_and_closure(submission, seed):
    """Carries on identically after a state_dict round trip; step(closure) returns the loss"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=10)
    compare(submission, schedule, torch.float64, group_options(seed), reload_at=4)
    w = _optimizer.step_with_closure(NAME, submission, torch.tensor([1.0, -2.0], requires_grad=True),
                                     dict(lr=0.1), HINTS)
    expected = torch.tensor([0.9, -1.9])  # the first step is −η·sign((1 − β₁)g)
    if not torch.allclose(w, expected):
        raise Mismatch(f"after one step(closure) with lr=0.1 on (w²).sum() from w = [1, −2], w should be "
                       f"[0.9, −1.9]; saw {w.tolist()}.")
