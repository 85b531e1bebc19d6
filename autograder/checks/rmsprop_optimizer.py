"""Part ``rmsprop-optimizer``: a ``torch.optim.Optimizer`` subclass interchangeable with
``torch.optim.RMSprop`` (lr, alpha, eps, weight_decay, momentum, centered).

Oracles: ``torch.optim.RMSprop`` driven through the same scripted run
(:func:`autograder.oracles.replay`: random shapes, two param groups with settings of their
own, gradients that differ in scale and are missing on some steps, a learning rate
changed mid-run, a ``state_dict`` round trip), and the equations in float64
(:func:`autograder.oracles.rmsprop.rmsprop_equation`).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _optimizer, _rmsprop
from autograder.feedback import Mismatch, describe
from autograder.oracles import rmsprop as equations

NAME = "RMSprop"
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, "
        "as torch.optim.RMSprop does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` or update `p` inside "
        "`with torch.no_grad():`."
    ),
    "KeyError": (
        "Likely mistake: a group's option is read with a name torch does not use, or a "
        "state entry is read before it was created; the options are lr, alpha, eps, "
        "weight_decay, momentum and centered."
    ),
}
DEFAULTS = _rmsprop.TORCH_RMSPROP_DEFAULTS
#: The mistakes worth naming for each option that a run exercises.
MISTAKES = {
    "plain": ("eps_inside", "not_squared", "sum", "swapped", "not_kept", "no_sqrt"),
    "momentum": ("momentum_before", "momentum_ignored"),
    "centered": ("mean_not_squared", "centered_ignored"),
    "weight_decay": ("decoupled_decay", "decay_after_step", "decay_ignored"),
}


def drive(submission, schedule, **options):
    return _optimizer.drive(submission, schedule, name=NAME, hints=HINTS, **options)


def rmsprop(groups):
    return torch.optim.RMSprop(groups, lr=1e-3)


def group_options(seed, settings):
    """Each group's options: a random alpha and an ε that matters at the run's gradient
    scales, plus the options named in that group's entry of ``settings`` (``momentum``,
    ``centered``, ``weight_decay``), each drawn per group so that the groups differ."""
    gen = torch.Generator().manual_seed(40_000 + seed)
    groups = []
    for names in settings:
        options = dict(alpha=_rmsprop.uniform(gen, 0.8, 0.995), eps=_rmsprop.log_uniform(gen, 1e-4, 1e-1))
        if "momentum" in names:
            options["momentum"] = _rmsprop.uniform(gen, 0.5, 0.95)
        if "centered" in names:
            options["centered"] = True
        if "weight_decay" in names:
            options["weight_decay"] = _rmsprop.log_uniform(gen, 1e-3, 1e-1)
        groups.append(options)
    return groups


def mistakes(schedule, options, kinds):
    def run(kind):
        return lambda: equations.rmsprop_equation(schedule, options, _rmsprop.rmsprop_mistake(kind))

    variants = {_rmsprop.RMSPROP_MISTAKES[k]: run(k) for k in kinds}
    variants.update(_optimizer.learning_rate_mistakes(
        lambda s: equations.rmsprop_equation(s, options), schedule))
    return variants


def missing_gradient_mistakes(schedule, options):
    """Treating a missing gradient as zero (it changes the run only where one is missing)."""
    if not any(g is None for step in schedule.grads for row in step for g in row):
        return {}
    return {
        "a parameter without a gradient was treated as if its gradient were zero; it must "
        "be skipped (`if p.grad is None: continue`), its state left alone and, with "
        "momentum, not moved by its momentum buffer": lambda: equations.rmsprop_equation(
            _rmsprop.with_zero_gradients(schedule), options),
    }


def kinds_for(options):
    kinds = list(MISTAKES["plain"])
    for option in ("momentum", "centered", "weight_decay"):
        if any(o.get(option) for o in options):
            kinds += MISTAKES[option]
    return kinds


def compare(submission, seed, dtype, device, settings=((), ()), *, steps=30,
            missing_grad_prob=0.2, reload_at=None, extra_variants=None):
    """Drive the learner's class and torch.optim.RMSprop through the same run, with one
    group per entry of ``settings``, and explain the first difference."""
    schedule = _rmsprop.scaled_schedule(seed, dtype, device, steps=steps,
                                        missing_grad_prob=missing_grad_prob)
    options = group_options(seed, settings)
    history = drive(submission, schedule, group_options=options, reload_at=reload_at)
    expected = oracles.replay(rmsprop, schedule, group_options=options)
    variants = mistakes(schedule, options, kinds_for(options))
    variants.update(missing_gradient_mistakes(schedule, options))
    variants.update(extra_variants(schedule, options) if extra_variants else {})
    _rmsprop.explain(history, expected, schedule, dtype, variants, reference="torch.optim.RMSprop")
    step = _rmsprop.first_divergence(history, equations.rmsprop_equation(schedule, options), dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave the RMSprop equations.")


def check_is_a_torch_optimizer_with_torchs_defaults(submission):
    """Subclasses torch.optim.Optimizer and has torch.optim.RMSprop's defaults"""
    _optimizer.require_optimizer_class(NAME, submission)
    groups = _optimizer.constructed_groups(submission, NAME, {}, HINTS)
    group = groups[0] if groups else {}
    wrong = [f"{key}={group.get(key, 'missing')!r} (torch: {value!r})"
             for key, value in DEFAULTS.items() if group.get(key, object()) != value]
    if wrong:
        raise Mismatch(
            f"after {NAME}([p]), param_groups[0] has " + ", ".join(wrong) + ". Pass the "
            "options, with torch.optim.RMSprop's defaults, as the defaults dict to "
            "`super().__init__(params, defaults)`."
        )


