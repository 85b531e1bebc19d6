"""Part ``gd-fit``: ``fit_least_squares(X, y, lr, num_steps)`` trains w with autograd.

The loop starts from w = 0, records the mean squared error before each of ``num_steps``
updates, and returns ``(w, losses)``. The oracle is float64 gradient descent with the
closed-form gradient (2/n)·Xᵀ(Xw − y) (:func:`autograder.oracles.gd_least_squares`).
"""

import pytest
import torch

from autograder import oracles, problems
from autograder.feedback import Mismatch, call_submission, expect_close
from autograder.probe import probe

NAME = "fit_least_squares"
HINTS = {
    "leaf Variable that requires grad": (
        "Likely mistake: the update ran while autograd was recording; update w inside "
        "`with torch.no_grad():`."
    ),
    "does not require grad": "Likely mistake: w was created without `requires_grad=True`.",
    "'NoneType'": (
        "Likely mistake: `w = w - lr * w.grad` replaces w by a tensor computed with autograd "
        "on; it is not a leaf, so backward() leaves its .grad as None. Update w in place "
        "under `torch.no_grad()`."
    ),
    "backward through the graph a second time": (
        "Likely mistake: the forward pass (the loss) must be recomputed inside the loop."
    ),
}
#: The assignment's own problem, on which the loop must reach the target.
TARGET = dict(seed=0, lr=0.05, num_steps=100, excess=1e-4)


@probe
def fit(learner, X, y, lr, num_steps):
    """The learner's (w, losses), and the grad_fn of w if it is still in a graph."""
    result = call_submission(NAME, learner, X, y, lr, num_steps, hints=HINTS)
    w = result[0] if isinstance(result, (tuple, list)) and len(result) == 2 else None
    graph = isinstance(w, torch.Tensor) and w.grad_fn is not None
    return {"result": result, "grad_fn": type(w.grad_fn).__name__ if graph else None}


def run(submission, X, y, lr, num_steps):
    """The learner's w, its losses as floats and the grad_fn of w (a name, or None)."""
    seen = fit(submission, X, y, lr, num_steps)
    result = seen["result"]
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Mismatch(
            f"{NAME} returned {type(result).__name__}; it must return the pair (w, losses)."
        )
    w, losses = result
    if not isinstance(w, torch.Tensor):
        raise Mismatch(f"w must be a tensor; saw {type(w).__name__}.")
    try:
        losses = [float(v) for v in losses]
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch("losses must be a list of numbers (use `loss.item()`).") from None
    return w, losses, seen["grad_fn"]


def random_problem(seed, dtype, device):
    gen = torch.Generator().manual_seed(1000 + seed)
    n = int(torch.randint(20, 60, (1,), generator=gen))
    d = int(torch.randint(2, 7, (1,), generator=gen))
    steps = int(torch.randint(5, 30, (1,), generator=gen))
    X, y = problems.least_squares(seed, n, d, dtype=dtype, device=device)
    lr = 1.0 / float(oracles.mse_hessian_eigenvalues(X).max())
    return X, y, lr, steps


def loss_variants(X, y, lr, steps):
    n = X.shape[0]
    return {
        "the loss is recorded after the update instead of before it": lambda: (
            oracles.gd_least_squares(X, y, lr, steps + 1)[1][1:]
        ),
        "the gradients are never cleared, so each step uses the sum of all gradients so "
        "far (set `w.grad = None` or call `w.grad.zero_()` after each update)": lambda: (
            oracles.gd_least_squares(X, y, lr, steps, accumulate=True)[1]
        ),
        "the sign of the update is flipped, so w climbs the loss": lambda: (
            oracles.gd_least_squares(X, y, -lr, steps)[1]
        ),
        "the learning rate is ignored (w − grad)": lambda: oracles.gd_least_squares(X, y, 1.0, steps)[1],
        "the loss is the sum of squared errors, not their mean": lambda: [
            n * v for v in oracles.gd_least_squares(X, y, n * lr, steps)[1]
        ],
        "the loop runs one step too few (range(1, num_steps)?)": lambda: (
            oracles.gd_least_squares(X, y, lr, steps - 1)[1]
        ),
        "the loop runs one step too many": lambda: oracles.gd_least_squares(X, y, lr, steps + 1)[1],
    }


