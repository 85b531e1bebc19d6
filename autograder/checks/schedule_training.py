"""Part ``schedule-training``: ``train(X, y, make_scheduler, lr, epochs, batch_size)`` fits
Xw ≈ y with ``torch.optim.Adam`` and a learning-rate schedule stepped once per optimizer step.

The loop starts from w = 0 and makes ``epochs`` passes over the minibatches
``X.split(batch_size)`` in order (the last one may be smaller), minimising each batch's
mean squared error. It builds the schedule once, as ``make_scheduler(optimizer,
total_steps)`` with ``total_steps`` the number of optimizer steps of the whole run, and
calls ``scheduler.step()`` after every ``optimizer.step()``. It returns ``(w, lrs)``:
the trained weights and the learning rate each optimizer step used. The oracle is the
same loop with ``torch.optim.Adam`` in float64
(:func:`autograder.oracles.schedules.adam_with_schedule`).
"""

import math

import pytest
import torch

from autograder import oracles, problems
from autograder.checks import _schedule
from autograder.feedback import Mismatch, call_submission, describe, expect_close
from autograder.oracles import schedules
from autograder.probe import probe

NAME = "train"
HINTS = {
    "unexpected keyword": "Call signature: train(X, y, make_scheduler, lr, epochs, batch_size).",
    "positional argument": "Call signature: train(X, y, make_scheduler, lr, epochs, batch_size).",
    "does not require grad": "Likely mistake: w was created without `requires_grad=True`.",
    "leaf Variable": (
        "Likely mistake: w must be a leaf tensor that requires grad, created once and handed to "
        "torch.optim.Adam([w], lr=lr)."
    ),
}
TARGET = schedules.TRAINING_TARGET


def problem(seed, dtype=torch.float64, device="cpu"):
    gen = torch.Generator().manual_seed(8000 + seed)
    batch_size = _schedule.randint(gen, 4, 12)
    batches = _schedule.randint(gen, 3, 7)
    # Every other case ends each epoch with a smaller batch.
    remainder = _schedule.randint(gen, 1, batch_size - 1) if seed % 2 == 0 else 0
    n = batch_size * (batches - (remainder > 0)) + remainder
    d = _schedule.randint(gen, 2, 6)
    epochs = _schedule.randint(gen, 2, 5)
    lr = float(10 ** torch.empty((), dtype=torch.float64).uniform_(-2.0, -1.0, generator=gen))
    X, y = problems.least_squares(seed, n, d, noise=0.5, dtype=dtype, device=device)
    return X, y, lr, epochs, batch_size


class Factory:
    """``make_scheduler`` for the learner: CosineAnnealingLR(T_max=total_steps), recording
    how it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, optimizer, total_steps):
        self.calls.append(total_steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


def target_schedule(optimizer, total_steps):
    """The assignment's own schedule: warmup, then cosine decay over the whole run."""
    return schedules.warmup_cosine_reference(optimizer, TARGET["warmup_steps"], total_steps)


@probe
def train(learner, X, y, lr, epochs, batch_size, schedule="cosine"):
    """The learner's (w, lrs) with ``make_scheduler`` a :class:`Factory` (``"cosine"``) or
    :func:`target_schedule` (``"target"``); how ``make_scheduler`` was called; and the
    grad_fn of w if it is still in a graph."""
    factory = Factory()
    make = factory if schedule == "cosine" else target_schedule
    result = call_submission(f"{NAME}(X, y, make_scheduler, lr={lr:.4g}, epochs={epochs}, "
                             f"batch_size={batch_size})", learner, X, y, make, lr, epochs, batch_size,
                             hints=HINTS)
    w = result[0] if isinstance(result, (tuple, list)) and len(result) == 2 else None
    graph = isinstance(w, torch.Tensor) and w.grad_fn is not None
    return {"result": result, "factory_calls": factory.calls,
            "grad_fn": type(w.grad_fn).__name__ if graph else None}


def run(submission, X, y, lr, epochs, batch_size, schedule="cosine"):
    """The learner's w, its rates as floats, and what :func:`train` reported."""
    seen = train(submission, X, y, lr, epochs, batch_size, schedule)
    result = seen["result"]
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Mismatch(f"{NAME} returned {type(result).__name__}; it must return the pair (w, lrs).")
    w, lrs = result
    if not isinstance(w, torch.Tensor):
        raise Mismatch(f"w must be a tensor; saw {type(w).__name__}.")
    try:
        lrs = [float(v) for v in lrs]
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch("lrs must be a list of numbers, one per optimizer step.") from None
    return w, lrs, seen


