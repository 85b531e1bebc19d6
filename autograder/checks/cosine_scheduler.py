"""Part ``cosine-scheduler``: ``CosineAnnealing(optimizer, T_max, eta_min=0.0, last_epoch=-1)``,
a ``torch.optim.lr_scheduler.LRScheduler`` interchangeable with ``CosineAnnealingLR``.

Oracles: ``torch.optim.lr_scheduler.CosineAnnealingLR`` itself, driven on the same
optimizer (several param groups with their own base rates, two and a half periods, so
past ``T_max`` where it climbs back up, and a ``state_dict`` round trip), and the closed
form in float64 (:func:`autograder.oracles.schedules.cosine_annealing`).
"""

import pytest
import torch

from autograder.checks import _learner, _schedule
from autograder.feedback import Mismatch, call_submission, close, describe
from autograder.oracles import schedules
from autograder.oracles.replay import make_schedule
from autograder.probe import probe

NAME = "CosineAnnealing"
REFERENCE = "torch.optim.lr_scheduler.CosineAnnealingLR"
HINTS = {
    "has no attribute 'T_max'": (
        "Likely mistake: LRScheduler.__init__ already calls get_lr() once (to set the rates "
        "of step 0), so set self.T_max and self.eta_min *before* "
        "super().__init__(optimizer, last_epoch)."
    ),
    "has no attribute 'eta_min'": (
        "Likely mistake: LRScheduler.__init__ already calls get_lr() once, so set "
        "self.eta_min before super().__init__(optimizer, last_epoch)."
    ),
    "unexpected keyword": "Call signature: CosineAnnealing(optimizer, T_max, eta_min=0.0, last_epoch=-1).",
    "positional argument": "Call signature: CosineAnnealing(optimizer, T_max, eta_min=0.0, last_epoch=-1).",
}


def problem(seed, *, with_eta_min):
    gen = torch.Generator().manual_seed(6000 + seed)
    T_max = _schedule.randint(gen, 3, 40)
    base_lrs = _schedule.random_base_lrs(gen, _schedule.randint(gen, 2, 3))
    fraction = float(torch.empty((), dtype=torch.float64).uniform_(0.05, 0.5, generator=gen))
    eta_min = fraction * min(base_lrs) if with_eta_min else 0.0
    return T_max, base_lrs, eta_min


def learner(scheduler_class, T_max, eta_min):
    def make(optimizer):
        name = f"{NAME}(optimizer, T_max={T_max}, eta_min={eta_min:.4g})"
        return call_submission(name, scheduler_class, optimizer, T_max=T_max, eta_min=eta_min, hints=HINTS)

    return make


@probe
def history(scheduler_class, T_max, base_lrs, eta_min, steps, reload_at=None):
    """The learning rates of each param group at steps 0..steps, under the learner's scheduler."""
    make = learner(scheduler_class, T_max, eta_min)
    return _schedule.learner_history(make, base_lrs, steps, name=NAME, hints=HINTS, reload_at=reload_at)


def reference(T_max, base_lrs, eta_min, steps, **options):
    return torch.tensor(schedules.lr_history(schedules.torch_cosine(T_max, eta_min), base_lrs, steps, **options),
                        dtype=torch.float64)


