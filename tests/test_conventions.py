"""PyTorch's side of the conventions table (book/conventions.md), pinned against
torch.optim itself where no oracle test already does: the undamped first momentum step,
epsilon outside the square root, AdamW's decay scaled by the current learning rate, and
how schedulers and Adam count steps. The book shows these tests' source on its page of
convention tests, so each row of the table links to the test that holds it."""

from __future__ import annotations

import math

import pytest
import torch

F64 = torch.float64


def one_step(optimizer_class, grad, **options):
    """The change of a zero parameter after one step of the optimizer fed ``grad``."""
    param = torch.zeros_like(grad, requires_grad=True)
    optimizer = optimizer_class([param], **options)
    param.grad = grad.clone()
    optimizer.step()
    return param.detach()


@pytest.mark.parametrize("dampening", [0.0, 0.5, 0.9])
def test_torch_sgd_dampening_spares_the_first_step(dampening):
    """b₁ = g₁ whatever the dampening τ, then b_t = μ b_{t−1} + (1 − τ) g_t: a dampened
    buffer is not the zero-started EMA."""
    mu = 0.9
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=gen, dtype=F64) for _ in range(6)]
    param = torch.zeros(5, dtype=F64, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=mu, dampening=dampening)
    expected = None
    for g in grads:
        param.grad = g.clone()
        optimizer.step()
        expected = g.clone() if expected is None else mu * expected + (1 - dampening) * g
        torch.testing.assert_close(optimizer.state[param]["momentum_buffer"], expected,
                                   rtol=1e-14, atol=0)
    if dampening:
        ema = torch.zeros(5, dtype=F64)
        for g in grads:
            ema = mu * ema + (1 - mu) * g
        assert not torch.allclose(optimizer.state[param]["momentum_buffer"], ema)


@pytest.mark.parametrize("name, optimizer_class, options, first_second_moment", [
    # the second moment each optimizer divides by after one step with gradient g
    ("Adam", torch.optim.Adam, dict(eps=1e-8), lambda g: g * g),  # v̂₁ = g²
    ("RMSprop", torch.optim.RMSprop, dict(eps=1e-8, alpha=0.99), lambda g: 0.01 * g * g),
    ("Adagrad", torch.optim.Adagrad, dict(eps=1e-8), lambda g: g * g),
])
def test_torch_adds_eps_outside_the_square_root(name, optimizer_class, options,
                                                first_second_moment):
    """The step is η·g/(√v + ε), not η·g/√(v + ε): for gradients near ε the two differ
    by orders of magnitude."""
    lr, eps = 0.1, options["eps"]
    grad = torch.logspace(-10, 0, 11, dtype=F64)
    step = -one_step(optimizer_class, grad, lr=lr, **options)
    v = first_second_moment(grad)
    torch.testing.assert_close(step, lr * grad / (v.sqrt() + eps), rtol=1e-12, atol=0)
    inside = lr * grad / (v + eps).sqrt()
    assert (step / inside).max() > 100, name


def test_torch_adamw_decays_by_the_current_learning_rate_times_weight_decay():
    """θ ← θ(1 − η_t λ) with η_t the group's rate at that step, so the paper's schedule
    multiplier times decay λ is PyTorch's lr = α·η_t with weight_decay = λ/α."""
    alpha, lam = 1e-3, 1e-4
    multipliers = [1.0, 0.5, 0.25, 0.1]
    start = torch.linspace(-1, 1, 7, dtype=F64)
    param = start.clone().requires_grad_()
    optimizer = torch.optim.AdamW([param], lr=alpha, weight_decay=lam / alpha)
    expected = start.clone()
    for eta_t in multipliers:
        optimizer.param_groups[0]["lr"] = alpha * eta_t
        param.grad = torch.zeros_like(param)  # the Adam part moves nothing: decay alone
        optimizer.step()
        expected = expected * (1 - eta_t * lam)
        torch.testing.assert_close(param.detach(), expected, rtol=1e-15, atol=0)
    assert torch.optim.AdamW([param]).defaults["weight_decay"] == 0.01


def test_schedules_count_the_first_step_zero_and_adam_counts_it_one():
    """A scheduler's t (``last_epoch``) is 0 for the first optimizer step, which runs at
    η_max; Adam's bias correction uses t = 1 on that same step."""
    T_max, base, floor = 10, 0.1, 0.01
    param = torch.zeros(3, dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=base)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max, eta_min=floor)
    rates = []
    for step in range(2 * T_max + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        assert scheduler.last_epoch == step
        param.grad = torch.ones_like(param)
        optimizer.step()
        assert optimizer.state[param]["step"] == step + 1
        scheduler.step()
    expected = [floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * t / T_max))
                for t in range(2 * T_max + 1)]
    assert rates == pytest.approx(expected, rel=1e-12)
    # no clamp: at t = T_max the floor, at 2·T_max back at the base rate
    assert rates[T_max] == pytest.approx(floor) and rates[2 * T_max] == pytest.approx(base)
