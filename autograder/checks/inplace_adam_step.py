"""Part ``inplace-adam-step``: ``adam_step_(param, grad, exp_avg, exp_avg_sq, scratch, step,
lr, beta1, beta2, eps)`` is one step of ``torch.optim.Adam`` on one tensor, in place,
allocating no tensor the size of the parameter, bit for bit torch's result.

The learner's function runs only inside the probe :func:`observe_steps`, on copies of the
check's tensors, for t = 1, 2, …, T with moments that start at zero and a scratch tensor
that starts full of NaN. The checks judge what it returns against

- Adam's equations in float64 (:func:`autograder.oracles.adam.algorithm1`), at the
  dtype's tolerance, naming the known mistakes (:data:`autograder.checks._adam.UPDATE_MISTAKES`);
- ``torch.optim.Adam(foreach=False)`` in the same dtype, bit for bit
  (:func:`autograder.checks._fast_adam.torch_adam_run`), naming the operation that
  rounds differently (:data:`autograder.checks._fast_adam.ROUNDING`);
- the allocations each call made, measured by ``torch.profiler``
  (:func:`autograder.checks._fast_adam.allocations_during`), never its time.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _adam, _fast_adam
from autograder.feedback import Mismatch, call_submission, describe
from autograder.oracles import adam
from autograder.probe import probe

NAME = "adam_step_"
SIGNATURE = ("Call signature: adam_step_(param, grad, exp_avg, exp_avg_sq, scratch, step, lr, "
             "beta1, beta2, eps).")
HINTS = {
    "unexpected keyword": SIGNATURE,
    "positional argument": SIGNATURE,
    "division by zero": "Likely mistake: a bias correction 1 − βᵗ with t = 0; step is 1 on the first call.",
    "out=... arguments don't support automatic differentiation": (
        "Likely mistake: the update ran while autograd was recording; the caller runs it under "
        "torch.no_grad(), and so must your own tests."
    ),
}


def problem(seed, dtype, device, *, large=False):
    """Parameters, T steps of gradients and hyperparameters for one run. Small random
    shapes (a scalar among them) and 8 to 14 steps; ``large`` parameters of 2 000 to 30 000
    elements (under ATen's 32 768-element grain, so no thread count changes a result) for
    measuring allocations, and 3 steps."""
    gen = torch.Generator().manual_seed(6100 + seed + (1000 if large else 0))
    if large:
        shapes = [(int(torch.randint(40, 160, (1,), generator=gen)), 50),
                  (int(torch.randint(2000, 30000, (1,), generator=gen)),)]
        steps = 3
    else:
        shapes = [()] + [oracles.random_shape(gen) for _ in range(1 + seed % 2)]
        steps = int(torch.randint(8, 15, (1,), generator=gen))
    hyper = _fast_adam.hyperparameters(gen)

    def tensor(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)

    params = [tensor(s) for s in shapes]
    grads = [[tensor(s) for s in shapes] for _ in range(steps)]
    return params, grads, hyper


@probe
def observe_steps(adam_step_, params, grads, hyper, measure=False):
    """Call the learner's ``adam_step_`` for t = 1, …, T on copies of ``params`` (each
    tensor with its own moments, zeros at first, and its own scratch, NaN at first).
    Returns the (params, exp_avgs, exp_avg_sqs) after each step; whether each tensor
    object still has its storage; the gradients after the run; and with ``measure`` the
    allocations of every call, step by step and tensor by tensor."""
    params = [p.clone() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    scratch = [torch.full_like(p, float("nan")) for p in params]
    grads = [[g.clone() for g in step] for step in grads]
    storage = [t.data_ptr() for t in params + ms + vs]
    history, allocations = [], []
    for t, step_grads in enumerate(grads, start=1):
        for p, g, m, v, s in zip(params, step_grads, ms, vs, scratch):
            args = (NAME, adam_step_, p, g, m, v, s, t)
            options = dict(lr=hyper["lr"], beta1=hyper["beta1"], beta2=hyper["beta2"],
                           eps=hyper["eps"], hints=HINTS)
            if measure:
                _, seen = _fast_adam.allocations_during(call_submission, *args, **options)
                allocations.append(seen)
            else:
                call_submission(*args, **options)
        history.append(([p.clone() for p in params], [m.clone() for m in ms], [v.clone() for v in vs]))
    kept = [t.data_ptr() == pointer for t, pointer in zip(params + ms + vs, storage)]
    return {"history": history, "kept": kept, "grads": grads, "allocations": allocations}


def as_schedule(params, grads, hyper):
    """The same run as a one-group schedule, for the known mistakes of Adam."""
    schedule = oracles.Schedule([list(params)], [hyper["lr"]], [[list(g)] for g in grads], {})
    return schedule, [dict(betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])]


def equations(params, grads, hyper):
    return adam.algorithm1(params, grads, lr=hyper["lr"], beta1=hyper["beta1"],
                           beta2=hyper["beta2"], eps=hyper["eps"])


@pytest.mark.weight(1)
def check_moments_are_adams_averages(submission, seed, dtype, device):
    """exp_avg and exp_avg_sq hold m ← β₁m + (1 − β₁)g and v ← β₂v + (1 − β₂)g² after every step"""
    params, grads, hyper = problem(seed, dtype, device)
    history = [(ms, vs) for _, ms, vs in observe_steps(submission, params, grads, hyper)["history"]]
    expected = [(ms, vs) for _, ms, vs in equations(params, grads, hyper)]
    if _adam.same_run(history, expected, dtype) and not _adam.not_finite_hint(
            [x for step in history for part in step for x in part]):
        return
    step = next(k for k, (seen, wanted) in enumerate(zip(history, expected))
                if not _adam.same_run([seen], [wanted], dtype))
    which = 0 if not _adam.same_run([history[step][0]], [expected[step][0]], dtype) else 1
    index = next(i for i, (a, b) in enumerate(zip(history[step][which], expected[step][which]))
                 if not _adam.same_run([[a]], [[b]], dtype))
    name = ("exp_avg", "exp_avg_sq")[which]
    message = (f"after step t = {step + 1}, {name} of tensor {index} is "
               f"{describe(history[step][which][index])}; Adam's equations give "
               f"{describe(expected[step][which][index])}.")
    schedule, options = as_schedule(params, grads, hyper)
    variants = {
        sentence: (lambda c=changes: ((ms, vs) for _, ms, vs in _adam.mistaken_run(
            schedule, options, moments=True, **c)))
        for sentence, changes in _adam.UPDATE_MISTAKES.items()
    }
    named = _adam.name_mistake(history, variants, dtype) if _adam.finite_departure(
        history[step][which], expected[step][which], dtype) else ""
    raise Mismatch(message + (named or _adam.not_finite_hint(history[step][which], scratch=True)))


@pytest.mark.weight(2)
def check_parameters_follow_adam(submission, seed, dtype, device):
    """The parameter follows θ ← θ − η·m̂/(√v̂ + ε) step after step (Adam's equations in float64)"""
    params, grads, hyper = problem(seed, dtype, device)
    history = [ps for ps, _, _ in observe_steps(submission, params, grads, hyper)["history"]]
    expected = [ps for ps, _, _ in equations(params, grads, hyper)]
    schedule, options = as_schedule(params, grads, hyper)
    _adam.explain(history, expected, schedule, dtype, _adam.runs(schedule, options),
                  reference="Adam's update in float64", scratch=True)


@pytest.mark.weight(2)
def check_bit_for_bit_torch_adam(submission, seed, dtype, device):
    """Bit for bit what torch.optim.Adam(foreach=False) computes, in the tensors' own dtype"""
    params, grads, hyper = problem(seed, dtype, device)
    history = observe_steps(submission, params, grads, hyper)["history"]
    reference = _fast_adam.torch_adam_run(params, grads, hyper)
    if not _adam.same_run(history, reference, dtype):
        raise Mismatch(
            "the results differ from torch.optim.Adam(foreach=False) by more than rounding; the "
            "checks against Adam's equations say where."
        )
    variants = {sentence: (lambda c=choice: _fast_adam.ordered_run(params, grads, hyper, **c))
                for sentence, choice in _fast_adam.ROUNDING.items()}
    _fast_adam.explain_rounding(history, reference, variants, what="tensor",
                                reference_name="torch.optim.Adam(foreach=False)")


@pytest.mark.weight(2)
def check_allocates_no_tensor_of_parameter_size(submission, seed, dtype):
    """No call allocates a tensor the size of its parameter (measured by torch.profiler, not timed)"""
    params, grads, hyper = problem(seed, dtype, "cpu", large=True)
    seen = observe_steps(submission, params, grads, hyper, measure=True)["allocations"]
    sizes = [p.numel() * p.element_size() for _ in grads for p in params]
    message = _fast_adam.allocation_problem(seen, sizes, what=NAME, limit="the parameter")
    if message:
        raise Mismatch(message)


def check_updates_its_arguments_in_place(submission, seed):
    """Updates param, exp_avg and exp_avg_sq in place and leaves grad unchanged"""
    params, grads, hyper = problem(seed, torch.float64, "cpu")
    seen = observe_steps(submission, params, grads[:1], hyper)
    if not all(seen["kept"]):
        raise Mismatch(
            "a tensor the caller passed now has new storage (`.data = ...` or `set_`): update "
            "param, exp_avg and exp_avg_sq in place, so that the caller's tensors hold the result."
        )
    after = seen["history"][0]
    before = (params, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])
    for name, new, old in zip(("param", "exp_avg", "exp_avg_sq"), after, before):
        if all(torch.equal(a, b) for a, b in zip(new, old)):
            raise Mismatch(
                f"{name} did not change. Likely mistake: `{name} = ...` rebinds a local name; "
                f"update the caller's tensor in place (`{name}.mul_(...)`, `out={name}`)."
            )
    for i, (g, sent) in enumerate(zip(seen["grads"][0], grads[0])):
        if not torch.equal(g, sent):
            raise Mismatch(
                f"grad of tensor {i} changed from {describe(sent)} to {describe(g)}: the gradient "
                "is read-only; do the arithmetic in the moments and the scratch tensor."
            )