def mistakes(T_max, base_lrs, eta_min, steps):
    """Wrong schedulers, as their tables of rates for steps 0..steps."""
    cos = schedules.cosine_annealing
    ts = range(steps + 1)

    def rule(f):
        return lambda: _schedule.table(f, base_lrs, ts)

    def compounding():
        # The closed form applied to the group's current lr instead of its base lr.
        rows, current = [], list(base_lrs)
        for t in ts:
            current = [cos(t, T_max, lr, eta_min) for lr in current]
            rows.append(current)
        return torch.tensor(rows, dtype=torch.float64)

    return {
        "the step is off by one: get_lr() returns the rate of last_epoch + 1 (last_epoch is "
        "already the index of the step being set up; it is 0 in __init__)":
            rule(lambda t, lr: cos(t + 1, T_max, lr, eta_min)),
        "eta_min is ignored, so the rate decays to zero instead of to eta_min":
            rule(lambda t, lr: cos(t, T_max, lr, 0.0)),
        "the rate is clamped at T_max (it stays at eta_min), but CosineAnnealingLR keeps going "
        "round the cosine past T_max, back up to the base rate at 2·T_max":
            rule(lambda t, lr: cos(min(t, T_max), T_max, lr, eta_min)),
        "the closed form is applied to group['lr'], which the scheduler has already decayed, "
        "instead of to self.base_lrs, so the decay compounds step after step":
            compounding,
        "every group uses the first group's base rate instead of its own (self.base_lrs[i])":
            rule(lambda t, lr: cos(t, T_max, base_lrs[0], eta_min)),
        "the schedule restarts at T_max (t mod T_max, as SGDR does) instead of climbing back "
        "up the cosine":
            rule(lambda t, lr: cos(t % T_max, T_max, lr, eta_min)),
        "the denominator is T_max − 1":
            rule(lambda t, lr: cos(t, T_max - 1, lr, eta_min)),
        "eta_min is added without being subtracted from the base rate":
            rule(lambda t, lr: eta_min + (cos(t, T_max, lr, 0.0))),
    }


def compare(submission, T_max, base_lrs, eta_min, steps, context, first=0):
    seen = history(submission, T_max, base_lrs, eta_min, steps)
    expected = reference(T_max, base_lrs, eta_min, steps)
    variants = mistakes(T_max, base_lrs, eta_min, steps)
    _schedule.explain_rates(seen[first:], expected[first:], reference=REFERENCE, context=context,
                            first_step=first, variants=variants, identify=seen)


def check_is_an_lr_scheduler_starting_at_the_base_rates(submission, seed):
    """Subclasses LRScheduler; after construction each group's lr is its base rate"""
    lr_scheduler = torch.optim.lr_scheduler
    facts = _learner.class_facts(submission)
    if not (facts["is_class"] and _learner.derives_from(facts, lr_scheduler.LRScheduler)):
        raise Mismatch(f"{NAME} must be a class deriving from torch.optim.lr_scheduler.LRScheduler.")
    if _learner.derives_from(facts, lr_scheduler.CosineAnnealingLR):
        raise Mismatch(f"{NAME} must implement the schedule itself, not subclass CosineAnnealingLR.")
    T_max, base_lrs, eta_min = problem(seed, with_eta_min=True)
    first = history(submission, T_max, base_lrs, eta_min, 0)
    _schedule.explain_rates(
        first, torch.tensor([base_lrs], dtype=torch.float64), reference="the base rate",
        context=f"right after {NAME}(optimizer, T_max={T_max}, eta_min={eta_min:.4g})",
        variants=mistakes(T_max, base_lrs, eta_min, 0),
    )


@pytest.mark.weight(3)
def check_matches_cosine_annealing_lr_for_t_max_steps(submission, seed):
    """Matches CosineAnnealingLR for T_max steps, each group from its own base rate"""
    T_max, base_lrs, _ = problem(seed, with_eta_min=False)
    compare(submission, T_max, base_lrs, 0.0, T_max, f"T_max={T_max}, eta_min=0")


@pytest.mark.weight(2)
def check_decays_to_eta_min(submission, seed):
    """With eta_min > 0, matches CosineAnnealingLR and reaches eta_min at T_max"""
    T_max, base_lrs, eta_min = problem(seed, with_eta_min=True)
    compare(submission, T_max, base_lrs, eta_min, T_max, f"T_max={T_max}, eta_min={eta_min:.4g}")


