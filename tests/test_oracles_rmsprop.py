"""The Adagrad and RMSprop oracles agree with torch.optim, and the models of known mistakes
are told apart from the correct rule, so the checks of assignment 03 trust PyTorch and
the equations rather than the course's own solutions."""

from __future__ import annotations

import pytest
import torch

from autograder import oracles
from autograder.checks import _rmsprop
from autograder.oracles import rmsprop as equations

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
RMSPROP_OPTIONS = {
    "plain": [dict(), dict(alpha=0.9, eps=1e-3)],
    "momentum": [dict(momentum=0.9), dict(momentum=0.5, alpha=0.8)],
    "centered": [dict(centered=True), dict(centered=True, momentum=0.7, eps=1e-2)],
    "weight-decay": [dict(weight_decay=0.05), dict(weight_decay=0.1, momentum=0.9)],
    "mixed": [dict(centered=True, momentum=0.9, alpha=0.95), dict(weight_decay=0.01)],
}


def torch_rmsprop(groups):
    return torch.optim.RMSprop(groups, lr=1e-3)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", RMSPROP_OPTIONS)
def test_rmsprop_equation_matches_torch_rmsprop_through_the_scripted_run(name, seed, dtype, device):
    schedule = _rmsprop.scaled_schedule(seed, dtype, device)
    options = RMSPROP_OPTIONS[name]
    torch_run = oracles.replay(torch_rmsprop, schedule, group_options=options)
    equation = equations.rmsprop_equation(schedule, options)
    assert _rmsprop.first_divergence(torch_run, equation, dtype) is None


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_adagrad_equation_matches_torch_adagrad_with_every_option(seed, dtype, device):
    schedule = _rmsprop.scaled_schedule(seed, dtype, device)
    options = [dict(lr_decay=0.1, weight_decay=0.02), dict(eps=1e-3)]
    torch_run = oracles.replay(
        lambda groups: torch.optim.Adagrad(groups, initial_accumulator_value=0.3), schedule,
        group_options=options)
    equation = equations.adagrad_equation(schedule, options, initial_accumulator_value=0.3)
    assert _rmsprop.first_divergence(torch_run, equation, dtype) is None


def test_torch_adagrad_ignores_an_initial_accumulator_value_given_in_a_group():
    schedule = _rmsprop.scaled_schedule(0, torch.float64, "cpu")
    options = [dict(initial_accumulator_value=5.0), {}]
    torch_run = oracles.replay(torch.optim.Adagrad, schedule, group_options=options)
    assert _rmsprop.first_divergence(torch_run, equations.adagrad_equation(schedule, options),
                                     torch.float64) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_functional_runs_match_torch_on_one_group_with_every_gradient(dtype, device):
    schedule = _rmsprop.scaled_schedule(4, dtype, device, groups=1, missing_grad_prob=0.0)
    adagrad = oracles.replay(torch.optim.Adagrad, schedule, group_options=[{"eps": 1e-3}])
    history, sums = equations.functional_run(schedule, equations.adagrad_rule, eps=1e-3)
    assert _rmsprop.first_divergence(adagrad, history, dtype) is None
    rmsprop = oracles.replay(torch.optim.RMSprop, schedule, group_options=[{"alpha": 0.9, "eps": 1e-3}])
    history, averages = equations.functional_run(schedule, equations.rmsprop_rule, alpha=0.9, eps=1e-3)
    assert _rmsprop.first_divergence(rmsprop, history, dtype) is None
    # the final states are the sum and the moving average of the squared gradients
    grads = [[g.to("cpu", torch.float64) for g in step[0]] for step in schedule.grads]
    for i in range(len(sums)):
        torch.testing.assert_close(sums[i], sum(step[i] ** 2 for step in grads))
        average = torch.zeros_like(sums[i])
        for step in grads:
            average = 0.9 * average + 0.1 * step[i] ** 2
        torch.testing.assert_close(averages[i], average)


def test_one_step_of_each_update_is_one_torch_step():
    gen = torch.Generator().manual_seed(0)
    p, g = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    for cls, update in [
        (torch.optim.Adagrad, lambda: equations.adagrad_update(p, g, torch.zeros_like(p), 0.3, 1e-10)[0]),
        (torch.optim.RMSprop, lambda: equations.rmsprop_update(p, g, {}, 0.3)[0]),
    ]:
        param = p.clone().requires_grad_()
        param.grad = g.clone()
        cls([param], lr=0.3).step()
        torch.testing.assert_close(update(), param.detach())


@pytest.mark.parametrize("option", sorted(_rmsprop.TORCH_RMSPROP_INVALID))
def test_torch_rejects_each_invalid_setting_the_check_tries(option):
    with pytest.raises(ValueError):
        torch.optim.RMSprop([torch.zeros(1, requires_grad=True)],
                            **{option: _rmsprop.TORCH_RMSPROP_INVALID[option]})


