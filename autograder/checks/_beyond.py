"""What the checks of chapter 8's optimizer classes share: a learner's run judged against
a rule of :mod:`autograder.oracles.beyond` in float64, naming the mistake whose run it
reproduces."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from autograder import oracles
from autograder.checks import _optimizer
from autograder.oracles import beyond


def compare(submission, schedule: oracles.Schedule, dtype, options, *, name: str, hints: Mapping[str, str],
            step: Callable, defaults: dict, mistaken_step: Callable, mistakes: Mapping[str, str], reference: str,
            reload_at: int | None = None) -> None:
    """Raise :class:`~autograder.feedback.Mismatch` at the first step where the learner's
    optimizer, driven through ``schedule`` with group ``options``, leaves the oracle
    ``step`` (built with ``defaults`` and lr=1e-3). ``mistakes`` maps a sentence to the
    ``mistake`` argument of ``mistaken_step`` that reproduces it; the learning-rate
    mistakes of any optimizer are tried too."""
    __tracebackhide__ = True  # pytest need not print the schedule's tensors

    def equation(s, rule=step, **extra):
        return beyond.equation(rule, s, options, defaults=defaults, constructor=dict(lr=1e-3), **extra)

    history = _optimizer.drive(submission, schedule, name=name, hints=hints, group_options=options,
                               reload_at=reload_at)
    variants = {sentence: (lambda m=m: equation(schedule, mistaken_step, mistake=m))
                for sentence, m in mistakes.items()}
    variants.update(_optimizer.learning_rate_mistakes(equation, schedule))
    _optimizer.explain_divergence(history, equation(schedule), schedule, dtype, variants, reference=reference)