@pytest.mark.weight(2)
def check_keeps_going_round_past_t_max(submission, seed):
    """Past T_max, climbs back up the cosine exactly as CosineAnnealingLR does"""
    T_max, base_lrs, eta_min = problem(seed, with_eta_min=seed % 2 == 1)
    compare(submission, T_max, base_lrs, eta_min, 3 * T_max,
            f"T_max={T_max}, eta_min={eta_min:.4g}, past T_max", first=T_max + 1)


def check_state_dict_round_trip(submission, seed):
    """Carries on identically through state_dict() mid-run, and when built with last_epoch = k"""
    T_max, base_lrs, eta_min = problem(seed, with_eta_min=True)
    steps, at = 2 * T_max, T_max // 2 + 1
    _schedule.explain_rates(
        history(submission, T_max, base_lrs, eta_min, steps, reload_at=at),
        history(submission, T_max, base_lrs, eta_min, steps),
        reference="the same scheduler without the round trip",
        context=f"after saving and loading state_dict() at step {at}",
    )
    own = history(submission, T_max, base_lrs, eta_min, at + 4)
    _schedule.explain_rates(
        resumed(submission, T_max, base_lrs, own[at].tolist(), eta_min, at, 3), own[at + 1:],
        reference="the same scheduler run from step 0", first_step=at + 1,
        context=f"built with last_epoch={at} to resume a run (each group holding its 'initial_lr')",
        variants={"last_epoch is not passed on: call super().__init__(optimizer, last_epoch), or the "
                  "schedule starts again from step 0": lambda: own[:4]})


@probe
def resumed(scheduler_class, T_max, base_lrs, lrs, eta_min, last_epoch, steps):
    """Each group's rate after ``CosineAnnealing(optimizer, ..., last_epoch=k)`` on an
    optimizer as a resumed run has it (each group's 'initial_lr' its base rate, its 'lr'
    ``lrs``, the rate of step k), then after each of ``steps`` more steps."""
    groups = [{"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], "initial_lr": base,
               "lr": lr} for base, lr in zip(base_lrs, lrs)]
    optimizer = torch.optim.SGD(groups, lr=1e-3)
    name = f"{NAME}(optimizer, T_max={T_max}, eta_min={eta_min:.4g}, last_epoch={last_epoch})"
    scheduler = _schedule.Guarded(call_submission(name, scheduler_class, optimizer, T_max=T_max, eta_min=eta_min,
                                                  last_epoch=last_epoch, hints=HINTS), NAME, HINTS)
    rows = [[group["lr"] for group in optimizer.param_groups]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rows.append([group["lr"] for group in optimizer.param_groups])
    return _schedule.as_table(rows, "the param groups' learning rates")


def sgd(groups):
    return torch.optim.SGD(groups, lr=1e-3)


@probe
def sgd_with_scheduler(scheduler_class, run, T_max):
    """The parameters after each step of SGD driven through ``run`` with the learner's
    scheduler, stepped after each optimizer step."""
    def guarded(optimizer):
        return _schedule.Guarded(learner(scheduler_class, T_max, 0.0)(optimizer), NAME, HINTS)

    return schedules.replay_with_scheduler(sgd, guarded, run)


def check_drives_an_optimizer_like_cosine_annealing_lr(submission, seed, dtype, device):
    """SGD with this scheduler moves the parameters exactly as with CosineAnnealingLR"""
    run = make_schedule(seed, dtype, device, steps=12)
    T_max = 12 + seed % 5  # no further than T_max: past it is checked above
    seen = sgd_with_scheduler(submission, run, T_max)
    expected = schedules.replay_with_scheduler(sgd, schedules.torch_cosine(T_max), run)
    for step, (a, b) in enumerate(zip(seen, expected)):
        if not close(a, b, dtype):
            index = next(i for i, (x, y) in enumerate(zip(a, b)) if not close(x, y, dtype))
            raise Mismatch(
                f"SGD with {NAME}(optimizer, T_max={T_max}): after step {step + 1}, parameter {index} is "
                f"{describe(a[index])}; with {REFERENCE} it is {describe(b[index])}."
            )
