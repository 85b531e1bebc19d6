"""Part ``warmup-cosine``: ``warmup_cosine(optimizer, warmup_steps, total_steps, min_ratio=0.0)``
returns a ``torch.optim.lr_scheduler.LambdaLR`` for linear warmup then cosine decay.

With W warmup steps, T total steps and r = ``min_ratio``, each group's rate at step t is
its base rate times (t + 1)/W for t < W, r + (1 − r)·½(1 + cos(π(t − W)/(T − W))) for
W ≤ t ≤ T, and r after T (GPT-style training loops, such as llm.c's, write it this way).
The oracle is ``LambdaLR`` with that multiplier in float64
(:func:`autograder.oracles.schedules.warmup_cosine_reference`), on an optimizer with
several param groups.
"""

import math

import pytest
import torch

from autograder.checks import _schedule
from autograder.feedback import Mismatch, call_submission
from autograder.oracles import schedules
from autograder.probe import probe

NAME = "warmup_cosine"
HINTS = {
    "division by zero": (
        "Likely mistake: with warmup_steps=0 there is no warmup, but the ramp (step + 1) / "
        "warmup_steps is still computed; compute it only while step < warmup_steps."
    ),
    "unexpected keyword": "Call signature: warmup_cosine(optimizer, warmup_steps, total_steps, min_ratio=0.0).",
    "positional argument": "Call signature: warmup_cosine(optimizer, warmup_steps, total_steps, min_ratio=0.0).",
}


def problem(seed, *, warmup=True):
    gen = torch.Generator().manual_seed(7000 + seed)
    warmup_steps = _schedule.randint(gen, 2, 12) if warmup else 0
    total = warmup_steps + _schedule.randint(gen, 5, 40)
    base_lrs = _schedule.random_base_lrs(gen, _schedule.randint(gen, 2, 3))
    min_ratio = float(torch.empty((), dtype=torch.float64).uniform_(0.02, 0.3, generator=gen))
    return warmup_steps, total, base_lrs, min_ratio


def learner(function, W, T, r, name):
    def make(optimizer):
        scheduler = call_submission(name, function, optimizer, W, T, min_ratio=r, hints=HINTS)
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise Mismatch(
                f"{NAME} must return a torch.optim.lr_scheduler.LambdaLR built on the optimizer it is "
                f"given; it returned {type(scheduler).__name__}."
            )
        if scheduler.optimizer is not optimizer:
            raise Mismatch(f"the LambdaLR that {NAME} returns must be built on the optimizer it is given.")
        return scheduler

    return make


@probe
def history(function, W, T, base_lrs, r, steps):
    """Each param group's learning rate at steps 0..steps under the learner's schedule."""
    name = f"{NAME}(optimizer, warmup_steps={W}, total_steps={T}, min_ratio={r:.4g})"
    return _schedule.learner_history(learner(function, W, T, r, name), base_lrs, steps, name=NAME,
                                     hints=HINTS)


def mistakes(W, T, r):
    """Wrong schedules, each as the rate at step t of a group with base rate lr."""
    f = schedules.warmup_cosine_factor

    def decay(progress):
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))

    def warmup(ramp):
        return lambda t, lr: lr * (ramp(t) if t < W else f(t, W, T, r))

    def after_warmup(g):
        return lambda t, lr: lr * (f(t, W, T, r) if t < W else (r if t > T else g(t)))

    def absolute(t, lr):
        if t < W:
            return lr * (t + 1) / W
        return r + (lr - r) * 0.5 * (1 + math.cos(math.pi * min(1.0, (t - W) / (T - W))))

    return {
        "the warmup starts at the peak: during warmup the rate must climb linearly from "
        "lr/W at step 0 to lr at step W − 1":
            warmup(lambda t: 1.0),
        "the warmup starts at zero on step 0, which wastes that step: the ramp is (step + 1) / W, "
        "so step 0 already uses lr/W":
            warmup(lambda t: t / W),
        "the ramp is (step + 1) / (W + 1), so it never reaches the peak during warmup; it is "
        "(step + 1) / W":
            warmup(lambda t: (t + 1) / (W + 1)),
        "the decay is off by one step: its progress is (t − W + 1)/(T − W) instead of (t − W)/(T − W)":
            after_warmup(lambda t: decay(min(1.0, (t - W + 1) / (T - W)))),
        "the cosine is measured from step 0 (t/T) instead of from the end of warmup ((t − W)/(T − W))":
            after_warmup(lambda t: decay(t / T)),
        "min_ratio is ignored, so the rate decays to zero instead of to min_ratio·lr":
            lambda t, lr: lr * f(t, W, T, 0.0),
        "min_ratio is added without scaling the cosine by (1 − min_ratio)":
            after_warmup(lambda t: r + 0.5 * (1 + math.cos(math.pi * (t - W) / (T - W)))),
        "past total_steps the cosine keeps going round (back up towards the peak); this schedule "
        "stays at min_ratio·lr after total_steps":
            lambda t, lr: lr * (f(t, W, T, r) if t <= T else decay((t - W) / (T - W))),
        "min_ratio is used as an absolute learning rate (eta_min) instead of a fraction of each "
        "group's base rate":
            absolute,
        "the cosine runs over all T steps from step 0 and the warmup is missing":
            lambda t, lr: lr * (decay(t / T) if t <= T else r),
    }


