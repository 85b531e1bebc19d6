"""The schedule oracles agree with torch.optim.lr_scheduler and torch.optim, so the checks
of assignment 05 trust PyTorch and the equations, not the course's own solutions."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import oracles, problems
from autograder.oracles import schedules

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
LR_SCHEDULER = torch.optim.lr_scheduler


def table(rows):
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(("T_max", "eta_min"), [(1, 0.0), (7, 0.0), (25, 0.003), (200, 0.01)])
def test_cosine_annealing_matches_cosine_annealing_lr_for_three_periods(T_max, eta_min):
    base_lrs = [0.1, 0.02]
    torch_rows = table(schedules.lr_history(schedules.torch_cosine(T_max, eta_min), base_lrs, 3 * T_max))
    closed = table(schedules.rates(lambda t, lr: schedules.cosine_annealing(t, T_max, lr, eta_min),
                                   base_lrs, 3 * T_max))
    torch.testing.assert_close(torch_rows, closed, rtol=1e-12, atol=1e-15)
    # η_max at 0 and 2T, η_min at T and 3T: past T_max it goes round again
    for t, value in [(0, 0.1), (T_max, eta_min), (2 * T_max, 0.1), (3 * T_max, eta_min)]:
        assert schedules.cosine_annealing(t, T_max, 0.1, eta_min) == pytest.approx(value, abs=1e-15)


def test_cosine_annealing_is_torch_closed_form():
    optimizer = schedules.optimizer_with_groups([0.3, 0.05])
    scheduler = LR_SCHEDULER.CosineAnnealingLR(optimizer, T_max=13, eta_min=0.01)
    for t in range(40):
        scheduler.last_epoch = t
        expected = [schedules.cosine_annealing(t, 13, lr, 0.01) for lr in (0.3, 0.05)]
        assert scheduler._get_closed_form_lr() == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(("warmup", "total", "ratio"), [(2, 9, 0.0), (5, 40, 0.1), (12, 30, 0.25)])
def test_warmup_cosine_factor_is_linear_lr_then_cosine_annealing_lr(warmup, total, ratio):
    """Up to T it is torch's SequentialLR(LinearLR, CosineAnnealingLR); after T it stays."""
    base = 0.2

    def sequential(optimizer):
        ramp = LR_SCHEDULER.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0,
                                     total_iters=warmup - 1)
        decay = LR_SCHEDULER.CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=ratio * base)
        return LR_SCHEDULER.SequentialLR(optimizer, [ramp, decay], milestones=[warmup])

    torch_rows = table(schedules.lr_history(sequential, [base], total))
    ours = table(schedules.rates(lambda t, lr: lr * schedules.warmup_cosine_factor(t, warmup, total, ratio),
                                 [base], total))
    torch.testing.assert_close(ours, torch_rows, rtol=1e-12, atol=1e-15)
    after = [schedules.warmup_cosine_factor(t, warmup, total, ratio) for t in range(total, 3 * total)]
    assert after == [ratio] * len(after)


def test_warmup_cosine_factor_without_warmup_is_cosine_annealing_lr_up_to_t():
    total, ratio, base = 17, 0.1, 0.4
    torch_rows = table(schedules.lr_history(schedules.torch_cosine(total, ratio * base), [base], total))
    ours = table(schedules.rates(lambda t, lr: lr * schedules.warmup_cosine_factor(t, 0, total, ratio),
                                 [base], total))
    torch.testing.assert_close(ours, torch_rows, rtol=1e-12, atol=1e-15)


def test_warmup_cosine_reference_scales_every_group_by_the_factor():
    base_lrs = [0.3, 0.01, 0.07]
    rows = table(schedules.lr_history(lambda o: schedules.warmup_cosine_reference(o, 4, 20, 0.1), base_lrs, 30))
    expected = table(schedules.rates(lambda t, lr: lr * schedules.warmup_cosine_factor(t, 4, 20, 0.1),
                                     base_lrs, 30))
    torch.testing.assert_close(rows, expected, rtol=1e-14, atol=0.0)
    assert rows[0].tolist() == pytest.approx([lr / 4 for lr in base_lrs])


