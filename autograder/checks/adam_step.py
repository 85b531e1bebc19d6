"""Part ``adam-step``: ``adam_step(params, grads, ms, vs, t, lr, beta1, beta2, eps)`` is
one iteration of Kingma & Ba's Algorithm 1 on lists of tensors, in place.

The learner's function is called for t = 1, 2, …, T with the check's own moment tensors
(zeros at first), as a training loop would. The oracle is Algorithm 1 in float64
(:func:`autograder.oracles.adam.algorithm1`): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
θ ← θ − η·m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _adam, _learner
from autograder.feedback import Mismatch, call_submission, describe
from autograder.oracles import adam
from autograder.probe import probe

NAME = "adam_step"
SIGNATURE = "Call signature: adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8)."
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update the tensors "
        "inside `with torch.no_grad():`."
    ),
    "unexpected keyword": SIGNATURE,
    "positional argument": SIGNATURE,
    "division by zero": (
        "Likely mistake: a bias correction 1 − βᵗ with t = 0; t is 1 on the first step."
    ),
}


def log_uniform(gen, lo, hi):
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    return lo * (hi / lo) ** u


def problem(seed, dtype, device, *, tiny=False):
    """Random shapes, T steps of random gradients and random hyperparameters. ``tiny``
    draws gradients of size 1e-8 to 1e-6, where ε = 1e-8 matters, and keeps the default
    betas and ε."""
    gen = torch.Generator().manual_seed(4000 + seed + (500 if tiny else 0))
    shapes = [oracles.random_shape(gen) for _ in range(1 + seed % 3)]
    steps = int(torch.randint(12, 25, (1,), generator=gen))
    hyper = dict(
        lr=log_uniform(gen, 1e-3, 0.3),
        beta1=0.6 + 0.3 * float(torch.rand((), generator=gen)),
        beta2=0.95 + 0.049 * float(torch.rand((), generator=gen)),
        eps=log_uniform(gen, 1e-4, 1e-1),
    )

    def tensor(shape, scale=1.0):
        return (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device, dtype)

    params = [tensor(s) for s in shapes]
    grads = []
    for _ in range(steps):
        scale = log_uniform(gen, 1e-8, 1e-6) if tiny else 1.0
        grads.append([tensor(s, scale) for s in shapes])
    if tiny:
        hyper = dict(lr=hyper["lr"], beta1=0.9, beta2=0.999, eps=1e-8)
    return params, grads, hyper


@probe
def run(learner, params, grads, hyper, *, defaults=False):
    """Call the learner's step for t = 1, …, T; return (params, ms, vs) after each step."""
    params = [p.clone() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        if defaults:
            call_submission(NAME, learner, params, step_grads, ms, vs, t, hyper["lr"], hints=HINTS)
        else:
            call_submission(NAME, learner, params, step_grads, ms, vs, t, hyper["lr"],
                            beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"], hints=HINTS)
        history.append(([p.clone() for p in params], [m.clone() for m in ms], [v.clone() for v in vs]))
    return history


def as_schedule(params, grads, hyper):
    """The same run as a one-group :class:`~autograder.oracles.Schedule`, for the mistakes."""
    schedule = oracles.Schedule([list(params)], [hyper["lr"]], [[list(g)] for g in grads], {})
    options = [dict(betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])]
    return schedule, options


#: The mistakes that show in the moments themselves.
MOMENT_MISTAKES = ("swap_betas", "write_back", "v_of_g", "no_lerp")


def mistakes(params, grads, hyper, *, moments=False):
    """The known wrong variants of the step, as runs of the parameters or, with
    ``moments``, of (params, ms, vs)."""
    schedule, options = as_schedule(params, grads, hyper)
    chosen = {k: c for k, c in _adam.UPDATE_MISTAKES.items()
              if not moments or any(name in c for name in MOMENT_MISTAKES)}
    return _adam.runs(schedule, options, chosen, moments=moments)


def explain_moment(which, index, history, expected, variants, dtype):
    """Raise :class:`Mismatch` at the first step where moment ``index`` (1 for m, 2 for v)
    leaves Algorithm 1, naming the mistake that reproduces that moment at every step."""
    __tracebackhide__ = True  # pytest need not print this frame's tensors
    for step, (seen, wanted) in enumerate(zip(history, expected)):
        step_seen, step_wanted = seen[index], wanted[index]
        if _adam.same_run([step_seen], [step_wanted], dtype) and all(
            bool(torch.isfinite(torch.as_tensor(x)).all()) for x in step_seen
        ):
            continue
        bad = next((i for i, (a, b) in enumerate(zip(step_seen, step_wanted))
                    if not _adam.same_run([[a]], [[b]], dtype)), 0)
        message = (
            f"after step t = {step + 1}, {which}[{bad}] is {describe(step_seen[bad])}; "
            f"Algorithm 1 gives {describe(step_wanted[bad])}"
            f"{_adam.difference(step_seen[bad], step_wanted[bad], dtype)}."
        )
        moment = [outputs[index] for outputs in history]
        for mistake, compute in variants.items():
            if _adam.same_run(moment, (outputs[index] for outputs in compute()), dtype):
                message += f" Likely mistake: {mistake}."
                break
        raise Mismatch(message)


@pytest.mark.weight(1)
def check_first_moment_is_an_average_of_gradients(submission, seed, dtype, device):
    """ms hold m ← β₁·m + (1 − β₁)·g after every step"""
    params, grads, hyper = problem(seed, dtype, device)
    history = run(submission, params, grads, hyper)
    expected = adam.algorithm1(params, grads, lr=hyper["lr"], beta1=hyper["beta1"],
                               beta2=hyper["beta2"], eps=hyper["eps"])
    explain_moment("ms", 1, history, expected, mistakes(params, grads, hyper, moments=True), dtype)


@pytest.mark.weight(1)
def check_second_moment_is_an_average_of_squared_gradients(submission, seed, dtype, device):
    """vs hold v ← β₂·v + (1 − β₂)·g² after every step"""
    params, grads, hyper = problem(seed, dtype, device)
    history = run(submission, params, grads, hyper)
    expected = adam.algorithm1(params, grads, lr=hyper["lr"], beta1=hyper["beta1"],
                               beta2=hyper["beta2"], eps=hyper["eps"])
    explain_moment("vs", 2, history, expected, mistakes(params, grads, hyper, moments=True), dtype)


@pytest.mark.weight(3)
def check_parameters_follow_algorithm_1(submission, seed, dtype, device):
    """params follow θ ← θ − η·m̂/(√v̂ + ε) step after step (Algorithm 1)"""
    params, grads, hyper = problem(seed, dtype, device)
    history = [step[0] for step in run(submission, params, grads, hyper)]
    expected = [step[0] for step in adam.algorithm1(
        params, grads, lr=hyper["lr"], beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"])]
    schedule, _ = as_schedule(params, grads, hyper)
    _adam.explain(history, expected, schedule, dtype, mistakes(params, grads, hyper),
                  reference="Algorithm 1")


@pytest.mark.weight(1)
def check_epsilon_is_added_to_the_corrected_root(submission, seed, dtype, device):
    """With gradients of 1e-8 to 1e-6 and the default β₁, β₂, ε, matches Algorithm 1"""
    params, grads, hyper = problem(seed, dtype, device, tiny=True)
    history = [step[0] for step in run(submission, params, grads, hyper, defaults=True)]
    expected = [step[0] for step in adam.algorithm1(params, grads, lr=hyper["lr"])]
    schedule, _ = as_schedule(params, grads, hyper)
    variants = mistakes(params, grads, hyper)
    for name, wrong in {"β₂ = 0.95": dict(beta2=0.95), "ε = 1e-6": dict(eps=1e-6),
                        "β₂ = 0.99": dict(beta2=0.99)}.items():
        variants[f"the default is {name}; Algorithm 1's defaults are β₁ = 0.9, β₂ = 0.999, "
                 "ε = 1e-8"] = lambda w=wrong: [step[0] for step in adam.algorithm1(
                     params, grads, lr=hyper["lr"], **w)]
    _adam.explain(history, expected, schedule, dtype, variants,
                  reference="Algorithm 1 (with gradients this small, ε = 1e-8 matters)")


def check_updates_its_arguments_in_place(submission, seed):
    """Changes params, ms and vs in place, outside autograd, and leaves grads unchanged"""
    params, grads, hyper = problem(seed, torch.float64, "cpu")
    params = [p.clone().requires_grad_() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    before = [x.detach().clone() for x in params + ms + vs]
    options = dict(beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"])
    seen = _learner.call(submission, NAME, [params, grads[0], ms, vs, 1, hyper["lr"]], options, HINTS)
    facts = seen["facts"]
    if any(f["replaced"] for arg in (0, 2, 3) for f in facts[arg]):
        raise Mismatch(
            "the lists params, ms or vs now hold new tensor objects: change the caller's tensors "
            "in place (`p.sub_(...)`, `m.mul_(beta1).add_(...)`, or `m.copy_(...)`); the moments "
            "the caller keeps for the next step are those tensors."
        )
    after = seen["args"]
    for name, group, old in (("ms", after[2], before[len(params):2 * len(params)]),
                             ("vs", after[3], before[2 * len(params):])):
        if all(torch.equal(x.detach(), b) for x, b in zip(group, old)):
            raise Mismatch(
                f"no tensor in {name} changed. Likely mistake: `m = beta1 * m + ...` rebinds a "
                "local name; update in place (`m.mul_(beta1).add_(g, alpha=1 - beta1)`)."
            )
    if all(torch.equal(x.detach(), b) for x, b in zip(after[0], before[:len(params)])):
        # The moments moved; a second step tells a late update from a lost one.
        again = _learner.call(submission, NAME, [after[0], grads[1], after[2], after[3], 2, hyper["lr"]],
                              options, HINTS)["args"][0]
        if not all(torch.equal(x.detach(), b.detach()) for x, b in zip(again, after[0])):
            raise Mismatch(
                "no tensor in params changed on the first step (t = 1), though ms and vs did, and they "
                "move on the second. Likely mistake: the parameters are updated before the moments, "
                "with the moments of the step before (zero at t = 1); update m and v first."
            )
        raise Mismatch(
            "no tensor in params changed, though ms and vs did. Likely mistake: `p = p - ...` "
            "rebinds a local name; update the caller's tensor in place (`p.sub_(...)`)."
        )
    for i, p in enumerate(facts[0]):
        if p["grad_fn"] is not None or not p["is_leaf"] or not p["requires_grad"]:
            raise Mismatch(
                f"params[{i}] is no longer a leaf that requires grad after the step: update it "
                "in place inside `with torch.no_grad():`."
            )
    for i, (g, s) in enumerate(zip(after[1], grads[0])):
        if not torch.equal(g, s):
            raise Mismatch(
                f"grads[{i}] changed from {describe(s)} to {describe(g)}: compute g² and the "
                "update as new tensors instead of changing the gradient in place."
            )
