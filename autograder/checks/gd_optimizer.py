"""Part ``gd-optimizer``: a ``torch.optim.Optimizer`` subclass interchangeable with
``torch.optim.SGD`` without momentum.

Oracles: ``torch.optim.SGD`` driven through the same scripted run
(:func:`autograder.oracles.replay`: random shapes, two param groups with their own
learning rates, parameters without gradients on some steps, a learning rate changed
mid-run, a ``state_dict`` round trip), and the equation in float64
(:func:`autograder.oracles.sgd_equation`).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _optimizer
from autograder.feedback import Mismatch, describe

NAME = "GradientDescent"
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, "
        "as torch.optim.SGD does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` or update `p` inside "
        "`with torch.no_grad():`."
    ),
}


def drive(submission, schedule, **options):
    _optimizer.require_own_optimizer(NAME, submission)
    return _optimizer.drive(submission, schedule, name=NAME, hints=HINTS, **options)


def sgd(groups):
    return torch.optim.SGD(groups, lr=1e-3)


def explain(history, expected, schedule, dtype, variants):
    _optimizer.explain_divergence(history, expected, schedule, dtype, variants,
                                  reference="torch.optim.SGD")


def common_mistakes(schedule):
    return _optimizer.learning_rate_mistakes(oracles.sgd_equation, schedule)


def check_is_a_torch_optimizer(submission):
    """Subclasses torch.optim.Optimizer and takes (params, lr)"""
    _optimizer.require_optimizer_class(NAME, submission)
    _optimizer.require_own_optimizer(NAME, submission)
    groups = _optimizer.constructed_groups(submission, NAME, dict(lr=0.1))
    group = groups[0] if groups else {}
    if group.get("lr") != 0.1:
        raise Mismatch(
            "after GradientDescent([p], lr=0.1), param_groups[0]['lr'] should be 0.1; saw "
            f"{group.get('lr')!r}. Pass `dict(lr=lr)` as the defaults to "
            "`super().__init__(params, defaults)`."
        )


@pytest.mark.weight(3)
def check_matches_sgd_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.SGD step for step (groups, missing grads, lr changed mid-run)"""
    schedule = oracles.make_schedule(seed, dtype, device)
    history = drive(submission, schedule)
    expected = oracles.replay(sgd, schedule)
    explain(history, expected, schedule, dtype, common_mistakes(schedule))
    equation = oracles.sgd_equation(schedule)
    step = oracles.first_divergence(history, equation, dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave θ ← θ − η·g.")


def check_skips_parameters_without_gradients(submission, seed):
    """Leaves a parameter whose .grad is None untouched"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=4, missing_grad_prob=0.5)
    history = drive(submission, schedule)
    explain(history, oracles.replay(sgd, schedule), schedule, torch.float64, common_mistakes(schedule))


def check_state_dict_round_trip(submission, seed):
    """Saves and restores through state_dict() mid-run and carries on identically"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=12)
    history = drive(submission, schedule, reload_at=5)
    explain(history, oracles.replay(sgd, schedule), schedule, torch.float64, common_mistakes(schedule))


def check_step_takes_a_closure(submission):
    """step(closure) re-evaluates the loss with gradients enabled and returns it"""
    _optimizer.require_own_optimizer(NAME, submission)
    w = _optimizer.step_with_closure(NAME, submission, torch.tensor([1.0, -2.0], requires_grad=True),
                                     dict(lr=0.1), HINTS)
    if not torch.allclose(w, torch.tensor([0.8, -1.6])):
        raise Mismatch(
            f"after step(closure) with lr=0.1, w should be [0.8, -1.6]; saw {describe(w)}."
        )


def check_rejects_a_negative_learning_rate(submission):
    """Rejects a negative learning rate with ValueError and accepts lr = 0, as torch.optim.SGD does"""
    _optimizer.require_own_optimizer(NAME, submission)
    _optimizer.require_accepts(submission, NAME, [dict(lr=0.0)], torch.optim.SGD)
    (error,) = _optimizer.rejections(submission, NAME, [dict(lr=-0.1)])
    if error is not None and "ValueError" in error:
        return
    if error is not None:
        raise Mismatch(f"{NAME}([p], lr=-0.1) should raise ValueError; instead {error}")
    raise Mismatch(
        f"{NAME}([p], lr=-0.1) was accepted: raise ValueError for a negative learning rate, "
        "as torch.optim.SGD does."
    )
