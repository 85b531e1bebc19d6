"""Shared machinery for the checks of ``torch.optim.Optimizer`` subclasses.

The probes (run where the learner's code lives): :func:`drive` runs a learner's optimizer
class through a scripted run (:func:`autograder.oracles.replay`) with its constructor and
``step`` guarded, so an exception becomes feedback; :func:`constructed_groups`,
:func:`closure_step` and :func:`rejections` construct it and report its param groups,
one ``step(closure)``, and which settings it refuses.

The judging side: :func:`explain_divergence` turns the first step where a run leaves the
reference into one sentence, naming the mistake when a known wrong variant reproduces the
learner's run exactly; :func:`require_own_optimizer`, :func:`require_defaults` and
:func:`step_with_closure` decide from the probes' reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from autograder import oracles
from autograder.checks import _learner
from autograder.feedback import (
    Mismatch,
    SubmissionError,
    builtin_optimizer_classes,
    call_submission,
    close,
    describe,
)
from autograder.probe import probe


@probe
def drive(
    learner,
    schedule: oracles.Schedule,
    *,
    name: str,
    hints: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
    reload_at: int | None = None,
    group_options=None,
):
    """Run the learner's optimizer class through ``schedule``; the parameters after each step.

    It is constructed as ``learner(param_groups, **defaults)`` (``lr=1e-3`` unless
    given); ``reload_at`` and ``group_options`` go to :func:`autograder.oracles.replay`.
    """
    defaults, hints = dict(defaults or {"lr": 1e-3}), dict(hints or {})

    def build(groups):
        optimizer = call_submission(f"{name}(params, ...)", learner, groups, hints=hints, **defaults)
        original = optimizer.step
        optimizer.step = lambda *a, **k: call_submission(f"{name}.step", original, *a, hints=hints, **k)
        return optimizer

    return oracles.replay(build, schedule, reload_at=reload_at, group_options=group_options)


def shown_call(name: str, first: str, kwargs: Mapping[str, object]) -> str:
    """How a call reads in a message: ``Adam([p], lr=0.1)``."""
    return f"{name}({', '.join([first] + [f'{k}={v!r}' for k, v in kwargs.items()])})"


@probe
def constructed_groups(learner, name: str, kwargs: Mapping[str, object] | None = None,
                       hints: Mapping[str, str] | None = None):
    """``learner([p], **kwargs)``'s param groups, each without its params (None if it has none)."""
    p = torch.zeros(2, requires_grad=True)
    kwargs = dict(kwargs or {})
    optimizer = call_submission(shown_call(name, "[p]", kwargs), learner, [p], hints=dict(hints or {}), **kwargs)
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list):
        return None
    return [{k: v for k, v in dict(group).items() if k != "params"} for group in groups]


@probe
def rejections(learner, name: str, settings: list) -> list:
    """For each dict of settings, what ``learner([p], **settings)`` raised (the message of
    the :class:`SubmissionError`), or None if it accepted them."""
    outcomes = []
    for kwargs in settings:
        p = torch.zeros(1, requires_grad=True)
        try:
            call_submission(shown_call(name, "[p]", kwargs), learner, [p], **kwargs)
        except SubmissionError as error:
            outcomes.append(str(error))
            continue
        outcomes.append(None)
    return outcomes


def require_own_optimizer(name: str, submission) -> None:
    """Raise :class:`Mismatch` if the learner's class reuses a torch.optim optimizer
    instead of being the learner's own: a subclass of one, or a class without its own
    ``step``."""
    facts = _learner.class_facts(submission)
    builtin = [b.__name__ for b in builtin_optimizer_classes() if _learner.derives_from(facts, b)]
    if builtin:
        raise Mismatch(
            f"{name} derives from torch.optim.{builtin[0]}: the exercise asks for your own "
            "update, so derive from torch.optim.Optimizer and write step() yourself."
        )
    own = [base for base in facts["mro"] if base["module"].split(".")[0] != "torch"]
    if facts["is_class"] and not any("step" in base["defines"] for base in own):
        raise Mismatch(f"{name} has no step() method of its own: write step() in the class.")


def require_optimizer_class(name: str, submission) -> None:
    """Raise :class:`Mismatch` unless the learner's object is a torch.optim.Optimizer subclass."""
    facts = _learner.class_facts(submission)
    if not (facts["is_class"] and _learner.derives_from(facts, torch.optim.Optimizer)):
        raise Mismatch(f"{name} must be a class deriving from torch.optim.Optimizer.")


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


@probe
def closure_step(learner, name: str, w: torch.Tensor, kwargs: Mapping[str, object],
                 hints: Mapping[str, str] | None = None) -> dict:
    """Construct ``learner([w], **kwargs)`` and call ``step(closure)`` once, with the
    closure computing ``(w ** 2).sum()``. Reports whether gradients were enabled at each
    call of the closure, what step() returned, and ``w`` afterwards."""
    hints = dict(hints or {})
    optimizer = call_submission(shown_call(name, "[w]", kwargs), learner, [w], hints=hints, **kwargs)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        optimizer.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = call_submission(f"{name}.step(closure)", optimizer.step, closure, hints=hints)
    return {"calls": calls, "loss": loss, "w": w.detach()}


def step_with_closure(name: str, submission, w: torch.Tensor, kwargs: Mapping[str, object],
                      hints: Mapping[str, str] = ()) -> torch.Tensor:
    """Raise :class:`Mismatch` unless the learner's ``step(closure)`` (see
    :func:`closure_step`) called the closure exactly once with gradients enabled and
    returned its loss; returns ``w`` after the step, for the caller to check."""
    expected = float((w.detach() ** 2).sum())
    seen = closure_step(submission, name, w, kwargs, hints)
    calls, loss = seen["calls"], seen["loss"]
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
    return seen["w"]


def require_defaults(group: Mapping, defaults: Mapping, *, name: str, reference: str,
                     missing: str | None = None, advice: str = "") -> None:
    """Raise :class:`Mismatch` at the first of ``defaults`` (torch.optim.``reference``'s)
    that ``group``, the plain data of ``name([p])``'s first param group, does not hold.

    A key the group lacks is named by ``missing`` (formatted with ``key``) when given, and
    otherwise reported as the value ``'missing'``; ``advice`` follows a wrong value."""
    for key, value in defaults.items():
        if key not in group and missing is not None:
            raise Mismatch(missing.format(key=repr(key)))
        seen = group.get(key, "missing")
        if key == "betas" and isinstance(seen, (list, tuple)):
            seen = tuple(seen)
        if seen != value:
            raise Mismatch(
                f"after {name}([p]), param_groups[0][{key!r}] is {seen!r}; torch.optim.{reference}'s "
                f"default is {value!r}." + (f" {advice}" if advice else "")
            )
