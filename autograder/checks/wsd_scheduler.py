"""Part ``wsd-scheduler``: ``WSD(optimizer, warmup_steps, stable_steps, decay_steps,
min_ratio=0.0, last_epoch=-1)``, a ``torch.optim.lr_scheduler.LRScheduler`` for
warmup-stable-decay.

With W, S, D the phases' lengths and r = ``min_ratio``, each group's rate at step t is its
base rate times (t + 1)/W for t < W, 1 for W ≤ t < W + S, 1 − (1 − r)(t − W − S)/D for
W + S ≤ t ≤ W + S + D, and r after. The oracle is ``LambdaLR`` with that multiplier in
float64 (:func:`autograder.oracles.practice.wsd_reference`), which a test holds against
PyTorch's ``SequentialLR(LinearLR, ConstantLR, LinearLR)``.
"""

import pytest
import torch

from autograder.checks import _learner, _schedule
from autograder.feedback import Mismatch, call_submission
from autograder.oracles import practice, schedules
from autograder.probe import probe

NAME = "WSD"
SIGNATURE = "Call signature: WSD(optimizer, warmup_steps, stable_steps, decay_steps, min_ratio=0.0, last_epoch=-1)."
HINTS = {
    "has no attribute": (
        "Likely mistake: LRScheduler.__init__ already calls get_lr() once (to set the rates of step 0), so set "
        "the scheduler's own attributes *before* super().__init__(optimizer, last_epoch)."
    ),
    "division by zero": "Likely mistake: with warmup_steps=0 there is no warmup; compute the ramp only while "
                        "step < warmup_steps.",
    "unexpected keyword": SIGNATURE,
    "positional argument": SIGNATURE,
}


def problem(seed, *, warmup=True, stable=True):
    gen = torch.Generator().manual_seed(9700 + seed)
    W = _schedule.randint(gen, 2, 8) if warmup else 0
    S = _schedule.randint(gen, 3, 15) if stable else 0
    D = _schedule.randint(gen, 4, 20)
    base_lrs = _schedule.random_base_lrs(gen, _schedule.randint(gen, 2, 3))
    r = float(torch.empty((), dtype=torch.float64).uniform_(0.02, 0.3, generator=gen))
    return W, S, D, base_lrs, r


def make(scheduler_class, W, S, D, r):
    def build(optimizer):
        name = f"{NAME}(optimizer, warmup_steps={W}, stable_steps={S}, decay_steps={D}, min_ratio={r:.4g})"
        return call_submission(name, scheduler_class, optimizer, W, S, D, min_ratio=r, hints=HINTS)

    return build


@probe
def history(scheduler_class, W, S, D, base_lrs, r, steps, reload_at=None):
    """Each param group's learning rate at steps 0..steps under the learner's scheduler."""
    return _schedule.learner_history(make(scheduler_class, W, S, D, r), base_lrs, steps, name=NAME, hints=HINTS,
                                     reload_at=reload_at)


def mistakes(W, S, D, r):
    """Wrong schedules, each as the rate at step t of a group with base rate lr."""
    f = practice.wsd_factor

    def absolute(t, lr):
        if t < W:
            return lr * f(t, W, S, D, r)
        fraction = f(t, W, S, D, 0.0)
        return lr * fraction + r * (1 - fraction)

    def decay(g):
        return lambda t, lr: lr * (f(t, W, S, D, r) if t < W + S or t > W + S + D else g(t))

    return {
        "the decay is one step early: at step W + S the rate is still the peak, and it reaches min_ratio·lr "
        "at step W + S + D": decay(lambda t: f(t + 1, W, S, D, r)),
        "the decay is one step late: its progress is (t − W − S)/D, which is 0 at step W + S":
            decay(lambda t: f(t - 1, W, S, D, r)),
        "the decay lasts D + 1 steps: divide by decay_steps, not decay_steps + 1":
            decay(lambda t: 1.0 - (1.0 - r) * (t - W - S) / (D + 1)),
        "min_ratio is ignored, so the rate decays to zero":
            lambda t, lr: lr * f(t, W, S, D, 0.0),
        "the decay starts right after warmup (the stable phase is missing)":
            lambda t, lr: lr * (f(t, W, 0, D, r)),
        "the warmup starts at zero on step 0; the ramp is (step + 1) / warmup_steps":
            lambda t, lr: lr * (t / W if t < W else f(t, W, S, D, r)),
        "min_ratio is used as an absolute learning rate instead of a fraction of each group's base rate":
            absolute,
    }


