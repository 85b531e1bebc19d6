"""Part ``momentum-optimizer``: a ``torch.optim.Optimizer`` subclass interchangeable with
``torch.optim.SGD`` with momentum, dampening, Nesterov, weight decay and maximize.

Oracles: ``torch.optim.SGD`` driven through the same scripted run
(:func:`autograder.oracles.replay`: random shapes, two param groups with settings of
their own, parameters without gradients on some steps, learning rates changed mid-run,
``state_dict`` round trips), the rule in float64
(:func:`autograder.oracles.momentum.sgd_momentum_equation`), and the errors
``torch.optim.SGD`` raises for invalid settings.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _optimizer
from autograder.checks.momentum_step import MISTAKES as STEP_MISTAKES
from autograder.feedback import Mismatch, call_submission, describe
from autograder.oracles import momentum
from autograder.probe import probe

NAME = "MomentumSGD"
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, "
        "as torch.optim.SGD does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` or update `p` inside "
        "`with torch.no_grad():`."
    ),
    "unexpected keyword": (
        "Signature: MomentumSGD(params, lr=1e-3, momentum=0.0, dampening=0.0, "
        "weight_decay=0.0, nesterov=False, *, maximize=False)."
    ),
}
MISTAKES = STEP_MISTAKES | {
    "decay_after_momentum": "weight decay is added to the step after momentum "
                            "(θ ← θ − η·(b + λ·θ)); torch.optim.SGD adds λ·θ to the gradient "
                            "before the momentum buffer, so momentum carries the decay too",
    "decay_ignored": "weight_decay is ignored",
    "maximize_ignored": "maximize=True is ignored: the parameters descend instead of ascending",
    "maximize_after_decay": "maximize negates the whole step (or the gradient after the weight "
                            "decay was added), so the decay is negated too and pushes the weights "
                            "away from zero; torch.optim.SGD negates only the gradient, before "
                            "adding λ·θ",
}
RESTARTED = (
    "after load_state_dict the momentum starts again from scratch: keep each buffer in "
    "`self.state[p]` (not in an attribute of your own), so that state_dict() saves it"
)


def describe_groups(options):
    """The settings of each group, for a message: "group 0: momentum=0.81; group 1: ..."."""
    def shown(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return "; ".join(f"group {i}: " + ", ".join(f"{k}={shown(v)}" for k, v in opts.items())
                     for i, opts in enumerate(options))


def drive(submission, schedule, options, **replay_options):
    return _optimizer.drive(submission, schedule, name=NAME, hints=HINTS,
                            group_options=options, **replay_options)


def sgd(groups):
    return torch.optim.SGD(groups, lr=1e-3)


def uniform(gen, lo, hi):
    return float(torch.empty(()).uniform_(lo, hi, generator=gen))


def group_settings(seed, kind):
    """Per-group options for one feature of SGD, drawn from the seed."""
    gen = torch.Generator().manual_seed(6000 + seed)
    m0, m1 = uniform(gen, 0.5, 0.95), uniform(gen, 0.5, 0.95)
    if kind == "dampening":
        return [{"momentum": m0}, {"momentum": m1, "dampening": uniform(gen, 0.1, 0.9)}]
    if kind == "nesterov":
        return [{"momentum": m0, "nesterov": True}, {"momentum": 0.0}]
    if kind == "decay":
        return [{"momentum": m0, "weight_decay": uniform(gen, 0.05, 0.5)},
                {"momentum": m1, "weight_decay": uniform(gen, 0.05, 0.5), "maximize": True}]
    raise ValueError(kind)


def mistakes(schedule, options, reload_at=None):
    def equation(s, **kw):
        return momentum.sgd_momentum_equation(s, options, **kw)

    found = {message: (lambda m=m: equation(schedule, mistake=m)) for m, message in MISTAKES.items()}
    if reload_at is not None:
        found[RESTARTED] = lambda: equation(schedule, reset_at=reload_at)
    return found | _optimizer.learning_rate_mistakes(equation, schedule)


def compare(submission, seed, dtype, device, kind, steps=30):
    schedule = oracles.make_schedule(seed, dtype, device, steps=steps)
    options = group_settings(seed, kind)
    history = drive(submission, schedule, options)
    expected = oracles.replay(sgd, schedule, group_options=options)
    _optimizer.explain_divergence(history, expected, schedule, dtype, mistakes(schedule, options),
                                  reference=f"torch.optim.SGD ({describe_groups(options)})")
    step = oracles.first_divergence(history, momentum.sgd_momentum_equation(schedule, options), dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave torch.optim.SGD's rule.")


def check_is_a_torch_optimizer(submission):
    """Subclasses torch.optim.Optimizer and records its settings in param_groups"""
    _optimizer.require_optimizer_class(NAME, submission)
    settings = dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)
    groups = _optimizer.constructed_groups(submission, NAME, dict(settings, maximize=True), HINTS)
    group = groups[0] if groups else {}
    wanted = {**settings, "nesterov": False, "maximize": True}
    wrong = {k: group.get(k) for k, v in wanted.items() if group.get(k) != v}
    if wrong:
        raise Mismatch(
            f"after {NAME}([p], lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01, "
            f"maximize=True), param_groups[0] should hold {wanted}; these differ: {wrong}. Pass "
            "every setting in the defaults dict to `super().__init__(params, defaults)`."
        )


@pytest.mark.weight(3)
def check_matches_sgd_with_momentum_and_dampening(submission, seed, dtype, device):
    """Matches torch.optim.SGD with momentum and dampening (groups, missing grads, lr changes)"""
    compare(submission, seed, dtype, device, "dampening")


@pytest.mark.weight(2)
def check_matches_sgd_with_nesterov(submission, seed, dtype, device):
    """Matches torch.optim.SGD with nesterov=True, and with momentum=0 in another group"""
    compare(submission, seed, dtype, device, "nesterov")


@pytest.mark.weight(2)
def check_matches_sgd_with_weight_decay_and_maximize(submission, seed, dtype, device):
    """Matches torch.optim.SGD with weight_decay, and with maximize=True"""
    compare(submission, seed, dtype, device, "decay")


def check_state_dict_round_trip(submission, seed):
    """Carries on identically through state_dict() mid-run, and with a group added later"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=12)
    options = group_settings(seed, "dampening")
    history = drive(submission, schedule, options, reload_at=5)
    _optimizer.explain_divergence(
        history, oracles.replay(sgd, schedule, group_options=options), schedule, torch.float64,
        mistakes(schedule, options, reload_at=5), reference="torch.optim.SGD",
    )
    _optimizer.require_add_param_group(submission, schedule, name=NAME, reference=torch.optim.SGD,
                                       group_options=options, hints=HINTS)