def tables(W, T, r, base_lrs, steps):
    """The wrong schedules of :func:`mistakes` as tables of rates for ``steps``."""
    return {mistake: (lambda rule=rule: _schedule.table(rule, base_lrs, steps))
            for mistake, rule in mistakes(W, T, r).items()}


def compare(submission, W, T, base_lrs, r, steps, context):
    seen = history(submission, W, T, base_lrs, r, max(steps))[list(steps)]
    expected = torch.tensor(
        schedules.lr_history(lambda o: schedules.warmup_cosine_reference(o, W, T, r), base_lrs, max(steps)),
        dtype=torch.float64,
    )[list(steps)]
    _schedule.explain_rates(seen, expected, reference="the reference LambdaLR", context=context,
                            variants=tables(W, T, r, base_lrs, steps), first_step=steps[0])


def check_returns_a_lambda_lr_at_lr_over_warmup(submission, seed):
    """Returns a LambdaLR on the optimizer; step 0 runs at lr / warmup_steps"""
    W, T, base_lrs, r = problem(seed)
    compare(submission, W, T, base_lrs, r, range(0, 1),
            f"{NAME}(optimizer, warmup_steps={W}, total_steps={T}) before any step")


@pytest.mark.weight(2)
def check_warms_up_linearly_to_the_peak(submission, seed):
    """Climbs linearly from lr/W at step 0 to lr at step W − 1"""
    W, T, base_lrs, r = problem(seed)
    compare(submission, W, T, base_lrs, r, range(0, W + 1), f"warmup_steps={W}, during warmup")


@pytest.mark.weight(2)
def check_decays_along_a_cosine_to_min_ratio(submission, seed):
    """From step W to T, decays along a cosine from lr to min_ratio·lr"""
    W, T, base_lrs, r = problem(seed)
    compare(submission, W, T, base_lrs, r, range(W, T + 1),
            f"warmup_steps={W}, total_steps={T}, min_ratio={r:.4g}, during the decay")


def check_stays_at_the_floor_after_total_steps(submission, seed):
    """After total_steps, stays at min_ratio·lr"""
    W, T, base_lrs, r = problem(seed)
    compare(submission, W, T, base_lrs, r, range(T, 2 * T + 1),
            f"warmup_steps={W}, total_steps={T}, min_ratio={r:.4g}, after total_steps")


def check_works_without_warmup(submission, seed):
    """warmup_steps=0 gives plain cosine decay from step 0"""
    _, T, base_lrs, r = problem(seed, warmup=False)
    compare(submission, 0, T, base_lrs, r, range(0, T + 3), f"warmup_steps=0, total_steps={T}")


def check_default_min_ratio_is_zero(submission, seed):
    """Without min_ratio, decays to zero at total_steps"""
    W, T, base_lrs, _ = problem(seed)
    final = final_rates(submission, W, T, base_lrs)
    if not all(abs(lr) < 1e-12 for lr in final):
        raise Mismatch(
            f"{NAME}(optimizer, {W}, {T}) without min_ratio should reach 0 at step {T} "
            f"(min_ratio=0.0 by default); saw {final[0]:.6g}."
        )


@probe
def final_rates(function, W, T, base_lrs):
    """Each group's learning rate after T steps of ``function(optimizer, W, T)``'s schedule."""
    optimizer = schedules.optimizer_with_groups(base_lrs)
    scheduler = call_submission(f"{NAME}(optimizer, {W}, {T})", function, optimizer, W, T, hints=HINTS)
    for _ in range(T):
        optimizer.step()
        call_submission(f"{NAME}(...).step()", scheduler.step, hints=HINTS)
    return [float(g["lr"]) for g in optimizer.param_groups]