@pytest.mark.weight(3)
def check_matches_rmsprop_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.RMSprop step for step (groups, missing grads, lr changed mid-run)"""
    compare(submission, seed, dtype, device)


@pytest.mark.weight(2)
def check_matches_rmsprop_with_momentum(submission, seed, dtype, device):
    """With momentum: b ← μb + g/(√v + ε), θ ← θ − η·b"""
    compare(submission, seed, dtype, device, [{"momentum"}, {"momentum"}], steps=20)


@pytest.mark.weight(2)
def check_matches_centered_rmsprop(submission, seed, dtype, device):
    """Centered: divides by √(v − ḡ²) + ε, with and without momentum"""
    compare(submission, seed, dtype, device, [{"centered"}, {"centered", "momentum"}], steps=20)


def check_matches_rmsprop_with_weight_decay(submission, seed, dtype):
    """With weight decay: λθ is added to the gradient before everything else"""
    compare(submission, seed, dtype, "cpu", [{"weight_decay"}, {"weight_decay"}], steps=20)


def check_param_groups_keep_their_own_settings(submission, seed):
    """Param groups with different settings (one centered with momentum, one with decay)"""
    compare(submission, seed, torch.float64, "cpu", [{"momentum", "centered"}, {"weight_decay"}],
            steps=20)


def check_skips_parameters_without_gradients(submission, seed):
    """Leaves a parameter whose .grad is None, and its state, untouched"""
    compare(submission, seed, torch.float64, "cpu", [{"momentum", "centered"}, {"momentum"}],
            steps=8, missing_grad_prob=0.5)


RELOAD_AT = 5


def lost_state(schedule, options):
    return _rmsprop.lost_state_after_reload(schedule, options, RELOAD_AT)


def check_state_dict_round_trip(submission, seed):
    """Carries on identically through state_dict() mid-run, and with a group added later"""
    compare(submission, seed, torch.float64, "cpu", [{"momentum", "centered"}, {"momentum"}],
            steps=14, reload_at=RELOAD_AT, extra_variants=lost_state)
    settings = [{"momentum", "centered"}, {"momentum"}]
    _optimizer.require_add_param_group(submission, oracles.make_schedule(seed, torch.float64, "cpu", steps=8),
                                       name=NAME, reference=torch.optim.RMSprop,
                                       group_options=group_options(seed, settings), hints=HINTS)


def check_step_takes_a_closure(submission):
    """step(closure) re-evaluates the loss with gradients enabled and returns it"""
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    w = _optimizer.step_with_closure(NAME, submission, w, dict(lr=0.1), HINTS)
    reference = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    reference.grad = torch.tensor([2.0, -4.0], dtype=torch.float64)
    torch.optim.RMSprop([reference], lr=0.1).step()
    if not _rmsprop.close(w, reference.detach(), torch.float64):
        raise Mismatch(
            f"after step(closure) with lr=0.1, w should be {describe(reference)}; saw {describe(w)}."
        )


INVALID = _rmsprop.TORCH_RMSPROP_INVALID


def check_rejects_invalid_settings(submission):
    """Rejects a negative lr, eps, alpha, momentum or weight_decay with ValueError and accepts 0, as torch does"""
    _optimizer.require_accepts(submission, NAME, [{option: 0.0} for option in INVALID], torch.optim.RMSprop)
    settings = [{option: value} for option, value in INVALID.items()]
    accepted = []
    for kwargs, error in zip(settings, _optimizer.rejections(submission, NAME, settings)):
        (option, value), = kwargs.items()
        if error is None:
            accepted.append(f"{option}={value}")
        elif "ValueError" not in error:
            raise Mismatch(f"{NAME}([p], {option}={value}) should raise ValueError; instead {error}")
    if accepted:
        raise Mismatch(
            f"{NAME} accepted " + ", ".join(accepted) + ": raise ValueError for a negative "
            "lr, eps, alpha, momentum or weight_decay, as torch.optim.RMSprop does."
        )