def rate_mistakes(n, lr, epochs, batch_size):
    """Wrong ways to drive the schedule, as the rate each optimizer step uses."""
    per_epoch = math.ceil(n / batch_size)
    total = epochs * per_epoch
    steps = range(total)
    cos = schedules.cosine_annealing
    mistakes = {
        "the scheduler steps once per epoch instead of once per optimizer step: call "
        "scheduler.step() right after optimizer.step(), inside the loop over minibatches":
            [cos(t // per_epoch, total, lr) for t in steps],
        "total_steps is the number of epochs, and the scheduler steps once per epoch: the "
        "schedule is meant per optimizer step (epochs × batches per epoch)":
            [cos(t // per_epoch, epochs, lr) for t in steps],
        "total_steps is the number of epochs, but the scheduler steps once per optimizer step, "
        "so CosineAnnealingLR goes round its cosine again and again":
            [cos(t, epochs, lr) for t in steps],
        "the schedule runs one step ahead: scheduler.step() is called before optimizer.step() "
        "(PyTorch warns about this order), or the rate is read after scheduler.step()":
            [cos(t + 1, total, lr) for t in steps],
        "the scheduler is never stepped, so the rate stays at lr":
            [lr for t in steps],
    }
    if n % batch_size:
        mistakes["total_steps leaves out each epoch's last, smaller batch: there are "
                  "ceil(n / batch_size) optimizer steps per epoch"] = (
            [cos(t, epochs * (n // batch_size), lr) for t in steps])
    return mistakes


def following(rates):
    """A ``make_scheduler`` that makes the optimizer use exactly ``rates``, step by step."""
    def make(optimizer, total_steps):
        base = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: rates[t] / base if t < len(rates) else 0.0)

    return make


def check_records_one_rate_per_optimizer_step(submission, seed):
    """Records one learning rate per optimizer step (the last batch may be smaller)"""
    X, y, lr, epochs, batch_size = problem(seed)
    _, lrs, _ = run(submission, X, y, lr, epochs, batch_size)
    steps = epochs * math.ceil(X.shape[0] / batch_size)
    if len(lrs) != steps:
        hints = {
            epochs: " One rate per epoch was recorded: record one per optimizer step.",
            epochs * (X.shape[0] // batch_size): (
                " The last, smaller batch of each epoch is missing: `X.split(batch_size)` keeps it."),
        }
        raise Mismatch(
            f"with n={X.shape[0]}, batch_size={batch_size} and epochs={epochs} there are {steps} "
            f"optimizer steps; saw {len(lrs)} learning rates.{hints.get(len(lrs), '')}"
        )


def check_builds_the_schedule_once_for_every_step(submission, seed):
    """Calls make_scheduler(optimizer, total_steps) once, with total_steps = epochs × batches"""
    X, y, lr, epochs, batch_size = problem(seed)
    _, _, seen = run(submission, X, y, lr, epochs, batch_size)
    calls = seen["factory_calls"]
    n = X.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    if calls == [steps]:
        return
    if len(calls) != 1:
        raise Mismatch(
            f"make_scheduler was called {len(calls)} times; build the scheduler once, before "
            "the loop, so that the schedule runs over the whole training."
        )
    total = calls[0]
    why = {
        epochs: "total_steps counts epochs; the schedule is stepped per optimizer step",
        epochs * (n // batch_size): "each epoch's last, smaller batch is an optimizer step too",
    }.get(total, "")
    raise Mismatch(
        f"make_scheduler was called with total_steps={total}; the run takes {steps} optimizer steps "
        f"({epochs} epochs × {math.ceil(n / batch_size)} batches of at most {batch_size} out of "
        f"n={n})." + (f" Likely mistake: {why}." if why else "")
    )


@pytest.mark.weight(2)
def check_steps_the_schedule_once_per_optimizer_step(submission, seed):
    """Each optimizer step uses the schedule's next rate (scheduler.step() after optimizer.step())"""
    X, y, lr, epochs, batch_size = problem(seed)
    _, lrs, _ = run(submission, X, y, lr, epochs, batch_size)
    _, expected = schedules.adam_with_schedule(X, y, Factory(), lr, epochs, batch_size)
    variants = rate_mistakes(X.shape[0], lr, epochs, batch_size)
    _schedule.explain_rates(
        torch.tensor(lrs, dtype=torch.float64)[:, None], torch.tensor(expected, dtype=torch.float64)[:, None],
        reference="CosineAnnealingLR(T_max=total_steps), stepped once per optimizer step",
        context=f"lrs with epochs={epochs}, batch_size={batch_size}, n={X.shape[0]}",
        variants={m: (lambda v=v: torch.tensor(v, dtype=torch.float64)[:, None]) for m, v in variants.items()},
    )


def check_weights_follow_adam_under_the_schedule(submission, seed, dtype, device):
    """w is Adam's, from w = 0, with the scheduled rates (detached, X's dtype and device)"""
    X, y, lr, epochs, batch_size = problem(seed, dtype, device)
    w, _, seen = run(submission, X, y, lr, epochs, batch_size)
    if seen["grad_fn"] is not None:
        raise Mismatch(f"the returned w has grad_fn={seen['grad_fn']}: return `w.detach()`.")
    if w.dtype != X.dtype or w.device != X.device:
        raise Mismatch(
            f"w is {w.dtype} on {w.device} but X is {X.dtype} on {X.device}: create w with "
            "`torch.zeros(d, dtype=X.dtype, device=X.device, requires_grad=True)`."
        )
    expected, _ = schedules.adam_with_schedule(X, y, Factory(), lr, epochs, batch_size)
    variants = {
        mistake: (lambda rates=rates: schedules.adam_with_schedule(X, y, following(rates), lr, epochs,
                                                                   batch_size)[0])
        for mistake, rates in rate_mistakes(X.shape[0], lr, epochs, batch_size).items()
    }
    expect_close(
        w.detach().flatten(), expected,
        what=f"w after {epochs} epochs of Adam with lr={lr:.4g}, batch_size={batch_size}",
        variants=variants, dtype=dtype,
    )


def check_reaches_the_target_loss(submission):
    """Reaches the target loss on the assignment's problem with warmup and cosine decay"""
    t = TARGET
    X, y = problems.least_squares(t["seed"], t["n"], t["d"], noise=t["noise"])
    w, _, _ = run(submission, X, y, t["lr"], t["epochs"], t["batch_size"], schedule="target")
    best = problems.least_squares_minimum(X, y)
    final, _ = oracles.mse_and_grad(X, y, w.detach().flatten())
    if not final <= best + t["excess"]:
        raise Mismatch(
            f"after {t['epochs']} epochs with lr={t['lr']} and batch_size={t['batch_size']} the loss is "
            f"{final:.6g}; the best possible is {best:.6g} and the target is within {t['excess']:g} of "
            f"it (w = {describe(w)})."
        )
