"""Problems the assignments hand to learners, generated from a seed (no data files)."""

from __future__ import annotations

import torch


def least_squares(
    seed: int = 0,
    n: int = 200,
    d: int = 5,
    *,
    condition: float = 10.0,
    noise: float = 0.1,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear regression problem ``(X, y)`` with ``y = X w* + noise``.

    The columns of X are scaled so that the Hessian of the mean squared error has
    condition number about ``condition``: gradient descent needs tens to hundreds of steps.
    """
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    X = X * torch.logspace(0, 0.5 * torch.log10(torch.tensor(condition)).item(), d, dtype=torch.float64)
    w_star = torch.randn(d, generator=gen, dtype=torch.float64)
    y = X @ w_star + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    return X.to(device, dtype), y.to(device, dtype)


def least_squares_minimum(X: torch.Tensor, y: torch.Tensor) -> float:
    """The smallest mean squared error any w reaches on ``(X, y)``, computed in float64."""
    X64, y64 = X.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.float64)
    w = torch.linalg.lstsq(X64, y64.unsqueeze(1)).solution.squeeze(1)
    return float((X64 @ w - y64).square().mean())
