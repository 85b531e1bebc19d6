"""Part ``momentum-rate``: ``optimal_momentum(A)`` returns ``(lr, beta, rate)``, Polyak's
tuning of heavy-ball momentum for f(θ) = ½ θᵀAθ and the contraction per step it buys.

With λ_min, λ_max the extreme eigenvalues of A and κ = λ_max/λ_min: lr = 4/(√λ_max +
√λ_min)², beta = ((√κ − 1)/(√κ + 1))², rate = (√κ − 1)/(√κ + 1). The oracle computes the
eigenvalues in float64 (:func:`autograder.oracles.momentum.polyak_heavy_ball`) and, to
tie the rate to what heavy ball does, measures the contraction of the learner's own
(lr, beta) from the iteration's matrix
(:func:`autograder.oracles.momentum.heavy_ball_contraction`).
"""

import math

import torch

from autograder.checks import _learner
from autograder.feedback import Mismatch
from autograder.oracles import momentum

NAME = "optimal_momentum"


def random_hessian(seed, dtype, device):
    """A symmetric positive definite matrix with a random size, scale and condition number."""
    gen = torch.Generator().manual_seed(5000 + seed)
    d = int(torch.randint(2, 9, (1,), generator=gen))
    kappa = math.exp(float(torch.empty(()).uniform_(math.log(4.0), math.log(400.0), generator=gen)))
    scale = math.exp(float(torch.empty(()).uniform_(math.log(0.1), math.log(10.0), generator=gen)))
    inner = 1 + (kappa - 1) * torch.rand(max(d - 2, 0), generator=gen, dtype=torch.float64)
    eigenvalues = scale * torch.cat([torch.tensor([1.0, kappa], dtype=torch.float64), inner])
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    A = Q @ torch.diag(eigenvalues) @ Q.T
    return (0.5 * (A + A.T)).to(device, dtype)


def answer(submission, A):
    result = _learner.call(submission, NAME, [A])["result"]
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        raise Mismatch(f"{NAME} must return the triple (lr, beta, rate); saw {type(result).__name__}.")
    try:
        return tuple(float(v) for v in result)
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"{NAME} must return three numbers; saw {result!r:.80}.") from None


def tolerance(dtype):
    # float32 eigenvalues of a matrix with κ up to 400 are good to about 1e-4 relative.
    return 1e-3 if dtype == torch.float32 else 1e-9


def extremes(A):
    eigenvalues = torch.linalg.eigvalsh(A.detach().to("cpu", torch.float64))
    return float(eigenvalues.min()), float(eigenvalues.max())


def compare(seen, expected, mistakes, what, dtype):
    if math.isclose(seen, expected, rel_tol=tolerance(dtype), abs_tol=0.0):
        return
    message = f"{what}: expected {expected:.6g}, saw {seen:.6g}."
    for mistake, value in mistakes.items():
        if math.isclose(seen, value, rel_tol=tolerance(dtype), abs_tol=0.0):
            message += f" Likely mistake: {mistake}."
            break
    raise Mismatch(message)


def check_learning_rate_is_polyaks(submission, seed, dtype):
    """lr = 4 / (√λ_max + √λ_min)²"""
    A = random_hessian(seed, dtype, "cpu")
    lr, _, _ = answer(submission, A)
    lo, hi = extremes(A)
    expected, _, _ = momentum.polyak_heavy_ball(torch.tensor([lo, hi], dtype=torch.float64))
    mistakes = {
        "2/(λ_min + λ_max) is gradient descent's best step, not heavy ball's": 2 / (lo + hi),
        "the factor 4 is missing: lr = 4/(√λ_max + √λ_min)²": 1 / (math.sqrt(hi) + math.sqrt(lo)) ** 2,
        "this is 1/λ_max, the safe step of gradient descent": 1 / hi,
        "the square roots are missing: 4/(λ_max + λ_min)": 4 / (hi + lo),
    }
    compare(lr, expected, mistakes, f"lr for A with eigenvalues in [{lo:.4g}, {hi:.4g}]", dtype)


def check_momentum_is_the_rate_squared(submission, seed, dtype):
    """beta = ((√κ − 1)/(√κ + 1))² with κ = λ_max/λ_min"""
    A = random_hessian(seed, dtype, "cpu")
    _, beta, _ = answer(submission, A)
    lo, hi = extremes(A)
    _, expected, rate = momentum.polyak_heavy_ball(torch.tensor([lo, hi], dtype=torch.float64))
    kappa = hi / lo
    mistakes = {
        "beta is the square of the rate: the error shrinks by √beta per step, so "
        "beta = ((√κ − 1)/(√κ + 1))², not (√κ − 1)/(√κ + 1)": rate,
        "(κ − 1)/(κ + 1) is gradient descent's rate; beta uses √κ": (kappa - 1) / (kappa + 1),
        "the square root of κ is missing: ((κ − 1)/(κ + 1))²": ((kappa - 1) / (kappa + 1)) ** 2,
    }
    compare(beta, expected, mistakes, f"beta for A with κ = {kappa:.4g}", dtype)


def check_rate_is_root_kappa_minus_one_over_root_kappa_plus_one(submission, seed, dtype):
    """rate = (√κ − 1)/(√κ + 1)"""
    A = random_hessian(seed, dtype, "cpu")
    _, _, rate = answer(submission, A)
    lo, hi = extremes(A)
    _, beta, expected = momentum.polyak_heavy_ball(torch.tensor([lo, hi], dtype=torch.float64))
    kappa = hi / lo
    mistakes = {
        "this is beta, the square of the rate: the error shrinks by √beta per step": beta,
        "(κ − 1)/(κ + 1) is gradient descent's rate at its best step, not heavy ball's":
            (kappa - 1) / (kappa + 1),
        "this is 1 − 1/√κ, Nesterov's rate with lr = 1/λ_max, not heavy ball's optimum":
            1 - 1 / math.sqrt(kappa),
    }
    compare(rate, expected, mistakes, f"rate for A with κ = {kappa:.4g}", dtype)


def check_rate_is_what_heavy_ball_achieves(submission, seed):
    """With your lr and beta, heavy ball's error shrinks by rate per step"""
    A = random_hessian(seed, torch.float64, "cpu")
    lr, beta, rate = answer(submission, A)
    measured = momentum.heavy_ball_contraction(A, lr, beta)
    if not math.isfinite(measured) or not math.isclose(measured, rate, rel_tol=1e-5):
        verdict = " (it diverges)" if measured >= 1 else ""
        raise Mismatch(
            f"heavy ball with your lr={lr:.6g} and beta={beta:.6g} shrinks the error by "
            f"{measured:.6g} per step in the long run{verdict}, but your rate is {rate:.6g}: "
            "lr, beta and rate must describe the same run."
        )
