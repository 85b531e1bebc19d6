"""Part ``cosine-closed-form``: ``cosine_lr(step, total_steps, lr_max, lr_min=0.0)``.

The closed form of cosine annealing, η_t = η_min + ½(η_max − η_min)(1 + cos(π t / T)),
evaluated as it stands for every t ≥ 0: η_max at t = 0, η_min at t = T, and past T back
up towards η_max at t = 2T, as ``torch.optim.lr_scheduler.CosineAnnealingLR`` does. The
oracle is the equation in float64 (:func:`autograder.oracles.schedules.cosine_annealing`).
"""

import math

import pytest
import torch

from autograder.checks import _schedule
from autograder.feedback import Mismatch, call_submission
from autograder.oracles import schedules
from autograder.probe import probe

NAME = "cosine_lr"
HINTS = {
    "unexpected keyword": "Call signature: cosine_lr(step, total_steps, lr_max, lr_min=0.0).",
    "positional argument": "Call signature: cosine_lr(step, total_steps, lr_max, lr_min=0.0).",
}


def problem(seed):
    gen = torch.Generator().manual_seed(5000 + seed)
    total = _schedule.randint(gen, 4, 60)
    lr_max = _schedule.random_base_lrs(gen, 1)[0]
    lr_min = lr_max * float(torch.empty((), dtype=torch.float64).uniform_(0.01, 0.3, generator=gen))
    return total, lr_max, lr_min


@probe
def returned(learner, steps, total, lr_max, lr_min=None):
    """What ``cosine_lr(t, total, lr_max, lr_min)`` returns for each t (lr_min left out if None)."""
    given = () if lr_min is None else (lr_min,)
    shown = "" if lr_min is None else f", {lr_min:.4g}"
    return [call_submission(f"{NAME}({t}, {total}, {lr_max:.4g}{shown})", learner, t, total, lr_max,
                            *given, hints=HINTS) for t in steps]


def values(submission, steps, total, lr_max, lr_min):
    seen = []
    for value in returned(submission, steps, total, lr_max, lr_min):
        try:
            seen.append([float(value)])
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(f"{NAME} must return a number; saw {value!r:.80}.") from None
    return torch.tensor(seen, dtype=torch.float64)


def mistakes(total, lr_max, lr_min):
    """Wrong closed forms, each as a function of t."""
    cos = schedules.cosine_annealing
    return {
        "the step is off by one: this is η at t + 1, so the schedule never starts at η_max":
            lambda t: cos(t + 1, total, lr_max, lr_min),
        "the denominator is T − 1, so the schedule reaches η_min one step early":
            lambda t: cos(t, total - 1, lr_max, lr_min),
        "lr_min is ignored, so the schedule decays to zero instead of to lr_min":
            lambda t: cos(t, total, lr_max, 0.0),
        "lr_min is added without being subtracted from lr_max (η_min + ½η_max(1 + cos))":
            lambda t: lr_min + 0.5 * lr_max * (1 + math.cos(math.pi * t / total)),
        "the factor ½ is missing, so the schedule starts at 2η_max − η_min":
            lambda t: lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * t / total)),
        "lr_max and lr_min are swapped: the schedule rises from η_min to η_max":
            lambda t: cos(t, total, lr_min, lr_max),
        "`step // total_steps` is integer division, so the cosine only sees whole periods":
            lambda t: cos(t // total, 1, lr_max, lr_min),
        "the cosine completes a whole period (2π) over T instead of half of one (π)":
            lambda t: cos(2 * t, total, lr_max, lr_min),
        "the schedule is clamped at T: past total_steps it stays at lr_min, but the formula "
        "(and CosineAnnealingLR) keeps going round, back up to lr_max at 2T":
            lambda t: cos(min(t, total), total, lr_max, lr_min),
        "the schedule restarts at T (t mod T, as SGDR's warm restarts do), but the formula (and "
        "CosineAnnealingLR) keeps going round the cosine, back up to lr_max at 2T":
            lambda t: cos(t % total, total, lr_max, lr_min),
    }


def compare(submission, steps, total, lr_max, lr_min, context):
    def table(f):
        return _schedule.table(lambda t, _: f(t), [lr_max], steps)

    _schedule.explain_rates(
        values(submission, steps, total, lr_max, lr_min),
        table(lambda t: schedules.cosine_annealing(t, total, lr_max, lr_min)),
        reference="η_min + ½(η_max − η_min)(1 + cos(πt/T))",
        context=context,
        variants={m: (lambda f=f: table(f)) for m, f in mistakes(total, lr_max, lr_min).items()},
        first_step=steps[0],
    )


def check_starts_at_lr_max_and_ends_at_lr_min(submission, seed):
    """cosine_lr(0, T, ...) is lr_max and cosine_lr(T, T, ...) is lr_min"""
    total, lr_max, lr_min = problem(seed)
    ends = [(0, lr_max, "lr_max"), (total, lr_min, "lr_min")]
    seen = values(submission, [0, total], total, lr_max, lr_min)[:, 0].tolist()
    for (t, wanted, name), value in zip(ends, seen):
        if not math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12):
            message = (f"cosine_lr({t}, {total}, lr_max={lr_max:.6g}, lr_min={lr_min:.6g}) should be "
                       f"{name} = {wanted:.6g}; saw {value:.6g} (a difference of {abs(value - wanted):.3g}).")
            # A mistake is named only if it gives the learner's value at every t from 0 to T:
            # two points alone fit several (a restart and a whole period both return lr_max at T).
            steps = list(range(total + 1))
            run = values(submission, steps, total, lr_max, lr_min)[:, 0].tolist()
            for mistake, f in mistakes(total, lr_max, lr_min).items():
                if all(math.isclose(v, f(s), rel_tol=1e-9, abs_tol=1e-12) for s, v in zip(steps, run)):
                    message += f" Likely mistake: {mistake}."
                    break
            else:
                message += _schedule.in_float32([value], [wanted])
            raise Mismatch(message)


@pytest.mark.weight(2)
def check_follows_the_closed_form_at_every_step(submission, seed):
    """Follows η_min + ½(η_max − η_min)(1 + cos(πt/T)) for t = 0, 1, ..., T"""
    total, lr_max, lr_min = problem(seed)
    compare(submission, list(range(total + 1)), total, lr_max, lr_min,
            f"cosine_lr(t, {total}, {lr_max:.4g}, {lr_min:.4g})")


def check_lr_min_defaults_to_zero(submission, seed):
    """Without lr_min, decays to zero"""
    total, lr_max, _ = problem(seed)
    seen = []
    for value in returned(submission, list(range(total + 1)), total, lr_max):
        try:
            seen.append(float(value))
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(f"{NAME} must return a number; saw {value!r:.80}.") from None
    expected = [schedules.cosine_annealing(t, total, lr_max) for t in range(total + 1)]
    if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(seen, expected)):
        raise Mismatch(
            f"with lr_min left out, cosine_lr(t, {total}, {lr_max:.4g}) should decay from lr_max to 0 "
            f"(lr_min=0.0 by default); saw {seen[0]:.6g} at t = 0 and {seen[-1]:.6g} at t = T."
            + _schedule.in_float32(seen, expected)
        )


def check_keeps_going_round_past_total_steps(submission, seed):
    """Past T the formula keeps turning: back up to lr_max at t = 2T, as CosineAnnealingLR does"""
    total, lr_max, lr_min = problem(seed)
    compare(submission, list(range(total, 3 * total + 1)), total, lr_max, lr_min,
            f"cosine_lr(t, {total}, {lr_max:.4g}, {lr_min:.4g}) past T = {total}")
