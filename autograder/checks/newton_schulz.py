"""Part ``newton-schulz``: ``newton_schulz(G, steps=5, eps=1e-7)`` orthogonalizes a matrix
by Muon's quintic Newton–Schulz iteration, in G's own dtype.

The oracle is the iteration in float64 (:func:`autograder.oracles.beyond.newton_schulz`):
X₀ = G/max(‖G‖_F, ε), transposed first when G is tall, then X ← aX + (bA + cA²)X with
A = XXᵀ and (a, b, c) = (3.4445, −4.7750, 2.0315). In bfloat16 the comparison is with
torch.optim.Muon's own orthogonalization (``torch.optim._muon``), which computes in
bfloat16, to that format's precision; and the result's singular values must lie between
0.5 and 1.5. The test matrices have singular values within a factor 20 of each other
(:func:`matrices`), which five steps lift into that range whatever the rounding.
The Gram matrix must be formed on the short side: the check measures, with
``torch.profiler``, that no allocation is as large as the long side's.
"""

import pytest
import torch

try:  # torch.optim.Muon is recent: with an older torch, bfloat16 is judged by the oracle alone
    from torch.optim._muon import _zeropower_via_newtonschulz
except ImportError:
    _zeropower_via_newtonschulz = None

from autograder.checks import _fast_adam
from autograder.feedback import Mismatch, call_submission, describe, expect_close
from autograder.oracles import beyond
from autograder.probe import probe

NAME = "newton_schulz"
HINTS = {
    "unexpected keyword": "Call signature: newton_schulz(G, steps=5, eps=1e-7).",
    "positional argument": "Call signature: newton_schulz(G, steps=5, eps=1e-7).",
    "mat1 and mat2 shapes cannot be multiplied": (
        "Likely mistake: the products are written in the wrong order; with A = X @ X.T, the "
        "update is a * X + (b * A + c * A @ A) @ X."
    ),
}
#: The smallest singular value of a test matrix, relative to its largest: five steps lift
#: σ/‖G‖_F ≥ SMALLEST/√12 above 0.5, and float32's rounding along it stays within tolerance.
SMALLEST = 0.05
#: A float64 relative error that bfloat16's rounding over five iterations stays well under
#: (correct code, written in any order, reaches about 0.12 on the test matrices).
BFLOAT16_RELATIVE = 0.2


def mistakes(G, steps):
    """The known wrong iterations, as functions of nothing (computed only when needed)."""
    def transposed_back_missing():
        X = beyond.newton_schulz(G, steps)
        return X.T if G.shape[0] > G.shape[1] else X

    def spectral():
        G64 = G.to(torch.float64)
        return beyond.newton_schulz(G64 / torch.linalg.matrix_norm(G64, ord=2), steps, normalized=False)

    return {
        "a tall matrix is transposed before the iteration but not transposed back": transposed_back_missing,
        "the coefficients are in the wrong order; X ← aX + bAX + cA²X with (a, b, c) = "
        "(3.4445, −4.7750, 2.0315)": lambda: beyond.newton_schulz(G, steps, coefficients=beyond.NS_COEFFICIENTS[::-1]),
        "this is the cubic iteration (1.5, −0.5, 0), which converges too slowly in 5 steps; "
        "Muon's is the quintic (3.4445, −4.7750, 2.0315)": lambda: beyond.newton_schulz(
            G, steps, coefficients=(1.5, -0.5, 0.0)),
        "G is not divided by its Frobenius norm first, so its singular values exceed 1 and the "
        "iteration diverges": lambda: (
            beyond.newton_schulz(G, steps, normalized=False)),
        "X₀ is divided by the spectral norm; Muon divides by the Frobenius norm (cheap, and at "
        "least as large)": spectral,
        "one iteration too many (the loop runs `steps` times)": lambda: beyond.newton_schulz(G, steps + 1),
        "one iteration too few (the loop runs `steps` times)": lambda: beyond.newton_schulz(G, steps - 1),
    }


def matrices(seed, dtype, device, count=4):
    """Square, tall and wide matrices U·diag(σ)·Vᵀ, scaled by a random factor, with
    orthonormal U, V and singular values σ drawn from [SMALLEST, 1].

    A Gaussian matrix will not do: now and then its smallest singular value is below
    1e-3 of its Frobenius norm, which five steps lift only to about 0.45, and along it
    float32's rounding grows about a⁵ ≈ 490 times, beyond any tolerance: correct code,
    torch's own included, would fail."""
    gen = torch.Generator().manual_seed(8800 + seed)
    shapes = [(6, 6), (int(torch.randint(20, 40, (1,), generator=gen)), 7),
              (5, int(torch.randint(20, 40, (1,), generator=gen))), (16, 12)][:count]
    found = []
    for rows, cols in shapes:
        k = min(rows, cols)
        U = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64)).Q
        V = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64)).Q
        sigma = torch.empty(k, dtype=torch.float64).uniform_(SMALLEST, 1, generator=gen)
        scale = 10 ** float(torch.empty(()).uniform_(-2, 2, generator=gen))
        found.append((scale * U @ torch.diag(sigma) @ V.T).to(device, dtype))
    return found


