"""Part ``fast-adam-optimizer``: ``FastAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)``,
a ``torch.optim.Optimizer`` subclass that can stand in for ``torch.optim.Adam`` (its
default options) and whose steps after the first allocate no tensor the size of a
parameter.

The learner's class is constructed and stepped only inside probes, through scripted runs
(:func:`autograder.oracles.replay`: random shapes, two param groups with their own
learning rates, betas and eps, parameters without gradients on some steps, a learning
rate changed mid-run, a ``state_dict`` round trip), with every ``torch.optim`` optimizer
barred while it runs. The checks compare the runs with ``torch.optim.Adam(foreach=False)``
(at the dtype's tolerance, naming the known mistakes, and bit for bit) and with the
equations in float64 (:func:`autograder.oracles.adam.adam_equation`), and judge the
allocations of each step as ``torch.profiler`` measured them.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _adam, _fast_adam, _optimizer
from autograder.feedback import Mismatch, call_submission, describe, no_builtin_optimizers
from autograder.oracles import adam
from autograder.probe import probe

NAME = "FastAdam"
HINTS = {
    "NoneType": (
        "Likely mistake: a parameter with no gradient (p.grad is None) must be skipped, as "
        "torch.optim.Adam does."
    ),
    "leaf Variable that requires grad": (
        "Likely mistake: decorate step() with `@torch.no_grad()` so that the update is not recorded."
    ),
    "division by zero": (
        "Likely mistake: the step count is 0 when the bias corrections are computed; add 1 to "
        "state['step'] before calling adam_step_."
    ),
    "KeyError": (
        "Likely mistake: keep lr, betas and eps in each group under torch's names, passed as the "
        "`defaults` dict to `super().__init__(params, defaults)`."
    ),
    "adam_step_": "Part 1's adam_step_ must be defined (run its cell) before FastAdam can use it.",
}
DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
#: The mistakes of an optimizer class this exercise can make (it has no weight decay,
#: AMSGrad or maximize).
CLASS_MISTAKES = {
    sentence: changes for sentence, changes in _adam.OPTIMIZER_MISTAKES.items()
    if set(changes) <= {"counter", "ignore_group"}
}


def group_options(seed):
    """Each of two groups' own betas and eps: β₁ ∈ [0.6, 0.9], β₂ ∈ [0.95, 0.999], ε ∈ [1e-4, 1e-1]."""
    gen = torch.Generator().manual_seed(6300 + seed)
    options = []
    for _ in range(2):
        hyper = _fast_adam.hyperparameters(gen)
        options.append(dict(betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"]))
    return options


def schedule_data(schedule):
    return schedule.initial, schedule.lrs, schedule.grads, schedule.lr_changes


@probe
def observe_class(FastAdam):
    """What the class is, and the hyperparameters of ``FastAdam([p])``'s one param group."""
    if not (isinstance(FastAdam, type) and issubclass(FastAdam, torch.optim.Optimizer)):
        raise Mismatch(f"{NAME} must be a class deriving from torch.optim.Optimizer.")
    _optimizer.require_own_optimizer(NAME, FastAdam)
    with no_builtin_optimizers(NAME):
        optimizer = call_submission(f"{NAME}([p])", FastAdam, [torch.zeros(2, requires_grad=True)],
                                    hints=HINTS)
    group = optimizer.param_groups[0]
    plain = {}
    for key in DEFAULTS:
        value = group.get(key, "missing")
        plain[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    return plain


@probe
def observe_replay(FastAdam, data, options, reload_at=None):
    """The parameters after each step of the learner's optimizer driven through the
    schedule ``data`` (initial, lrs, grads, lr_changes) with group ``options``."""
    schedule = oracles.Schedule(*data)
    with no_builtin_optimizers(NAME):
        return _optimizer.drive(FastAdam, schedule, name=NAME, hints=HINTS, group_options=options,
                                reload_at=reload_at)


@probe
def observe_step_allocations(FastAdam, params, grads, lr):
    """Step the learner's optimizer over ``params`` with ``grads[k]`` on step k + 1: the
    first step unmeasured (it creates the state), each later step's allocations measured."""
    params = [p.clone().requires_grad_() for p in params]
    with no_builtin_optimizers(NAME):
        optimizer = call_submission(f"{NAME}(params, lr={lr:g})", FastAdam, params, lr=lr, hints=HINTS)
        measured = []
        for step, step_grads in enumerate(grads):
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            if step == 0:
                call_submission(f"{NAME}.step", optimizer.step, hints=HINTS)
            else:
                _, seen = _fast_adam.allocations_during(call_submission, f"{NAME}.step",
                                                        optimizer.step, hints=HINTS)
                measured.append(seen)
    return measured


@probe
def observe_closure_step(FastAdam):
    """One ``step(closure)`` of ``FastAdam([w], lr=0.1)`` on (w²).sum(), w = [1, −2]:
    the closure's use is checked here; returns w after the step."""
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    with no_builtin_optimizers(NAME):
        return _optimizer.step_with_closure(NAME, FastAdam, w, dict(lr=0.1), HINTS)


def torch_replay(schedule, options, reload_at=None):
    return oracles.replay(lambda groups: torch.optim.Adam(groups, lr=1e-3, foreach=False), schedule,
                          group_options=options, reload_at=reload_at)


def compare(submission, schedule, dtype, options, *, reload_at=None):
    """The learner's run against torch.optim.Adam at ``dtype``'s tolerance, naming the
    mistake that reproduces it; then against the float64 equations."""
    history = observe_replay(submission, schedule_data(schedule), options, reload_at)
    expected = torch_replay(schedule, options, reload_at)
    mistakes = _adam.runs(schedule, options, {**_adam.UPDATE_MISTAKES, **CLASS_MISTAKES},
                          reload_at=reload_at)
    mistakes.update(_optimizer.learning_rate_mistakes(
        lambda s: _adam.mistaken_run(s, options, reload_at=reload_at), schedule))
    _adam.explain(history, expected, schedule, dtype, mistakes, reference="torch.optim.Adam", scratch=True)
    step = oracles.first_divergence(history, adam.adam_equation(schedule, options), dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave Adam's equations.")
    return history, expected


def check_is_a_torch_optimizer_with_adams_defaults(submission):
    """Subclasses torch.optim.Optimizer; each group holds lr, betas and eps with torch's defaults"""
    _optimizer.require_defaults(
        observe_class(submission), DEFAULTS, name=NAME, reference="Adam",
        advice="Pass lr, betas and eps to `super().__init__` as the defaults.")


@pytest.mark.weight(2)
def check_matches_torch_adam_over_many_steps(submission, seed, dtype, device):
    """Matches torch.optim.Adam step for step (own betas and eps per group, missing grads, lr changed)"""
    compare(submission, oracles.make_schedule(seed, dtype, device, steps=15), dtype, group_options(seed))


def check_bit_for_bit_torch_adam(submission, seed, dtype, device):
    """Bit for bit what torch.optim.Adam(foreach=False) computes, also over float32 and float64 together"""
    if dtype == torch.float64 and device == "cpu":
        require_two_dtypes(submission, seed)
    schedule = oracles.make_schedule(seed, dtype, device, steps=10)
    history, expected = compare(submission, schedule, dtype, group_options(seed))
    for step, (seen, wanted) in enumerate(zip(history, expected)):
        for index, (a, b) in enumerate(zip(seen, wanted)):
            if not torch.equal(a, b):
                raise Mismatch(
                    f"after step {step + 1}, parameter {index} agrees with torch.optim.Adam only to "
                    f"rounding (largest difference {float((a - b).abs().max()):.3g}); step() must "
                    "give torch's bits: update each parameter with your adam_step_ from Part 1, "
                    "whose bit-for-bit check names the operation that rounds differently."
                )


def with_float32_first_group(schedule):
    """``schedule`` with its first group's parameters and gradients in float32, the rest as
    they are: one optimizer over parameters of two dtypes."""
    def single(t):
        return None if t is None else t.float()

    return oracles.Schedule([[single(p) for p in schedule.initial[0]]] + schedule.initial[1:], schedule.lrs,
                            [[[single(g) for g in step[0]]] + step[1:] for step in schedule.grads],
                            schedule.lr_changes)


def require_two_dtypes(submission, seed):
    """Raise :class:`Mismatch` unless the learner's run over float32 and float64 parameters
    in one optimizer is bit for bit torch.optim.Adam's."""
    schedule = with_float32_first_group(oracles.make_schedule(seed, torch.float64, "cpu", steps=6))
    options = group_options(seed)
    history = observe_replay(submission, schedule_data(schedule), options)
    expected = torch_replay(schedule, options)
    for step, (seen, wanted) in enumerate(zip(history, expected)):
        for index, (a, b) in enumerate(zip(seen, wanted)):
            if a.dtype != b.dtype or not torch.equal(a, b):
                raise Mismatch(
                    f"with float32 and float64 parameters in one {NAME}, after step {step + 1} "
                    f"parameter {index} ({str(b.dtype).replace('torch.', '')}) differs from "
                    f"torch.optim.Adam's by up to {float((a.double() - b.double()).abs().max()):.3g}. "
                    "Likely mistake: a scratch buffer is shared by parameters of different dtypes; "
                    "keep one per dtype and device."
                )


@pytest.mark.weight(2)
def check_steps_allocate_no_tensor_of_parameter_size(submission, seed, dtype):
    """After the first step, no step allocates a tensor the size of a parameter (torch.profiler)"""
    gen = torch.Generator().manual_seed(6400 + seed)
    shapes = [(int(torch.randint(2000, 30000, (1,), generator=gen)),) for _ in range(3)] + [(64, 50)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
             for _ in range(3)]
    measured = observe_step_allocations(submission, params, grads, 1e-2)
    smallest = min(p.numel() * p.element_size() for p in params)
    message = _fast_adam.allocation_problem(
        measured, [smallest] * len(measured), what=f"a step of {NAME} after the first",
        limit="its smallest parameter")
    if message:
        raise Mismatch(message)


def check_resumes_from_its_state_dict(submission, seed):
    """Resumes from its state_dict and from torch.optim.Adam's, and takes a group added later"""
    schedule = oracles.make_schedule(seed, torch.float64, "cpu", steps=10)
    compare(submission, schedule, torch.float64, group_options(seed), reload_at=4)
    _optimizer.require_add_param_group(submission, schedule, name=NAME, reference=torch.optim.Adam,
                                       group_options=group_options(seed), hints=HINTS)
    _optimizer.require_interchangeable(submission, schedule, name=NAME, reference=torch.optim.Adam,
                                       reload_at=4, state="'step', 'exp_avg' and 'exp_avg_sq'",
                                       group_options=group_options(seed), hints=HINTS)


def check_step_takes_a_closure(submission):
    """step(closure) re-evaluates the loss with gradients enabled and returns it"""
    w = observe_closure_step(submission)
    expected = torch.tensor([0.9, -1.9])  # the first step moves each coordinate by lr·sign(g)
    if not torch.allclose(w, expected):
        raise Mismatch(f"after one step(closure) with lr=0.1, w should be {describe(expected)}; "
                       f"saw {describe(w)}.")
