"""Part ``momentum-ema``: ``ema_update(averages, values, beta)`` moves each running
average towards the matching value, in place: m ← β·m + (1 − β)·x.

The oracle is the equation in float64 (:func:`autograder.oracles.momentum.ema`), run over
many steps from averages that start at zero.
"""

import pytest
import torch

from autograder import oracles
from autograder.checks import _learner
from autograder.feedback import Mismatch, call_submission, describe, expect_close
from autograder.oracles import momentum
from autograder.probe import probe

NAME = "ema_update"
HINTS = {
    "unexpected keyword": "Call signature: ema_update(averages, values, beta).",
    "positional argument": "Call signature: ema_update(averages, values, beta).",
}


def problem(seed, dtype, device):
    """Zero averages, a sequence of values for them, and beta."""
    gen = torch.Generator().manual_seed(3000 + seed)
    shapes = [oracles.random_shape(gen) for _ in range(1 + seed % 3)]
    steps = int(torch.randint(5, 15, (1,), generator=gen))
    beta = float(torch.empty(()).uniform_(0.5, 0.99, generator=gen))
    sequence = [
        [(1.0 + torch.randn(s, generator=gen, dtype=torch.float64)).to(device, dtype) for s in shapes]
        for _ in range(steps)
    ]
    averages = [torch.zeros(s, dtype=dtype, device=device) for s in shapes]
    return averages, sequence, beta


def run(rule, averages, sequence):
    """The averages after each step of ``rule(old_average, value)``, in float64."""
    current = [a.to("cpu", torch.float64) for a in averages]
    history = []
    for values in sequence:
        current = [rule(a, x.to("cpu", torch.float64)) for a, x in zip(current, values)]
        history.append(current)
    return history


@probe
def averages_after_each_call(learner, averages, sequence, beta):
    """Call the learner's update once per entry of ``sequence``; the averages after each."""
    history = []
    for values in sequence:
        call_submission(NAME, learner, averages, values, beta, hints=HINTS)
        history.append([a.clone() if isinstance(a, torch.Tensor) else a for a in averages])
    return history


@pytest.mark.weight(2)
def check_follows_the_ema_equation(submission, seed, dtype, device):
    """Each call moves every average to β·m + (1 − β)·x, step after step"""
    averages, sequence, beta = problem(seed, dtype, device)
    variants = {
        "the weights are swapped: this is (1 − β)·m + β·x, which keeps only (1 − β) of "
        "the old average": lambda a, x: (1 - beta) * a + beta * x,
        "the factor (1 − β) on the new value is missing: β·m + x is PyTorch's momentum "
        "buffer (a weighted sum, about 1/(1 − β) times larger), not an average":
            lambda a, x: beta * a + x,
        "the old average is dropped (m ← (1 − β)·x)": lambda a, x: (1 - beta) * x,
    }
    expected = run(lambda a, x: momentum.ema(a, x, beta), averages, sequence)
    for step, seen in enumerate(averages_after_each_call(submission, averages, sequence, beta)):
        expect_close(
            seen,
            expected[step],
            what=f"the averages after step {step + 1} of ema_update(averages, values, beta={beta:.4g}) "
                 "starting from zero",
            variants={
                mistake: (lambda rule=rule: run(rule, [torch.zeros_like(a) for a in averages],
                                                sequence[:step + 1])[-1])
                for mistake, rule in variants.items()
            } | {
                "the averages did not change: `m = beta * m + ...` rebinds a local name; "
                "update the tensor in place (`m.mul_(beta).add_(x, alpha=1 - beta)`)":
                    lambda: [torch.zeros_like(a) for a in averages],
            },
            dtype=dtype,
        )


def check_updates_the_averages_in_place(submission, seed):
    """Updates in place: the caller's average tensors change, and are not replaced"""
    averages, sequence, beta = problem(seed, torch.float64, "cpu")
    seen = _learner.call(submission, NAME, [averages, sequence[0], beta], hints=HINTS)
    if any(f["replaced"] or f["storage_replaced"] for f in seen["facts"][0]):
        raise Mismatch(
            "the list `averages` now holds new tensors (or new storage): an optimizer keeps "
            "its running averages in its state and reads them again next step, so update "
            "the existing tensors in place with `mul_` and `add_`."
        )
    if all(torch.equal(a, torch.zeros_like(a)) for a in seen["args"][0]):
        raise Mismatch(
            "no average changed. Likely mistake: `m = beta * m + (1 - beta) * x` rebinds a "
            "local name; update in place with `m.mul_(beta).add_(x, alpha=1 - beta)`."
        )


def check_leaves_the_values_unchanged(submission, seed):
    """Does not modify the values it averages"""
    averages, sequence, beta = problem(seed, torch.float64, "cpu")
    seen = _learner.call(submission, NAME, [averages, sequence[0], beta], hints=HINTS)
    for i, (x, s) in enumerate(zip(seen["args"][1], sequence[0])):
        if not torch.equal(x, s):
            raise Mismatch(
                f"values[{i}] changed from {describe(s)} to {describe(x)}: an in-place "
                "operation on the value (such as `x.mul_(1 - beta)`) corrupts a gradient "
                "that other code still reads; scale a copy or use `add_(x, alpha=1 - beta)`."
            )
