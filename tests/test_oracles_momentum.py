"""The momentum oracles agree with torch.optim, so the checks of assignment 02 trust
PyTorch and the equations, not the course's own solutions."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import oracles
from autograder.oracles import momentum

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
GROUP_OPTIONS = {
    "momentum": [{"momentum": 0.9}, {"momentum": 0.5}],
    "dampening": [{"momentum": 0.8, "dampening": 0.3}, {"momentum": 0.6, "dampening": 0.9}],
    "nesterov": [{"momentum": 0.9, "nesterov": True}, {"momentum": 0.0}],
    "decay": [{"momentum": 0.7, "weight_decay": 0.2}, {"momentum": 0.0, "weight_decay": 0.1}],
    "maximize": [{"momentum": 0.9, "weight_decay": 0.1, "maximize": True},
                 {"momentum": 0.9, "nesterov": True, "maximize": True}],
}


def sgd(groups):
    return torch.optim.SGD(groups, lr=1e-3)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", GROUP_OPTIONS)
def test_sgd_momentum_equation_matches_torch_sgd_through_the_scripted_run(seed, dtype, device, kind):
    schedule = oracles.make_schedule(seed, dtype, device)
    options = GROUP_OPTIONS[kind]
    torch_run = oracles.replay(sgd, schedule, group_options=options)
    equation = momentum.sgd_momentum_equation(schedule, options)
    assert oracles.first_divergence(torch_run, equation, dtype) is None


def test_a_state_dict_round_trip_keeps_torch_on_the_equation():
    schedule = oracles.make_schedule(4, torch.float64, "cpu")
    options = GROUP_OPTIONS["dampening"]
    reloaded = oracles.replay(sgd, schedule, reload_at=10, group_options=options)
    assert oracles.first_divergence(
        reloaded, momentum.sgd_momentum_equation(schedule, options), torch.float64) is None
    # Forgetting the buffers at the reload is a different run.
    restarted = momentum.sgd_momentum_equation(schedule, options, reset_at=10)
    assert oracles.first_divergence(reloaded, restarted, torch.float64) == 11


@pytest.mark.parametrize("mistake", momentum.MISTAKES)
def test_each_mistake_changes_the_run_only_where_its_feature_is_used(mistake):
    schedule = oracles.make_schedule(1, torch.float64, "cpu")
    affected = {kind: oracles.first_divergence(
        momentum.sgd_momentum_equation(schedule, options, mistake=mistake),
        momentum.sgd_momentum_equation(schedule, options), torch.float64) is not None
        for kind, options in GROUP_OPTIONS.items()}
    assert any(affected.values()), f"{mistake} changes nothing"
    assert not all(affected.values()) or mistake in ("ema", "lr_in_buffer")


def test_lr_in_buffer_is_sutskevers_form_which_agrees_until_the_rate_changes():
    schedule = oracles.make_schedule(2, torch.float64, "cpu")
    options = GROUP_OPTIONS["momentum"]
    sutskever = momentum.sgd_momentum_equation(schedule, options, mistake="lr_in_buffer")
    torch_run = oracles.replay(sgd, schedule, group_options=options)
    assert oracles.first_divergence(sutskever, torch_run, torch.float64) == min(schedule.lr_changes)
    steady = schedule.without_lr_changes()
    assert oracles.first_divergence(
        momentum.sgd_momentum_equation(steady, options, mistake="lr_in_buffer"),
        oracles.replay(sgd, steady, group_options=options), torch.float64) is None


def test_unknown_mistake_is_an_error():
    with pytest.raises(ValueError, match="unknown mistake"):
        momentum.sgd_momentum_update(torch.zeros(2), torch.ones(2), None, lr=0.1, mistake="typo")


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_ema_is_torchs_ema_average_and_a_scaled_momentum_buffer(beta):
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(15)]
    ema_fn = torch.optim.swa_utils.get_ema_avg_fn(beta)
    average = torch.zeros(3, 4, dtype=torch.float64)
    theirs = torch.zeros(3, 4, dtype=torch.float64)
    param = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=beta)
    for t, x in enumerate(values):
        average = momentum.ema(average, x, beta)
        theirs = ema_fn(theirs, x, torch.tensor(t))
        param.grad = x.clone()
        optimizer.step()
        torch.testing.assert_close(average, theirs)
        # From zero, the EMA is (1 - β) times PyTorch's buffer (no dampening).
        torch.testing.assert_close(average, (1 - beta) * optimizer.state[param]["momentum_buffer"])


def spd(eigenvalues, seed=0):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=gen,
                                       dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T


@pytest.mark.parametrize("device", DEVICES)
def test_heavy_ball_matrix_is_what_torch_sgd_does_on_the_quadratic(device):
    A = spd([1.0, 3.0, 20.0])
    lr, beta = 0.05, 0.7
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, device=device, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=lr, momentum=beta)
    M = momentum.heavy_ball_matrix(A, lr, beta)
    state = torch.cat([theta.detach().cpu(), theta.detach().cpu()])  # at rest: θ₋₁ = θ₀
    A_dev = A.to(device)
    for _ in range(25):
        optimizer.zero_grad()
        (0.5 * theta @ A_dev @ theta).backward()
        optimizer.step()
        state = M @ state
        torch.testing.assert_close(theta.detach().cpu(), state[:3])


@pytest.mark.parametrize("kappa", [4.0, 100.0, 1e4])
def test_polyaks_tuning_contracts_at_its_rate_and_nothing_nearby_does_better(kappa):
    A = spd([2.0, 2.0 * math.sqrt(kappa), 2.0 * kappa], seed=1)
    lr, beta, rate = momentum.polyak_heavy_ball(torch.linalg.eigvalsh(A))
    assert rate == pytest.approx((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1))
    assert beta == pytest.approx(rate**2)
    assert momentum.heavy_ball_contraction(A, lr, beta) == pytest.approx(rate, rel=1e-6)
    for factor in (0.95, 1.05):
        assert momentum.heavy_ball_contraction(A, factor * lr, beta) > rate
        assert momentum.heavy_ball_contraction(A, lr, min(factor * beta, 0.999)) > rate


def test_torch_sgd_at_polyaks_tuning_follows_the_repeated_root_exactly():
    """Along the steepest eigenvector the error is (1 + (1 + ρ)t)(−ρ)^t: the rate ρ, with
    the linear factor of a repeated root."""
    lam_min, lam_max = 1.0, 100.0
    A = torch.diag(torch.tensor([lam_min, lam_max], dtype=torch.float64))
    lr, beta, rate = momentum.polyak_heavy_ball(torch.tensor([lam_min, lam_max], dtype=torch.float64))
    theta = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=lr, momentum=beta)
    for t in range(1, 60):
        optimizer.zero_grad()
        (0.5 * theta @ A @ theta).backward()
        optimizer.step()
        expected = (1 + (1 + rate) * t) * (-rate) ** t
        assert theta[1].item() == pytest.approx(expected, rel=1e-9, abs=1e-15)
