"""The oracles agree with torch.optim and with autograd, so a check that trusts them is
trusting PyTorch and the equations, not the course's own solutions."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import oracles, problems

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_sgd_equation_matches_torch_sgd_through_the_scripted_run(seed, dtype, device):
    schedule = oracles.make_schedule(seed, dtype, device)
    torch_run = oracles.replay(lambda groups: torch.optim.SGD(groups, lr=1e-3), schedule)
    assert oracles.first_divergence(torch_run, oracles.sgd_equation(schedule), dtype) is None


def test_replay_survives_a_state_dict_round_trip_unchanged():
    schedule = oracles.make_schedule(3, torch.float64, "cpu")
    straight = oracles.replay(lambda g: torch.optim.SGD(g, lr=1e-3), schedule)
    reloaded = oracles.replay(lambda g: torch.optim.SGD(g, lr=1e-3), schedule, reload_at=10)
    assert oracles.first_divergence(reloaded, straight, torch.float64) is None


def test_schedule_has_missing_gradients_and_mid_run_learning_rate_changes():
    schedule = oracles.make_schedule(0, torch.float32, "cpu")
    assert any(g is None for step in schedule.grads for group in step for g in group)
    assert len(schedule.lr_changes) >= 1
    assert all(0 < step < schedule.steps for step in schedule.lr_changes)


def test_gd_update_is_one_torch_sgd_step():
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    param = p.clone().requires_grad_()
    param.grad = g.clone()
    torch.optim.SGD([param], lr=0.3).step()
    torch.testing.assert_close(oracles.gd_update([p], [g], 0.3)[0], param.detach())


@pytest.mark.parametrize("seed", range(3))
def test_mse_gradient_matches_autograd(seed):
    X, y = problems.least_squares(seed, 30, 4, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss = (X @ w - y).pow(2).mean()
    loss.backward()
    value, grad = oracles.mse_and_grad(X, y, w)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(grad, w.grad)


def test_gd_least_squares_matches_torch_sgd_on_the_same_loss():
    X, y = problems.least_squares(1, 40, 3, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.02)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = (X @ w - y).pow(2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    final, expected_losses = oracles.gd_least_squares(X, y, 0.02, 25)
    torch.testing.assert_close(final, w.detach())
    assert expected_losses == pytest.approx(losses, rel=1e-10)


def test_accumulating_gradients_is_what_a_loop_without_zero_grad_does():
    X, y = problems.least_squares(2, 40, 3, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.01)
    for _ in range(10):
        (X @ w - y).pow(2).mean().backward()
        optimizer.step()
    torch.testing.assert_close(oracles.gd_least_squares(X, y, 0.01, 10, accumulate=True)[0], w.detach())


@pytest.mark.parametrize("condition", [3.0, 30.0, 300.0])
def test_optimal_step_contracts_the_error_at_the_predicted_rate(condition):
    X, _ = problems.least_squares(0, 100, 6, condition=condition, dtype=torch.float64)
    eigenvalues = oracles.mse_hessian_eigenvalues(X)
    eta, rate = oracles.optimal_step_and_rate(eigenvalues)
    H = (2.0 / X.shape[0]) * X.T @ X
    error = torch.linalg.eigh(H).eigenvectors[:, 0]
    steps = 50
    for _ in range(steps):
        error = error - eta * H @ error
    assert float(error.norm()) ** (1 / steps) == pytest.approx(rate, rel=1e-8)
    # Any other step contracts the worst direction more slowly.
    for other in (0.9 * eta, 1.1 * eta):
        worst = max(abs(1 - other * float(lam)) for lam in eigenvalues)
        assert worst > rate
    kappa = float(eigenvalues.max() / eigenvalues.min())
    assert rate == pytest.approx((kappa - 1) / (kappa + 1))
    assert math.isfinite(eta)


def test_least_squares_problem_is_seeded_and_reaches_its_minimum():
    X1, y1 = problems.least_squares(0)
    X2, y2 = problems.least_squares(0)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    best = problems.least_squares_minimum(X1, y1)
    w, _ = oracles.gd_least_squares(X1, y1, 0.05, 400)
    assert oracles.mse_and_grad(X1, y1, w)[0] == pytest.approx(best, rel=1e-6)