def test_torch_rmsprop_has_the_defaults_the_checks_expect():
    defaults = _rmsprop.TORCH_RMSPROP_DEFAULTS
    group = torch.optim.RMSprop([torch.zeros(1, requires_grad=True)]).param_groups[0]
    assert {k: group[k] for k in defaults} == defaults
    assert equations.RMSPROP_DEFAULTS == {k: v for k, v in defaults.items() if k != "lr"}


OPTIONS_FOR = {
    "momentum_before": "momentum", "momentum_ignored": "momentum",
    "mean_not_squared": "centered", "centered_ignored": "centered",
    "decoupled_decay": "weight-decay", "decay_after_step": "weight-decay", "decay_ignored": "weight-decay",
}


@pytest.mark.parametrize("kind", sorted(_rmsprop.RMSPROP_MISTAKES))
def test_each_modelled_rmsprop_mistake_changes_the_run(kind):
    schedule = _rmsprop.scaled_schedule(0, torch.float64, "cpu")
    options = RMSPROP_OPTIONS[OPTIONS_FOR.get(kind, "plain")]
    correct = equations.rmsprop_equation(schedule, options)
    wrong = equations.rmsprop_equation(schedule, options, _rmsprop.rmsprop_mistake(kind))
    assert _rmsprop.first_divergence(wrong, correct, torch.float64) is not None
    assert _rmsprop.first_divergence(correct, wrong, torch.float64) is not None


@pytest.mark.parametrize("kind", ["eps_inside", "not_kept", "stale", "no_sqrt", "not_squared"])
def test_each_modelled_adagrad_mistake_changes_the_run(kind):
    schedule = _rmsprop.scaled_schedule(0, torch.float64, "cpu", groups=1, missing_grad_prob=0.0)
    correct, _ = equations.functional_run(schedule, equations.adagrad_rule, eps=1e-2)
    wrong, _ = equations.functional_run(schedule, _rmsprop.adagrad_mistake(kind), eps=1e-2)
    assert _rmsprop.first_divergence(wrong, correct, torch.float64) is not None


def test_the_rmsprop_rule_without_mistakes_is_the_oracle():
    """The mistake models share one code path with a correct branch: with an unknown
    kind they must reproduce the oracle, so each mistake changes only what it names."""
    schedule = _rmsprop.scaled_schedule(1, torch.float64, "cpu")
    for options in RMSPROP_OPTIONS.values():
        assert _rmsprop.first_divergence(
            equations.rmsprop_equation(schedule, options, _rmsprop.rmsprop_mistake("none")),
            equations.rmsprop_equation(schedule, options), torch.float64) is None


def test_a_lost_state_after_reloading_is_a_different_run():
    schedule = _rmsprop.scaled_schedule(2, torch.float64, "cpu", steps=14)
    options = RMSPROP_OPTIONS["centered"]
    straight = oracles.replay(torch_rmsprop, schedule, group_options=options, reload_at=5)
    (compute,) = _rmsprop.lost_state_after_reload(schedule, options, 5).values()
    assert _rmsprop.first_divergence(compute(), straight, torch.float64) == 6


def test_scaled_schedule_gives_each_parameter_its_own_gradient_scale():
    schedule = _rmsprop.scaled_schedule(0, torch.float64, "cpu", missing_grad_prob=0.0)
    rms = [torch.stack([step[0][i] for step in schedule.grads]).pow(2).mean().sqrt().item()
           for i in range(len(schedule.initial[0]))]
    assert max(rms) / min(rms) > 3
    assert all(1e-4 < r < 50 for r in rms)


def test_close_treats_nan_as_part_of_a_mistake_only_where_the_mistake_has_it():
    nan = float("nan")
    expected = torch.tensor([1.0, nan, 3.0], dtype=torch.float64)
    assert _rmsprop.close(torch.tensor([1.0, nan, 3.0]), expected, torch.float32)
    assert not _rmsprop.close(torch.tensor([1.0, 2.0, 3.0]), expected, torch.float32)
    assert not _rmsprop.close(torch.tensor([nan, nan, 3.0]), expected, torch.float32)
    assert not _rmsprop.close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, nan]), torch.float64)


def test_close_scales_its_tolerance_with_the_largest_entry_of_the_tensor():
    # float32 rounding of a parameter that passed near zero after a step of size ~4
    expected = torch.tensor([-0.0391, 3.9], dtype=torch.float64)
    assert _rmsprop.close(torch.tensor([-0.0391 + 3e-6, 3.9]), expected, torch.float32)
    assert not _rmsprop.close(torch.tensor([-0.0391 + 3e-3, 3.9]), expected, torch.float32)
    history = [[expected], [expected + 1]]
    assert _rmsprop.first_divergence(history, [[expected], [expected + 1.01]], torch.float32) == 1
