"""Part ``gd-step-size``: ``optimal_step_size(X)`` returns ``(eta, rate)`` for least squares.

The mean squared error (1/n)‖Xw − y‖² has Hessian H = (2/n)·XᵀX. With λ_min and λ_max
its extreme eigenvalues and κ = λ_max/λ_min, the best fixed step is 2/(λ_min + λ_max)
and the error then shrinks by at most (κ − 1)/(κ + 1) per step. The oracle computes the
eigenvalues in float64 (:func:`autograder.oracles.optimal_step_and_rate`) and, to pin
the rate to what gradient descent actually does, measures it.
"""

import math

import pytest
import torch

from autograder import oracles, problems
from autograder.checks import _learner
from autograder.feedback import Mismatch

NAME = "optimal_step_size"


def random_design(seed, dtype, device):
    gen = torch.Generator().manual_seed(2000 + seed)
    n = int(torch.randint(10, 80, (1,), generator=gen))
    d = int(torch.randint(2, 8, (1,), generator=gen))
    condition = float(torch.empty(()).uniform_(2.0, 200.0, generator=gen))
    X, _ = problems.least_squares(seed, n, d, condition=condition, dtype=dtype, device=device)
    return X


def answer(submission, X):
    result = _learner.call(submission, NAME, [X])["result"]
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Mismatch(f"{NAME} must return the pair (eta, rate); saw {type(result).__name__}.")
    try:
        return float(result[0]), float(result[1])
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"{NAME} must return two numbers; saw {result!r:.80}.") from None


def matches(seen, value, rel):
    return math.isclose(seen, value, rel_tol=rel, abs_tol=0.0)


def tolerance(dtype):
    return 1e-4 if dtype == torch.float32 else 1e-9


def step_mistakes(X):
    ev = oracles.mse_hessian_eigenvalues(X)
    lo, hi = float(ev.min()), float(ev.max())
    sv = torch.linalg.svdvals(X.detach().to("cpu", torch.float64))
    n = X.shape[0]
    X64 = X.detach().to("cpu", torch.float64)
    wrong_side = torch.linalg.eigvalsh((2.0 / n) * X64 @ X64.T)
    return {
        "the Hessian is taken as (2/n)·XXᵀ, an n×n matrix whose smallest eigenvalue is 0; "
        "the Hessian of the mean squared error is the d×d matrix (2/n)·XᵀX":
            2.0 / float(wrong_side.min() + wrong_side.max()),
        "the Hessian is taken as XᵀX, without the factor 2/n of the mean squared error":
            2.0 / ((lo + hi) * n / 2),
        "the Hessian is taken as (1/n)·XᵀX, missing the 2 from differentiating the square":
            2.0 / ((lo + hi) / 2),
        "1/λ_max is the safe step for any smooth function, not the optimal one for a quadratic":
            1.0 / hi,
        "2/λ_max is the edge of stability, where the stiffest direction stops converging":
            2.0 / hi,
        "2/λ_min diverges: the step must respect the largest eigenvalue": 2.0 / lo,
        "the singular values of X stand in for the eigenvalues of the Hessian (2/n)·XᵀX":
            2.0 / float(sv.min() + sv.max()),
    }


@pytest.mark.weight(2)
def check_step_is_two_over_the_eigenvalue_sum(submission, seed, dtype):
    """eta = 2 / (λ_min + λ_max) of the Hessian (2/n)·XᵀX"""
    X = random_design(seed, dtype, "cpu")
    eta, _ = answer(submission, X)
    expected, _ = oracles.optimal_step_and_rate(oracles.mse_hessian_eigenvalues(X))
    if matches(eta, expected, tolerance(dtype)):
        return
    message = f"eta for this X: expected {expected:.6g}, saw {eta:.6g}."
    for mistake, value in step_mistakes(X).items():
        if matches(eta, value, tolerance(dtype)):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


@pytest.mark.weight(2)
def check_rate_is_kappa_minus_one_over_kappa_plus_one(submission, seed, dtype):
    """rate = (κ − 1)/(κ + 1) with κ = λ_max/λ_min"""
    X = random_design(seed, dtype, "cpu")
    _, rate = answer(submission, X)
    ev = oracles.mse_hessian_eigenvalues(X)
    _, expected = oracles.optimal_step_and_rate(ev)
    if matches(rate, expected, tolerance(dtype)):
        return
    kappa = float(ev.max() / ev.min())
    root = math.sqrt(kappa)
    mistakes = {
        "κ was computed from the singular values of X, which are the square roots of the "
        "Hessian's eigenvalues (up to 2/n), so this is (√κ − 1)/(√κ + 1)":
            (root - 1) / (root + 1),
        "this is 1 − 1/κ, the rate of the safe step 1/λ_max, not of the optimal step":
            1 - 1 / kappa,
        "this is the reciprocal (κ + 1)/(κ − 1)": (kappa + 1) / (kappa - 1),
        "this is 1/κ": 1 / kappa,
    }
    message = f"rate for this X (κ = {kappa:.4g}): expected {expected:.6g}, saw {rate:.6g}."
    for mistake, value in mistakes.items():
        if matches(rate, value, tolerance(dtype)):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


def check_rate_is_what_gradient_descent_achieves(submission, seed):
    """With step eta, gradient descent's worst-case error shrinks by rate per step"""
    X = random_design(seed, torch.float64, "cpu")
    eta, rate = answer(submission, X)
    H = (2.0 / X.shape[0]) * (X.T @ X)
    _, vectors = torch.linalg.eigh(H)
    steps = 20
    # The slowest directions are the extreme eigenvectors; run gradient descent on the
    # error along each and take the worse per-step contraction.
    measured = 0.0
    for start in (vectors[:, 0], vectors[:, -1]):
        error = start.clone()
        for _ in range(steps):
            error = error - eta * (H @ error)
        measured = max(measured, float(error.norm() / start.norm()) ** (1.0 / steps))
    if not math.isfinite(measured) or not math.isclose(measured, rate, rel_tol=1e-6):
        raise Mismatch(
            f"running gradient descent with your eta={eta:.6g} for {steps} steps shrinks the "
            f"error by {measured:.6g} per step, but your rate is {rate:.6g}: the step "
            "and the rate must describe the same run."
        )