def compare(submission, W, S, D, base_lrs, r, steps, context):
    seen = history(submission, W, S, D, base_lrs, r, max(steps))[list(steps)]
    expected = torch.tensor(
        practice_history(W, S, D, base_lrs, r, max(steps)), dtype=torch.float64)[list(steps)]
    variants = {mistake: (lambda rule=rule: _schedule.table(rule, base_lrs, steps))
                for mistake, rule in mistakes(W, S, D, r).items()}
    _schedule.explain_rates(seen, expected, reference="warmup-stable-decay", context=context, variants=variants,
                            first_step=steps[0])


def practice_history(W, S, D, base_lrs, r, steps, **options):
    return schedules.lr_history(lambda o: practice.wsd_reference(o, W, S, D, r), base_lrs, steps, **options)


def check_is_an_lr_scheduler_starting_at_lr_over_warmup(submission, seed):
    """Subclasses LRScheduler; after construction each group's rate is its base rate / warmup_steps"""
    facts = _learner.class_facts(submission)
    if not (facts["is_class"] and _learner.derives_from(facts, torch.optim.lr_scheduler.LRScheduler)):
        raise Mismatch(f"{NAME} must be a class deriving from torch.optim.lr_scheduler.LRScheduler.")
    W, S, D, base_lrs, r = problem(seed)
    compare(submission, W, S, D, base_lrs, r, range(0, 1), f"{NAME}(optimizer, {W}, {S}, {D}) before any step")


def check_warms_up_then_holds_the_peak(submission, seed):
    """Climbs linearly to the base rate at step W − 1 and stays there for S steps"""
    W, S, D, base_lrs, r = problem(seed)
    compare(submission, W, S, D, base_lrs, r, range(0, W + S + 1),
            f"warmup_steps={W}, stable_steps={S}, during warmup and the stable phase")


@pytest.mark.weight(3)
def check_decays_linearly_to_min_ratio(submission, seed):
    """From the peak at step W + S, decays linearly to min_ratio·lr at step W + S + D"""
    W, S, D, base_lrs, r = problem(seed)
    compare(submission, W, S, D, base_lrs, r, range(W + S, W + S + D + 1),
            f"warmup_steps={W}, stable_steps={S}, decay_steps={D}, min_ratio={r:.4g}, during the decay")


def check_stays_at_the_floor(submission, seed):
    """After the decay, stays at min_ratio·lr"""
    W, S, D, base_lrs, r = problem(seed)
    end = W + S + D
    compare(submission, W, S, D, base_lrs, r, range(end, 2 * end + 1), f"min_ratio={r:.4g}, after the decay")


def check_works_without_warmup_or_stable_phase(submission, seed):
    """warmup_steps=0 starts at the peak; stable_steps=0 decays right after warmup"""
    for warmup, stable in ((False, True), (True, False)):
        W, S, D, base_lrs, r = problem(seed, warmup=warmup, stable=stable)
        compare(submission, W, S, D, base_lrs, r, range(0, W + S + D + 3),
                f"warmup_steps={W}, stable_steps={S}, decay_steps={D}")


def check_state_dict_round_trip(submission, seed):
    """Carries on identically after its state_dict() is saved and loaded mid-run"""
    W, S, D, base_lrs, r = problem(seed)
    steps, at = W + S + D + 3, W + S + 2
    _schedule.explain_rates(
        history(submission, W, S, D, base_lrs, r, steps, reload_at=at),
        history(submission, W, S, D, base_lrs, r, steps),
        reference="the same scheduler without the round trip",
        context=f"after saving and loading state_dict() at step {at}",
    )
