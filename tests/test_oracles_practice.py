"""The oracles of chapter 9 agree with PyTorch (clip_grad_norm_, GradScaler, Adam on master
weights, the schedulers), so the checks of assignment 09 trust PyTorch and the equations,
not the course's own solutions."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.oracles import practice, schedules

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
LR_SCHEDULER = torch.optim.lr_scheduler


def parameters_with_grads(seed, dtype, device, *, scale=1.0, without_grad=1):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (7,), (2, 2, 2), (5,)]
    params = []
    for index, shape in enumerate(shapes):
        p = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
        if index != without_grad:
            p.grad = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).to(device)
        params.append(p)
    return params


def grads_of(params):
    return [p.grad.clone() for p in params if p.grad is not None]


def assert_same(seen, expected, dtype):
    for a, b in zip(seen, expected):
        torch.testing.assert_close(a.to("cpu", torch.float64), b, rtol=1e-6 if dtype == torch.float32 else 1e-12,
                                   atol=1e-7 if dtype == torch.float32 else 1e-14, equal_nan=True)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("foreach", [None, True, False])
@pytest.mark.parametrize("scale", [0.1, 10.0])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_clipped_is_clip_grad_norm(norm_type, foreach, scale, dtype, device):
    params = parameters_with_grads(int(scale * 10) + int(norm_type if norm_type != math.inf else 9), dtype, device,
                                   scale=scale)
    total, expected = practice.clipped(grads_of(params), 1.5, norm_type)
    returned = torch.nn.utils.clip_grad_norm_(params, 1.5, norm_type=norm_type, foreach=foreach)
    assert_same([returned], [total], dtype)
    assert_same(grads_of(params), expected, dtype)
    assert params[1].grad is None


@pytest.mark.parametrize("max_norm", [0.0, 1e-12, 1e6])
def test_clip_coefficient_at_the_edges_of_max_norm(max_norm):
    params = parameters_with_grads(3, torch.float64, "cpu")
    total, expected = practice.clipped(grads_of(params), max_norm)
    assert_same([torch.nn.utils.clip_grad_norm_(params, max_norm)], [total], torch.float64)
    assert_same(grads_of(params), expected, torch.float64)


def test_zero_gradients_and_no_gradients_are_left_alone():
    params = [torch.zeros(4, dtype=torch.float64, requires_grad=True)]
    params[0].grad = torch.zeros(4, dtype=torch.float64)
    assert float(practice.clip_coefficient(0.0, 1.0)) == 1.0
    assert float(torch.nn.utils.clip_grad_norm_(params, 1.0)) == 0.0
    assert float(torch.nn.utils.clip_grad_norm_([torch.zeros(3, requires_grad=True)], 1.0)) == 0.0
    assert float(practice.global_norm([])) == 0.0


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("foreach", [None, False])
def test_a_non_finite_norm_is_applied_or_refused_as_torch_does(bad, foreach):
    params = parameters_with_grads(5, torch.float32, "cpu")
    params[0].grad[1, 2] = bad
    total, expected = practice.clipped(grads_of(params), 1.0)
    returned = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=foreach)
    assert_same([returned], [total], torch.float32)
    assert_same(grads_of(params), expected, torch.float32)
    # inf · 0 is nan where the inf was and 0 elsewhere; a nan norm makes every entry nan
    if math.isnan(bad):
        assert all(bool(g.isnan().all()) for g in grads_of(params))
    else:
        assert bool(grads_of(params)[0][1, 2].isnan()) and float(grads_of(params)[1].abs().sum()) == 0.0
    params = parameters_with_grads(5, torch.float32, "cpu")
    params[2].grad[0] = bad
    before = grads_of(params)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True, foreach=foreach)
    assert all(torch.equal(a, b) or (a.isnan() == b.isnan()).all() for a, b in zip(grads_of(params), before))


def grad_scaler_run(overflows, *, zero_loss=False, **options):
    """torch.amp.GradScaler on the CPU with Adam: each step's loss is w·g, with an inf or a
    nan in g where ``overflows`` says; returns the scale after each update and Adam's step
    count after each step."""
    w = torch.ones(3, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **options)
    scales, counts = [], []
    for t, overflow in enumerate(overflows):
        g = torch.tensor([1.0, -2.0, 0.5]) * (0 if zero_loss else t + 1)
        if overflow:
            g[t % 3] = math.inf if t % 2 else math.nan
        optimizer.zero_grad()
        scaler.scale((w * g).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        scales.append(scaler.get_scale())
        counts.append(int(optimizer.state[w]["step"]) if w in optimizer.state else 0)
    return scales, counts


@pytest.mark.parametrize(("overflows", "options"), [
    ([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0], dict(init_scale=1024.0, growth_interval=3)),
    ([1, 1, 1, 0, 0, 0, 0, 0], dict(init_scale=8.0, growth_interval=2, growth_factor=4.0, backoff_factor=0.25)),
    ([0, 1] * 6, dict(growth_interval=1)),
])
def test_loss_scale_makes_grad_scalers_decisions(overflows, options):
    scales, counts = grad_scaler_run(overflows, **options)
    expected, taken = practice.loss_scale_decisions(overflows, **options)
    assert scales == expected
    # a skipped step does not reach Adam: its step counter counts the steps taken
    assert counts == [sum(taken[: t + 1]) for t in range(len(taken))]


def test_loss_scale_grows_only_to_a_finite_float32_scale():
    scales, counts = grad_scaler_run([0] * 5, zero_loss=True, init_scale=2.0 ** 125, growth_interval=1)
    expected, _ = practice.loss_scale_decisions([0] * 5, init_scale=2.0 ** 125, growth_interval=1)
    assert scales == expected == [2.0 ** 126, 2.0 ** 127, 2.0 ** 127, 2.0 ** 127, 2.0 ** 127]
    assert counts == [1, 2, 3, 4, 5]


def test_a_gradient_that_overflows_when_scaled_is_skipped():
    """No inf in the gradients themselves (at most 2, 4, then 6): times the scale they
    overflow float32, and the steps are skipped, until the scale has backed off to 2¹²⁵."""
    scales, counts = grad_scaler_run([0, 0, 0], init_scale=2.0 ** 127)
    assert scales == [2.0 ** 126, 2.0 ** 125, 2.0 ** 125] and counts == [0, 0, 1]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("device", DEVICES)
def test_master_adam_is_torch_adam_on_float32_masters(seed, device):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).to(torch.bfloat16).to(device) for s in [(4, 3), (6,)]]
    grads = [[(torch.randn(p.shape, generator=gen) * 1e-3).to(torch.bfloat16).to(device) for p in params]
             for _ in range(20)]
    masters = [p.float().requires_grad_() for p in params]
    optimizer = torch.optim.Adam(masters, lr=1e-3, foreach=False)
    ours = practice.master_adam(params, grads, 20, 1e-3)
    ours32 = practice.master_adam(params, grads, 20, 1e-3, state_dtype=torch.float32)
    for t in range(20):
        for w, g in zip(masters, grads[t]):
            w.grad = g.float()
        optimizer.step()
        for i, w in enumerate(masters):
            torch.testing.assert_close(ours[t][1][i].float(), w.detach(), rtol=2e-6, atol=1e-7)
            torch.testing.assert_close(ours32[t][1][i], w.detach(), rtol=1e-6, atol=1e-7)
            assert torch.equal(ours32[t][0][i], w.detach().to(torch.bfloat16))
            state = optimizer.state[w]
            torch.testing.assert_close(ours[t][2][i].float(), state["exp_avg"], rtol=1e-6, atol=1e-9)
            torch.testing.assert_close(ours[t][3][i].float(), state["exp_avg_sq"], rtol=1e-6, atol=1e-15)


def test_without_master_weights_small_updates_are_lost_in_bfloat16():
    """The reason for master weights: an update below half of bfloat16's spacing at the
    weight rounds away; the master copy accumulates it."""
    params = [torch.ones(4, dtype=torch.bfloat16)]
    grads = [[torch.full((4,), 0.01, dtype=torch.bfloat16)] for _ in range(50)]
    history = practice.master_adam(params, grads, 50, 1e-4, state_dtype=torch.float32)
    bf16_only = params[0].clone()
    for t in range(50):
        bf16_only -= (1e-4 * torch.ones(4)).to(torch.bfloat16)  # Adam's step is ≈ lr here
    assert torch.equal(bf16_only, params[0])
    assert float(history[-1][1][0][0]) == pytest.approx(1 - 50e-4, rel=1e-4)
    assert float(history[-1][0][0][0]) < 1.0


@pytest.mark.parametrize(("W", "S", "D", "r"), [(1, 0, 1, 0.0), (3, 10, 6, 0.0), (5, 7, 12, 0.1), (8, 0, 20, 0.25)])
def test_wsd_factor_is_linear_lr_constant_lr_linear_lr(W, S, D, r):
    base, total = 0.3, W + S + D + 5

    def sequential(optimizer):
        ramp = LR_SCHEDULER.LinearLR(optimizer, start_factor=1 / W, end_factor=1.0, total_iters=W - 1)
        stable = LR_SCHEDULER.ConstantLR(optimizer, factor=1.0, total_iters=S)
        decay = LR_SCHEDULER.LinearLR(optimizer, start_factor=1.0, end_factor=r, total_iters=D)
        return LR_SCHEDULER.SequentialLR(optimizer, [ramp, stable, decay], milestones=[W, W + S])

    torch_rows = torch.tensor(schedules.lr_history(sequential, [base], total), dtype=torch.float64)
    ours = torch.tensor(schedules.rates(lambda t, lr: lr * practice.wsd_factor(t, W, S, D, r), [base], total),
                        dtype=torch.float64)
    torch.testing.assert_close(ours, torch_rows, rtol=1e-12, atol=1e-15)
    reference = torch.tensor(schedules.lr_history(lambda o: practice.wsd_reference(o, W, S, D, r), [base], total),
                             dtype=torch.float64)
    torch.testing.assert_close(reference, ours, rtol=1e-14, atol=0.0)


@pytest.mark.parametrize(("total", "pct"), [(10, 0.3), (57, 0.25), (200, 0.1)])
def test_one_cycle_lr_matches_torch(total, pct):
    def one_cycle(optimizer):
        return LR_SCHEDULER.OneCycleLR(optimizer, max_lr=[0.4, 0.02], total_steps=total, pct_start=pct)

    def momentum_sgd(base_lrs):
        return torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in base_lrs],
                               momentum=0.9)

    optimizer = momentum_sgd([0.1, 0.1])
    scheduler = one_cycle(optimizer)
    seen = [[g["lr"] for g in optimizer.param_groups]]
    for _ in range(total - 1):
        optimizer.step()
        scheduler.step()
        seen.append([g["lr"] for g in optimizer.param_groups])
    expected = [[practice.one_cycle_lr(t, total, peak, pct) for peak in (0.4, 0.02)] for t in range(total)]
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("W", [1, 4, 4000])
def test_inverse_sqrt_is_the_transformers_schedule_over_its_peak(W):
    d_model = 512
    for t in list(range(0, 3 * W, max(1, W // 7))) + [10 * W]:
        s = t + 1
        vaswani = d_model ** -0.5 * min(s ** -0.5, s * W ** -1.5)
        assert practice.inverse_sqrt_factor(t, W) == pytest.approx(vaswani / (d_model ** -0.5 * W ** -0.5), rel=1e-12)
