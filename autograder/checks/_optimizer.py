"""Shared machinery for the checks of ``torch.optim.Optimizer`` subclasses.

The probes (run where the learner's code lives): :func:`drive` runs a learner's optimizer
class through a scripted run (:func:`autograder.oracles.replay`), with torch's optimizers
refused while it runs and its constructor and ``step`` guarded, so an exception becomes
feedback; :func:`constructed_groups`,
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
    no_builtin_optimizers,
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

    with no_builtin_optimizers(name):
        return oracles.replay(build, schedule, reload_at=reload_at, group_options=group_options)


def _learner_builder(learner, name: str, hints: Mapping[str, str]):
    def build(groups):
        optimizer = call_submission(f"{name}(params, ...)", learner, groups, hints=hints, lr=1e-3)
        original = optimizer.step
        optimizer.step = lambda *a, **k: call_submission(f"{name}.step", original, *a, hints=hints, **k)
        return optimizer

    return build


def _outcome(run) -> dict:
    """``{"history": run()}``, or ``{"error": ...}`` naming what ended it."""
    try:
        return {"history": run()}
    except SubmissionError as error:
        return {"error": str(error)}
    except Exception as error:  # torch's optimizer failing on the learner's state_dict
        return {"error": f"torch.optim raised {type(error).__name__}: {error}"[:300]}


@probe
def interchange(learner, schedule: oracles.Schedule, *, name: str, reference: str, reload_at: int,
                group_options=None, hints: Mapping[str, str] | None = None) -> dict:
    """The runs of ``schedule`` shared by the learner's class and torch.optim.``reference``:
    ``"to torch"`` starts with the learner's and, after step ``reload_at``, goes on in
    torch's loaded with the learner's ``state_dict()``; ``"from torch"`` the reverse. Each
    is the parameters after every step, or the error that ended it."""
    mine, torchs = _learner_builder(learner, name, dict(hints or {})), getattr(torch.optim, reference)

    def theirs(groups):
        # A group keeps the learner's settings; options the exercise leaves out (FastAdam
        # has no weight_decay) take torch's defaults.
        optimizer = torchs(groups, lr=1e-3)
        load = optimizer.load_state_dict
        optimizer.load_state_dict = lambda saved: load({**saved, "param_groups": [
            {**optimizer.defaults, **group} for group in saved["param_groups"]]})
        return optimizer

    def mine_from_torch(groups):
        # torch saves the step count as a tensor; the exercise keeps a Python int.
        optimizer = mine(groups)
        load = optimizer.load_state_dict
        optimizer.load_state_dict = lambda saved: load({**saved, "state": {
            key: {k: int(v) if k == "step" else v for k, v in entry.items()}
            for key, entry in saved["state"].items()}})
        return optimizer

    return {
        direction: _outcome(lambda first=first, then=then: oracles.replay(
            first, schedule, reload_at=reload_at, reload_into=then, group_options=group_options))
        for direction, first, then in (("to torch", mine, theirs), ("from torch", theirs, mine_from_torch))
    }


def require_interchangeable(submission, schedule: oracles.Schedule, *, name: str, reference: type,
                            state: str, reload_at: int, group_options=None, hints=(),
                            directions=("to torch", "from torch")) -> None:
    """Raise :class:`Mismatch` unless a run goes on identically when the learner's
    ``state_dict()`` is loaded into ``reference`` mid-run, and the reverse (each of
    ``directions``): the state is kept under torch's names (``state`` lists them)."""
    runs = interchange(submission, schedule, name=name, reference=reference.__name__, reload_at=reload_at,
                       group_options=group_options, hints=dict(hints))
    expected = oracles.replay(lambda groups: reference(groups, lr=1e-3), schedule, group_options=group_options)
    names = f"torch.optim.{reference.__name__} keeps each parameter's state in self.state[p] under {state}"
    for direction in directions:
        way = (f"{name}'s state_dict() loaded into torch.optim.{reference.__name__}" if direction == "to torch"
               else f"torch.optim.{reference.__name__}'s state_dict() loaded into {name}")
        outcome = runs[direction]
        if "error" in outcome:
            raise Mismatch(f"with {way} after step {reload_at + 1}, the run stopped: {outcome['error']} "
                           f"Likely mistake: the state is not kept under torch's names; {names}.")
        step = oracles.first_divergence(outcome["history"], expected, schedule.initial[0][0].dtype)
        if step is not None:
            raise Mismatch(f"with {way} after step {reload_at + 1}, the run leaves torch's at step "
                           f"{step + 1}. Likely mistake: the state is not kept under torch's names; "
                           f"{names}.")


@probe
def with_group_added(learner, schedule: oracles.Schedule, *, name: str, at: int, group_options=None,
                     hints: Mapping[str, str] | None = None):
    """The learner's run of ``schedule`` with its last group joining through
    ``add_param_group()`` before step ``at``."""
    return oracles.replay(_learner_builder(learner, name, dict(hints or {})), schedule,
                          group_options=group_options, add_last_group_at=at)


def require_add_param_group(submission, schedule: oracles.Schedule, *, name: str, reference: type,
                            group_options=None, hints=()) -> None:
    """Raise :class:`Mismatch` unless parameters added with ``add_param_group()`` after the
    first step are updated as ``reference`` updates them (state created in ``__init__``
    is missing for them)."""
    advice = ("Likely mistake: each parameter's state is created in __init__; create it in step() "
              "the first time the parameter has a gradient (`if not state:`), so that parameters "
              "added later with add_param_group() get theirs.")
    try:
        history = with_group_added(submission, schedule, name=name, at=1, group_options=group_options,
                                   hints=dict(hints))
    except SubmissionError as error:
        raise Mismatch(f"after add_param_group() on step 2: {error} {advice}") from None
    expected = oracles.replay(lambda groups: reference(groups, lr=1e-3), schedule, group_options=group_options,
                              add_last_group_at=1)
    step = oracles.first_divergence(history, expected, schedule.initial[0][0].dtype)
    if step is not None:
        raise Mismatch(f"with a param group added by add_param_group() before step 2, the run leaves "
                       f"torch.optim.{reference.__name__}'s at step {step + 1}. {advice}")


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


def require_accepts(submission, name: str, settings: list, reference: type) -> None:
    """Raise :class:`Mismatch` at the first of ``settings`` that the learner's class
    refuses although ``reference`` (a torch.optim class) accepts it: the boundary values
    (a learning rate, ε, α or β₁ of exactly 0) that "as torch does" allows."""
    for kwargs, error in zip(settings, rejections(submission, name, settings)):
        if error is None:
            continue
        reference([torch.zeros(1, requires_grad=True)], **kwargs)  # a setting torch refuses is the check's bug
        raise Mismatch(
            f"{error} torch.optim.{reference.__name__} accepts {shown_call(name, '[p]', kwargs)}: "
            "reject only the values torch rejects (a negative value; 0 is allowed)."
        )


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