@pytest.mark.parametrize("make", [schedules.torch_cosine(9, 0.001),
                                  lambda o: schedules.warmup_cosine_reference(o, 3, 15, 0.2)])
def test_lr_history_survives_a_state_dict_round_trip(make):
    straight = schedules.lr_history(make, [0.1, 0.3], 30)
    reloaded = schedules.lr_history(make, [0.1, 0.3], 30, reload_at=7)
    assert reloaded == straight


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_replay_with_scheduler_is_sgd_at_the_scheduled_rates(seed, dtype, device):
    run = oracles.make_schedule(seed, dtype, device, steps=25)
    T_max = 10
    history = schedules.replay_with_scheduler(lambda g: torch.optim.SGD(g, lr=1e-3), schedules.torch_cosine(T_max),
                                              run)
    # The same run as the equation θ ← θ − η_t·g with η_t the closed form, set before each step.
    changes = {t: {g: schedules.cosine_annealing(t, T_max, lr) for g, lr in enumerate(run.lrs)}
               for t in range(1, run.steps)}
    equation = oracles.sgd_equation(oracles.Schedule(run.initial, run.lrs, run.grads, changes))
    assert oracles.first_divergence(history, equation, dtype) is None


def adam_by_hand(X, y, rates, epochs, batch_size, betas=(0.9, 0.999), eps=1e-8):
    """Adam with bias correction, written out, over the minibatches in order."""
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    step = 0
    for _ in range(epochs):
        for xb, yb in zip(X.split(batch_size), y.split(batch_size)):
            g = (2.0 / xb.shape[0]) * xb.T @ (xb @ w - yb)
            step += 1
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
            w = w - rates[step - 1] * m_hat / (v_hat.sqrt() + eps)
    return w


@pytest.mark.parametrize(("n", "batch_size"), [(40, 8), (43, 8)])
@pytest.mark.parametrize("device", DEVICES)
def test_adam_with_schedule_is_adam_at_the_scheduled_rates(n, batch_size, device):
    X, y = problems.least_squares(3, n, 4, noise=0.5, dtype=torch.float64, device=device)
    epochs, lr = 3, 0.05

    def make(optimizer, total_steps):
        return LR_SCHEDULER.CosineAnnealingLR(optimizer, T_max=total_steps)

    w, lrs = schedules.adam_with_schedule(X, y, make, lr, epochs, batch_size)
    total = epochs * math.ceil(n / batch_size)
    assert lrs == pytest.approx([schedules.cosine_annealing(t, total, lr) for t in range(total)], rel=1e-12)
    expected = adam_by_hand(X.cpu(), y.cpu(), lrs, epochs, batch_size)
    torch.testing.assert_close(w, expected, rtol=1e-10, atol=1e-12)


def test_the_assignment_problem_needs_the_schedule():
    """With warmup and cosine decay Adam reaches the target of part 4; at a constant rate,
    or with the schedule stepped once per epoch, it stalls above it."""
    t = schedules.TRAINING_TARGET
    X, y = problems.least_squares(t["seed"], t["n"], t["d"], noise=t["noise"])
    best = problems.least_squares_minimum(X, y)

    def excess(make):
        w, _ = schedules.adam_with_schedule(X, y, make, t["lr"], t["epochs"], t["batch_size"])
        return oracles.mse_and_grad(X, y, w)[0] - best

    per_epoch = math.ceil(t["n"] / t["batch_size"])
    scheduled = excess(lambda o, total: schedules.warmup_cosine_reference(o, t["warmup_steps"], total))
    constant = excess(lambda o, total: LR_SCHEDULER.LambdaLR(o, lambda step: 1.0))
    by_epoch = excess(lambda o, total: LR_SCHEDULER.LambdaLR(
        o, lambda step: schedules.warmup_cosine_factor(step // per_epoch, t["warmup_steps"], total)))
    assert scheduled < t["excess"] / 5
    assert constant > 10 * t["excess"] and by_epoch > 2 * t["excess"]
