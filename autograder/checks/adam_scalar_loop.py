"""Part ``adam-scalar-loop``: ``adam_scalar_loop(grad_fn, params, num_steps, lr=1e-2,
beta1=0.9, beta2=0.95, eps=1e-8)`` trains a list of Python floats with Adam and the cosine
schedule η_t = η·½(1 + cos(π·t/T)), t = 0, …, T − 1, and returns the parameters after
each step.

Oracles: ``torch.optim.Adam`` with ``torch.optim.lr_scheduler.LambdaLR`` in float64 on
the same problem, and the loop transcribed in plain Python
(:func:`autograder.oracles.adam.scalar_adam`). The learner's loop must use no tensors:
it runs under a ``TorchFunctionMode`` that records every call into torch.
"""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from autograder.checks import _adam
from autograder.feedback import TOLERANCES, Mismatch, call_submission, describe
from autograder.oracles import adam
from autograder.probe import probe

NAME = "adam_scalar_loop"
DEFAULTS = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8)
HINTS = {
    "float division by zero": (
        "Likely mistake: a bias correction 1 − β^step with step = 0 on the first step; the "
        "loop's step starts at 0, so the corrections use step + 1."
    ),
    "unexpected keyword": (
        "Call signature: adam_scalar_loop(grad_fn, params, num_steps, lr=1e-2, beta1=0.9, "
        "beta2=0.95, eps=1e-8)."
    ),
}


def hyperparameters(seed):
    gen = torch.Generator().manual_seed(9900 + seed)
    return dict(
        lr=10 ** _adam.uniform(gen, -3, -1),
        beta1=_adam.uniform(gen, 0.6, 0.9),
        beta2=_adam.uniform(gen, 0.95, 0.999),
        eps=10 ** _adam.uniform(gen, -8, -3),
    )


class TorchCalls(TorchFunctionMode):
    """Records the torch functions called while it is active."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


PROBLEMS = {"Quadratic": _adam.Quadratic, "Constant": _adam.Constant}


def recipe(problem) -> tuple:
    """What rebuilds ``problem`` where the learner's code runs: its kind, seed and options."""
    return type(problem).__name__, problem.seed, dict(problem.options)


@probe
def loop(learner, problem, num_steps, hyper):
    """Run the learner's loop on the problem that ``recipe`` described. Reports the
    history it returned, the names of the torch functions it called, how many times it
    called the gradient, and the types of its history's entries."""
    kind, seed, options = problem
    problem = PROBLEMS[kind](seed, **options)
    with TorchCalls() as calls:
        history = call_submission(NAME, learner, problem, list(problem.start), num_steps, hints=HINTS,
                                  **hyper)
    entries = [x for h in history for x in h] if isinstance(history, (list, tuple)) and all(
        isinstance(h, (list, tuple)) for h in history) else []
    return {
        "history": history,
        "torch_calls": sorted(set(calls.names)),
        "grad_calls": getattr(problem, "calls", None),
        "entry_types": sorted({type(x).__name__ for x in entries}),
    }


