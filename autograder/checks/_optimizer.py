"""Shared machinery for the checks of ``torch.optim.Optimizer`` subclasses.

A learner's optimizer class is driven through a scripted run
(:func:`autograder.oracles.replay`) with its constructor and ``step`` guarded, so an
exception becomes feedback; :func:`explain_divergence` turns the first step where the run
leaves the reference into one sentence, naming the mistake when a known wrong variant
reproduces the learner's run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from autograder import oracles
from autograder.feedback import Mismatch, call_submission, close, describe


def drive(
    submission,
    schedule: oracles.Schedule,
    *,
    name: str,
    hints: Mapping[str, str] = (),
    defaults: Mapping[str, object] | None = None,
    **replay_options,
):
    """Run the learner's optimizer class ``submission`` through ``schedule``.

    It is constructed as ``submission(param_groups, **defaults)`` (``lr=1e-3`` unless
    given); ``replay_options`` go to :func:`autograder.oracles.replay`.
    """
    defaults = dict(defaults or {"lr": 1e-3})

    def build(groups):
        optimizer = call_submission(f"{name}(params, ...)", submission, groups, hints=hints, **defaults)
        original = optimizer.step
        optimizer.step = lambda *a, **k: call_submission(f"{name}.step", original, *a, hints=hints, **k)
        return optimizer

    return oracles.replay(build, schedule, **replay_options)


def explain_divergence(
    history,
    expected,
    schedule: oracles.Schedule,
    dtype: torch.dtype,
    variants: Mapping[str, Callable[[], list]] = (),
    *,
    reference: str,
) -> None:
    """Raise :class:`Mismatch` at the first step where ``history`` leaves ``expected``.

    ``variants`` maps a mistake to a function computing the run that mistake produces;
    the first that reproduces ``history`` exactly is named. ``reference`` names what
    ``expected`` came from, for the message (``"torch.optim.SGD"``).
    """
    step = oracles.first_divergence(history, expected, dtype)
    if step is None:
        return
    seen, wanted = history[step], expected[step]
    index = next(i for i, (a, b) in enumerate(zip(seen, wanted)) if not close(a, b, dtype))
    message = (
        f"after step {step + 1} of {schedule.steps}, parameter {index} is "
        f"{describe(seen[index])}; {reference} gives {describe(wanted[index])}."
    )
    for mistake, compute in dict(variants).items():
        if oracles.first_divergence(history, compute(), dtype) is None:
            message += f" Likely mistake: {mistake}."
            break
    else:
        if schedule.lr_changes and step == min(schedule.lr_changes):
            message += (
                " The runs part ways exactly when a learning rate is changed through "
                "`optimizer.param_groups[i]['lr']`: read each group's lr inside step()."
            )
    raise Mismatch(message)


def learning_rate_mistakes(equation: Callable[[oracles.Schedule], list], schedule: oracles.Schedule):
    """Mistakes any optimizer can make with its learning rate, as runs of ``equation``
    (a float64 oracle taking a schedule): a flipped sign, the rate ignored, the
    constructor's default used for every group, and the rate read once in ``__init__``."""
    return {
        "the sign is flipped (parameters climb the loss)": lambda: equation(schedule.with_lr(factor=-1.0)),
        "the group's learning rate is ignored (as if it were 1)": lambda: equation(schedule.with_lr(fixed=1.0)),
        "every group uses the constructor's default lr instead of its own group['lr']": lambda: (
            equation(schedule.with_lr(fixed=1e-3))
        ),
        "the learning rate is read once, in __init__; changes made through "
        "`optimizer.param_groups[i]['lr']` (as schedulers do) are ignored": lambda: (
            equation(schedule.without_lr_changes())
        ),
    }


def step_with_closure(name: str, optimizer, w: torch.Tensor, hints: Mapping[str, str] = ()):
    """Call ``optimizer.step(closure)`` once, with the closure computing ``(w ** 2).sum()``,
    and raise :class:`Mismatch` unless step() called the closure exactly once with
    gradients enabled and returned its loss. The caller then checks where ``w`` went."""
    calls = []
    expected = float((w.detach() ** 2).sum())

    def closure():
        calls.append(torch.is_grad_enabled())
        optimizer.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = call_submission(f"{name}.step(closure)", optimizer.step, closure, hints=hints)
    if calls != [True]:
        raise Mismatch(
            f"step(closure) called the closure {len(calls)} time(s)"
            + (" with gradients disabled" if calls and not all(calls) else "")
            + "; it must call it exactly once, inside `with torch.enable_grad():`."
        )
    if not isinstance(loss, torch.Tensor) or float(loss) != expected:
        raise Mismatch(
            f"step(closure) must return the closure's loss ({expected!r} here); saw {loss!r:.60}."
        )
