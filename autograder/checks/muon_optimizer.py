"""Part ``muon-optimizer``: ``Muon(params, lr=1e-3, weight_decay=0.1, momentum=0.95,
nesterov=True, eps=1e-7, ns_steps=5, adjust_lr_fn=None)``, a ``torch.optim.Optimizer``
subclass with ``torch.optim.Muon``'s rule, orthogonalizing with the learner's
``newton_schulz`` in the parameter's own dtype.

``torch.optim.Muon`` orthogonalizes in bfloat16, whose rounding would hide every other
mistake; the oracle is its rule with the iteration in float64
(:func:`autograder.oracles.beyond.muon_step`, which the test suite checks against
``torch.optim.Muon`` given torch's own iteration), driven through scripted runs of
matrices (square, tall and wide) in two param groups with their own momentum, Nesterov
setting, decay and learning-rate adjustment.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _beyond, _optimizer
from autograder.feedback import Mismatch, call_submission
from autograder.oracles import beyond
from autograder.probe import probe

NAME = "Muon"
HINTS = {
    "NoneType": "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped.",
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` so that the update is not recorded."
    ),
    "KeyError": (
        "Likely mistake: keep lr, weight_decay, momentum, nesterov, eps, ns_steps and adjust_lr_fn in "
        "each group under these names, passed as the `defaults` dict to `super().__init__`."
    ),
    "newton_schulz": "Part 3's newton_schulz must be defined (run its cell) before Muon can use it.",
}
DEFAULTS = {k: v for k, v in beyond.MUON_DEFAULTS.items() if k != "ns_coefficients"}


def schedule_for(seed, dtype, device, steps):
    return oracles.make_schedule(seed, dtype, device, steps=steps, lr_range=(1e-3, 0.05), shape=beyond.matrix_shape)


def group_options(seed):
    """Two groups: one with Nesterov, one without, each with its own momentum, decay and
    learning-rate adjustment."""
    gen = torch.Generator().manual_seed(8300 + seed)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))

    return [dict(momentum=uniform(0.8, 0.97), weight_decay=uniform(0.05, 0.5), nesterov=True),
            dict(momentum=uniform(0.8, 0.97), weight_decay=uniform(0.05, 0.5), nesterov=False,
                 adjust_lr_fn="match_rms_adamw")]


def mistaken_step(theta, g, state, hyper, *, mistake):
    """torch.optim.Muon's step with one known mistake (see :data:`MISTAKES`)."""
    if mistake == "no-adjustment":
        return beyond.muon_step(theta, g, state, dict(hyper, adjust_lr_fn="none"))
    if mistake == "no-nesterov":
        return beyond.muon_step(theta, g, state, dict(hyper, nesterov=False))
    mu, lr, wd = hyper["momentum"], hyper["lr"], hyper["weight_decay"]
    buffer = torch.zeros_like(theta) if state is None else state["momentum_buffer"]
    buffer = buffer + (1 - mu) * (g - buffer)
    update = g + mu * (buffer - g) if hyper["nesterov"] else buffer
    O = beyond.newton_schulz(update, hyper["ns_steps"], eps=hyper["eps"])
    shape = theta.shape[::-1] if mistake == "inverted" else theta.shape
    adjusted = beyond.muon_adjusted_lr(lr, hyper["adjust_lr_fn"], shape)
    if mistake == "decay-adjusted":
        theta = theta * (1 - adjusted * wd) - adjusted * O
    elif mistake == "decay-after":
        theta = (theta - adjusted * O) * (1 - lr * wd)
    else:
        theta = theta * (1 - lr * wd) - adjusted * O
    return theta, dict(momentum_buffer=buffer)


MISTAKES = {
    "the learning rate is not adjusted to the matrix's shape; torch.optim.Muon multiplies it by "
    "√max(1, rows/cols) (or by 0.2·√max(rows, cols) with adjust_lr_fn='match_rms_adamw')": "no-adjustment",
    "the adjustment is √max(1, cols/rows); it is √max(1, rows/cols), larger for tall matrices": "inverted",
    "nesterov is ignored: with nesterov=True the update orthogonalized is g + μ(B − g), not B": "no-nesterov",
    "the decay uses the adjusted learning rate; torch decays by θ(1 − ηλ) with the group's own η": "decay-adjusted",
    "the decay is applied after the update; torch shrinks θ first, θ ← θ(1 − ηλ), then subtracts "
    "η'·O": "decay-after",
}


def compare(submission, schedule, dtype, options, *, reload_at=None):
    __tracebackhide__ = True  # pytest need not print the schedule's tensors
    _beyond.compare(submission, schedule, dtype, options, name=NAME, hints=HINTS, step=beyond.muon_step,
                    defaults=beyond.MUON_DEFAULTS, mistaken_step=mistaken_step, mistakes=MISTAKES,
                    reference="torch.optim.Muon's rule (Newton–Schulz in float64)", reload_at=reload_at)


@probe
def first_group(Muon):
    """``Muon([p])``'s first param group without its params, for a 2x2 matrix p."""
    optimizer = call_submission("Muon([p])", Muon, [torch.zeros(2, 2, requires_grad=True)], hints=HINTS)
    groups = getattr(optimizer, "param_groups", None)
    return {k: v for k, v in dict(groups[0]).items() if k != "params"} if isinstance(groups, list) and groups else {}


@probe
def state_keys(Muon):
    """The names in ``self.state[p]`` after one step of ``Muon([p])`` on a 3x2 matrix."""
    p = torch.ones(3, 2, requires_grad=True)
    optimizer = call_submission("Muon([p])", Muon, [p], hints=HINTS)
    p.grad = torch.ones(3, 2)
    call_submission("Muon.step", optimizer.step, hints=HINTS)
    return sorted(str(k) for k in optimizer.state[p])


def check_is_a_torch_optimizer_for_matrices_with_torchs_defaults(submission):
    """Subclasses torch.optim.Optimizer with torch.optim.Muon's defaults, and raises ValueError for a parameter that is not a matrix"""
    _optimizer.require_optimizer_class(NAME, submission)
    _optimizer.require_own_optimizer(NAME, submission)
    _optimizer.require_defaults(first_group(submission), DEFAULTS, name=NAME, reference=NAME)
    (outcome,) = _optimizer.rejections(submission, NAME, [{}])
    if outcome is None or " raised ValueError" not in outcome:
        what = "was accepted" if outcome is None else f"was refused, but not with ValueError ({outcome.rstrip('.')})"
        raise Mismatch(f"Muon([p]) with p a vector {what}; Muon orthogonalizes matrices, so like "
                       "torch.optim.Muon it must raise ValueError for a parameter whose ndim is not 2 "
                       "(give vectors and scalars to AdamW).")


@pytest.mark.weight(3)
def check_matches_torch_muons_rule(submission, seed, dtype, device):
    """Follows torch.optim.Muon's rule step for step (momentum, Nesterov, decay and lr adjustment per group)"""
    compare(submission, schedule_for(seed, dtype, device, 12), dtype, group_options(seed))


def check_state_dict_round_trip(submission, seed):
    """Keeps torch's state name 'momentum_buffer' and carries on identically after a state_dict round trip"""
    keys = state_keys(submission)
    if keys != ["momentum_buffer"]:
        raise Mismatch(f"after one step, self.state[p] holds {keys}; torch.optim.Muon keeps one tensor, "
                       "'momentum_buffer', so that state_dicts can be exchanged.")
    compare(submission, schedule_for(seed, torch.float64, "cpu", 10), torch.float64, group_options(seed),
            reload_at=4)