def run(submission, problem, num_steps, **hyper):
    """The learner's history as a float64 tensor (steps × parameters), after checking its form."""
    __tracebackhide__ = True
    start = list(problem.start)
    history = loop(submission, recipe(problem), num_steps, hyper)["history"]
    if not isinstance(history, (list, tuple)) or not all(isinstance(h, (list, tuple)) for h in history):
        raise Mismatch(
            f"{NAME} returned {type(history).__name__}; it must return a list with one list of "
            "parameters per step."
        )
    if len(history) != num_steps:
        extra = " (the initial parameters are not part of the history)" if len(history) == num_steps + 1 else ""
        raise Mismatch(f"for num_steps={num_steps}, {NAME} returned {len(history)} entries{extra}; "
                       "expected one list of parameters after each step.")
    if any(len(h) != len(start) for h in history):
        raise Mismatch(f"each entry of the history must hold all {len(start)} parameters.")
    try:
        return torch.tensor([[float(x) for x in h] for h in history], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch("the history must hold numbers (Python floats).") from None


#: What a scalar loop gets wrong, by the sentence that names it: (schedule, Mistake changes).
MISTAKES = {
    "the cosine uses t + 1 (π·(t + 1)/T), so the last step has rate 0 and the first is already "
    "decayed; η_t = η·½(1 + cos(π·t/T)) with t = 0 on the first step": ("t+1", {}),
    "the cosine runs over T − 1 (π·t/(T − 1)), so the last step has rate 0; divide by T, the "
    "number of steps": ("T-1", {}),
    "the learning rate does not decay: η_t = η·½(1 + cos(π·t/T))": ("constant", {}),
    "the learning rate decays linearly; the schedule is η·½(1 + cos(π·t/T))": ("linear", {}),
    "the rate is η·cos(π·t/T), which turns negative halfway; the schedule is "
    "η·½(1 + cos(π·t/T))": ("no-half", {}),
    "the bias corrections use step + 2: with step = 0 on the first step, they use step + 1 "
    "(1 − β¹ on the first step)": ("cosine", dict(t_shift=1)),
    **{sentence: ("cosine", changes) for sentence, changes in _adam.UPDATE_MISTAKES.items()
       if "t_shift" not in changes},
}


def variants(problem, num_steps, hyper):
    """The runs of :data:`MISTAKES` on ``problem``, as functions."""
    def compute(schedule, changes):
        history = _adam.mistaken_scalar_loop(problem, problem.start, num_steps, schedule=schedule,
                                             **hyper, **changes)
        return torch.tensor(history, dtype=torch.float64)

    return {k: (lambda s=s, c=c: compute(s, c)) for k, (s, c) in MISTAKES.items()}


def explain(history, expected, reference, variants):
    """Raise :class:`Mismatch` at the first step where ``history`` leaves ``expected``."""
    __tracebackhide__ = True
    tol = TOLERANCES[torch.float64]
    close = torch.isclose(history, expected, **tol).all(dim=1)
    if bool(close.all()):
        return
    step = int((~close).nonzero()[0])
    message = (f"after step {step + 1} of {len(history)} the parameters are "
               f"{describe(history[step])}; {reference} gives {describe(expected[step])}"
               f"{_adam.difference(history[step], expected[step], torch.float64)}.")
    for mistake, compute in variants.items():
        wrong = compute()
        if wrong.shape == history.shape and torch.allclose(history, wrong, equal_nan=True, **tol):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


def check_runs_on_plain_python_floats(submission, seed):
    """Uses no tensors: takes and returns Python floats, with a grad_fn returning floats"""
    seen = loop(submission, recipe(_adam.Quadratic(seed)), 5, {})
    if seen["torch_calls"]:
        raise Mismatch(
            f"{NAME} called torch ({', '.join(seen['torch_calls'][:4])}): this loop works on "
            "plain Python floats, with `math.sqrt` or `** 0.5` and `math.cos`, and no tensors."
        )
    kinds = [kind for kind in seen["entry_types"] if kind != "float"]
    if not seen["entry_types"] or kinds:
        raise Mismatch(
            f"the history must be lists of Python floats; saw "
            f"{', '.join(kinds) or type(seen['history']).__name__}."
        )
    if seen["grad_calls"] != 5:
        raise Mismatch(f"grad_fn was called {seen['grad_calls']} times in 5 steps; call it once per step, "
                       "at the current parameters.")


@pytest.mark.weight(3)
def check_matches_torch_adam_with_cosine_decay(submission, seed):
    """Matches torch.optim.Adam with LambdaLR's cosine decay, step for step (float64)"""
    problem, hyper = _adam.Quadratic(seed), hyperparameters(seed)
    history = run(submission, problem, problem.steps, **hyper)
    expected = adam.torch_scalar_adam(problem, problem.start, problem.steps, **hyper)
    explain(history, expected, "torch.optim.Adam with the cosine LambdaLR",
            variants(problem, problem.steps, hyper))
    equation = torch.tensor(adam.scalar_adam(problem, problem.start, problem.steps, **hyper),
                            dtype=torch.float64)
    explain(history, equation, "the loop's equations in float64", {})


def check_cosine_schedule(submission, seed):
    """With a constant gradient each step moves by η_t = η·½(1 + cos(π·t/T)), t = 0, …, T − 1"""
    problem, hyper = _adam.Constant(seed), dict(DEFAULTS, lr=0.05)
    history = run(submission, problem, problem.steps, **hyper)
    expected = torch.tensor(adam.scalar_adam(problem, problem.start, problem.steps, **hyper),
                            dtype=torch.float64)
    start = torch.tensor([problem.start], dtype=torch.float64)
    steps = lambda h: (torch.cat([start, h]).diff(dim=0).abs()[:, 0])  # noqa: E731
    if torch.allclose(history, expected, **TOLERANCES[torch.float64]):
        return
    message = (f"with a constant gradient each step should move a parameter by the step's "
               f"learning rate: expected steps of {describe(steps(expected).tolist())}, saw "
               f"{describe(steps(history).tolist())}.")
    for mistake, compute in variants(problem, problem.steps, hyper).items():
        wrong = compute()
        if torch.allclose(history, wrong, equal_nan=True, **TOLERANCES[torch.float64]):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


def check_default_hyperparameters(submission, seed):
    """Defaults are lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8"""
    problem = _adam.Quadratic(seed)
    history = run(submission, problem, problem.steps)
    expected = torch.tensor(adam.scalar_adam(problem, problem.start, problem.steps), dtype=torch.float64)
    wrong = {
        "the default beta2 is 0.999 (torch's); this loop's is 0.95": dict(DEFAULTS, beta2=0.999),
        "the default lr is 1e-3 (torch's); this loop's is 1e-2": dict(DEFAULTS, lr=1e-3),
        "the betas' defaults are swapped: beta1=0.9, beta2=0.95": dict(DEFAULTS, beta1=0.95, beta2=0.9),
    }
    found = {k: (lambda h=h: torch.tensor(adam.scalar_adam(problem, problem.start, problem.steps, **h),
                                          dtype=torch.float64)) for k, h in wrong.items()}
    found.update(variants(problem, problem.steps, DEFAULTS))
    explain(history, expected, "the loop with lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8", found)


def check_epsilon_with_tiny_gradients(submission, seed):
    """With gradients of about 1e-7, where ε = 1e-8 matters, still matches torch.optim.Adam"""
    problem = _adam.Quadratic(seed, scale=1e-7)
    history = run(submission, problem, problem.steps, **DEFAULTS)
    expected = adam.torch_scalar_adam(problem, problem.start, problem.steps, **DEFAULTS)
    explain(history, expected, "torch.optim.Adam with the cosine LambdaLR",
            variants(problem, problem.steps, DEFAULTS))