@probe
def results(learner, Gs, steps):
    """The learner's orthogonalization of each matrix (G itself is given a copy)."""
    return [call_submission(f"{NAME}(G, steps={steps})", learner, G.clone(), steps, hints=HINTS) for G in Gs]


@probe
def allocations(learner, G, steps):
    """The allocations the learner's call makes, measured by torch.profiler."""
    _, seen = _fast_adam.allocations_during(call_submission, f"{NAME}(G, steps={steps})", learner, G, steps,
                                            hints=HINTS)
    return seen


def require_tensor(value, G):
    if not isinstance(value, torch.Tensor):
        raise Mismatch(f"{NAME} must return a tensor; it returned {type(value).__name__}.")
    if value.dtype != G.dtype:
        raise Mismatch(f"{NAME} returned {str(value.dtype).replace('torch.', '')} for a "
                       f"{str(G.dtype).replace('torch.', '')} matrix: compute in G's own dtype.")


@pytest.mark.weight(2)
def check_follows_the_quintic_iteration(submission, seed, dtype, device):
    """Follows X ← aX + (bA + cA²)X on square, tall and wide matrices (steps 5 and 3)"""
    for steps in (5, 3):
        Gs = matrices(seed, dtype, device)
        for G, X in zip(Gs, results(submission, Gs, steps)):
            require_tensor(X, G)
            expected = beyond.newton_schulz(G, steps)
            shape = "x".join(map(str, G.shape))
            expect_close(X, expected, dtype=dtype, variants=mistakes(G, steps),
                         what=f"{NAME}(G, steps={steps}) for a {shape} G")


def check_bfloat16_as_torch_muon_computes_it(submission, seed):
    """In bfloat16, agrees with torch.optim.Muon's own iteration and is nearly orthogonal"""
    for G in matrices(seed, torch.bfloat16, "cpu"):
        (X,) = results(submission, [G], 5)
        require_tensor(X, G)
        if X.shape != G.shape:
            raise Mismatch(f"for a {'x'.join(map(str, G.shape))} G the result is "
                           f"{'x'.join(map(str, X.shape))}. Likely mistake: a tall matrix is "
                           "transposed before the iteration but not transposed back.")
        references = {"the iteration in float64": beyond.newton_schulz(G, 5)}
        if _zeropower_via_newtonschulz is not None:
            references["torch.optim.Muon's orthogonalization"] = _zeropower_via_newtonschulz(
                G, beyond.NS_COEFFICIENTS, 5, 1e-7)
        for what, reference in references.items():
            gap = float((X.double() - reference.double()).norm() / reference.double().norm())
            if not gap < BFLOAT16_RELATIVE:
                raise Mismatch(f"in bfloat16, for a {'x'.join(map(str, G.shape))} G, the result differs from "
                               f"{what} by {gap:.2g} of its norm (bfloat16's rounding explains up to "
                               f"{BFLOAT16_RELATIVE}).")
        singular = torch.linalg.svdvals(X.double())
        if not (0.5 < float(singular.min()) and float(singular.max()) < 1.5):
            raise Mismatch(f"in bfloat16, the singular values of the result span "
                           f"{describe(float(singular.min()))} to {describe(float(singular.max()))}; "
                           "five quintic steps put them between 0.5 and 1.5.")


def check_gram_matrix_on_the_short_side(submission, seed):
    """For a tall G, forms the small Gram matrix (no allocation as large as rows × rows)"""
    gen = torch.Generator().manual_seed(8900 + seed)
    rows = int(torch.randint(400, 600, (1,), generator=gen))
    G = torch.randn(rows, 8, generator=gen)
    seen = allocations(submission, G, 5)
    limit = rows * rows * G.element_size()
    large = [(op, size) for op, size in seen if size >= limit]
    if large:
        op, size = large[0]
        raise Mismatch(
            f"for a {rows}x8 G, {op or 'the call'} allocated {size} bytes, a {rows}x{rows} matrix. "
            "Likely mistake: the Newton–Schulz iteration runs on the wrong side of a tall matrix: "
            "X @ X.T is then rows × rows; transpose a tall G first so that X @ X.T is 8 × 8 "
            "(the result is the same, for a fraction of the work).")