def check_records_one_loss_per_step(submission, seed):
    """Records exactly one loss per step"""
    X, y, lr, steps = random_problem(seed, torch.float64, "cpu")
    _, losses, _ = run(submission, X, y, lr, steps)
    if len(losses) != steps:
        off = len(losses) - steps
        hint = {-1: " The loop runs one step too few (range(1, num_steps)?).",
                1: " The loop runs one step too many (range(num_steps + 1)?)."}.get(off, "")
        raise Mismatch(f"expected {steps} losses for num_steps={steps}, saw {len(losses)}.{hint}")


@pytest.mark.weight(2)
def check_losses_follow_gradient_descent(submission, seed, dtype, device):
    """The recorded losses are those of gradient descent from w = 0"""
    X, y, lr, steps = random_problem(seed, dtype, device)
    _, losses, _ = run(submission, X, y, lr, steps)
    expect_close(
        torch.tensor(losses, dtype=torch.float64),
        torch.tensor(oracles.gd_least_squares(X, y, lr, steps)[1], dtype=torch.float64),
        what=f"losses for lr={lr:.4g}, num_steps={steps}",
        variants={k: (lambda f=f: torch.tensor(f(), dtype=torch.float64))
                  for k, f in loss_variants(X, y, lr, steps).items()},
        dtype=dtype,
    )


def check_returns_the_trained_weights(submission, seed, dtype, device):
    """Returns w after num_steps updates, detached, with X's dtype and device"""
    X, y, lr, steps = random_problem(seed, dtype, device)
    w, _, grad_fn = run(submission, X, y, lr, steps)
    if grad_fn is not None:
        raise Mismatch(
            f"the returned w has grad_fn={grad_fn}: it is still part of an "
            "autograd graph. Return `w.detach()`, and update w under `torch.no_grad()`."
        )
    if w.dtype != X.dtype or w.device != X.device:
        raise Mismatch(
            f"w is {w.dtype} on {w.device} but X is {X.dtype} on {X.device}: create w with "
            "`torch.zeros(d, dtype=X.dtype, device=X.device, requires_grad=True)`."
        )
    expect_close(
        w.detach().flatten(),
        oracles.gd_least_squares(X, y, lr, steps)[0],
        what=f"w after {steps} steps with lr={lr:.4g}",
        variants={
            "the loop runs one step too few": lambda: oracles.gd_least_squares(X, y, lr, steps - 1)[0],
            "the loop runs one step too many": lambda: oracles.gd_least_squares(X, y, lr, steps + 1)[0],
            "the gradients are never cleared between steps": lambda: (
                oracles.gd_least_squares(X, y, lr, steps, accumulate=True)[0]
            ),
            "the sign of the update is flipped": lambda: oracles.gd_least_squares(X, y, -lr, steps)[0],
            "the learning rate is ignored": lambda: oracles.gd_least_squares(X, y, 1.0, steps)[0],
        },
        dtype=dtype,
    )


def check_reaches_the_target_loss(submission):
    """Reaches the target loss on the assignment's problem"""
    X, y = problems.least_squares(TARGET["seed"])
    w, _, _ = run(submission, X, y, TARGET["lr"], TARGET["num_steps"])
    best = problems.least_squares_minimum(X, y)
    final, _ = oracles.mse_and_grad(X, y, w.detach().flatten())
    if not final <= best + TARGET["excess"]:
        raise Mismatch(
            f"after {TARGET['num_steps']} steps with lr={TARGET['lr']} the loss is "
            f"{final:.6g}; the best possible is {best:.6g} and the target is within "
            f"{TARGET['excess']:g} of it."
        )