@probe
def torch_then_learner(learner, schedule, options, reload_at):
    """The run of ``schedule`` by torch.optim.SGD until step ``reload_at``, then by the
    learner's class, built fresh and loaded with SGD's state_dict."""
    built = []

    def build(groups):
        built.append(len(built))
        if len(built) == 1:
            return sgd(groups)
        optimizer = call_submission(f"{NAME}(params, ...)", learner, groups, lr=1e-3, hints=HINTS)
        original = optimizer.step

        def step(*args, **kwargs):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if "momentum_buffer" not in optimizer.state[p]:
                        raise Mismatch(
                            f"after loading torch.optim.SGD's state_dict, {NAME} has no "
                            "'momentum_buffer' in its state for a parameter: keep each buffer in "
                            "`self.state[p]['momentum_buffer']`, the name torch.optim.SGD uses, "
                            "so that either optimizer can continue the other's run."
                        )
            return call_submission(f"{NAME}.step", original, *args, hints=HINTS, **kwargs)

        optimizer.step = step
        return optimizer

    return oracles.replay(build, schedule, reload_at=reload_at, group_options=options)


def check_continues_from_torch_state_dict(submission, seed):
    """Loads the state_dict of a torch.optim.SGD mid-run and carries on as SGD would"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=12, missing_grad_prob=0.0)
    options = group_settings(seed, "dampening")
    history = torch_then_learner(submission, schedule, options, 5)
    expected = oracles.replay(sgd, schedule, group_options=options)
    _optimizer.explain_divergence(history, expected, schedule, torch.float64,
                                  mistakes(schedule, options, reload_at=5),
                                  reference="torch.optim.SGD")


def check_rejects_invalid_settings_like_sgd(submission):
    """Raises ValueError exactly where torch.optim.SGD does (negative values, Nesterov's conditions)"""
    settings = [
        dict(lr=-0.1), dict(lr=0.1, momentum=-0.5), dict(lr=0.1, weight_decay=-1e-4),
        dict(lr=0.1, nesterov=True), dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
        dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, momentum=0.9, dampening=0.5),
        dict(lr=0.1, momentum=0.0, dampening=0.3), dict(lr=0.0),
    ]
    outcomes = _optimizer.rejections(submission, NAME, settings)
    for kwargs, error in zip(settings, outcomes):
        shown = _optimizer.shown_call(NAME, "[p]", kwargs)
        try:
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], **kwargs)
            torch_error = None
        except ValueError as torch_raised:
            torch_error = str(torch_raised)
        if error is not None:
            if torch_error is None:
                raise Mismatch(f"{error} torch.optim.SGD accepts these settings.")
            if "ValueError" not in error:
                raise Mismatch(f"{shown} should raise ValueError, as torch.optim.SGD does "
                               f"({torch_error!r}); instead {error}")
            continue
        if torch_error is not None:
            raise Mismatch(f"{shown} was accepted, but torch.optim.SGD raises "
                           f"ValueError({torch_error!r}); raise it too.")


def check_step_takes_a_closure(submission):
    """step(closure) re-evaluates the loss with gradients enabled and returns it"""
    w = _optimizer.step_with_closure(NAME, submission, torch.tensor([1.0, -2.0], requires_grad=True),
                                     dict(lr=0.1, momentum=0.9), HINTS)
    if not torch.allclose(w, torch.tensor([0.8, -1.6])):
        raise Mismatch(
            f"after step(closure) with lr=0.1, w should be [0.8, -1.6]; saw {describe(w)}."
        )
