"""The oracles of the optimizers after Adam (chapter 8) agree with torch.optim through the
scripted runs, Lion with its paper, and Newton–Schulz with torch.optim.Muon's own
orthogonalization and with the singular value decomposition."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from autograder import oracles
from autograder.feedback import close
from autograder.oracles import beyond

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
F64 = torch.float64


#: Each torch optimizer, its oracle and defaults, and per-group options that reach every
#: branch of its rule (decay coupled and decoupled, maximize, its own constants).
CASES = {
    "RAdam": (beyond.radam_step, beyond.RADAM_DEFAULTS, [
        dict(weight_decay=0.1, decoupled_weight_decay=True),
        dict(weight_decay=0.2, maximize=True, betas=(0.8, 0.9))]),
    "NAdam": (beyond.nadam_step, beyond.NADAM_DEFAULTS, [
        dict(weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=0.05),
        dict(weight_decay=0.2, maximize=True)]),
    "Adamax": (beyond.adamax_step, beyond.ADAMAX_DEFAULTS, [
        dict(weight_decay=0.1), dict(maximize=True, eps=1e-3, betas=(0.7, 0.95))]),
    "Adafactor": (beyond.adafactor_step, beyond.ADAFACTOR_DEFAULTS, [
        dict(weight_decay=0.1), dict(maximize=True, d=0.5, beta2_decay=-0.5, eps=(1e-6, 1e-2))]),
}


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("options", ["defaults", "per group"])
def test_equation_is_torch_through_the_scripted_run(name, seed, dtype, device, options):
    step, defaults, group_options = CASES[name]
    group_options = None if options == "defaults" else group_options
    schedule = oracles.make_schedule(seed, dtype, device, steps=20)
    reference = getattr(torch.optim, name)
    expected = oracles.replay(lambda groups: reference(groups, lr=1e-3), schedule, group_options=group_options)
    equation = beyond.equation(step, schedule, group_options, defaults=defaults, constructor=dict(lr=1e-3))
    assert oracles.first_divergence(equation, expected, dtype) is None


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", [None, [dict(nesterov=False, adjust_lr_fn="match_rms_adamw"),
                                            dict(momentum=0.8, weight_decay=0.3)]], ids=["defaults", "per group"])
def test_muon_equation_is_torch_given_its_orthogonalization(seed, dtype, device, options):
    """torch.optim.Muon orthogonalizes in bfloat16; given that same function, the rest of
    its rule (momentum, Nesterov, decay, the learning rate's adjustment) is the oracle's."""
    schedule = oracles.make_schedule(seed, dtype, device, steps=15, shape=beyond.matrix_shape)
    expected = oracles.replay(lambda groups: torch.optim.Muon(groups, lr=1e-3), schedule, group_options=options)

    def torchs(update):
        return _zeropower_via_newtonschulz(update.to(device, dtype), beyond.NS_COEFFICIENTS, 5, 1e-7)

    equation = beyond.equation(beyond.muon_step, schedule, options, defaults=beyond.MUON_DEFAULTS,
                               constructor=dict(lr=1e-3), orthogonalize=torchs)
    assert oracles.first_divergence(equation, expected, dtype) is None


@pytest.mark.parametrize("shape", [(8, 8), (40, 6), (6, 40), (64, 33)])
@pytest.mark.parametrize("device", DEVICES)
def test_newton_schulz_is_torchs_to_bfloat16_and_nearly_orthogonal(shape, device):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=F64).to(device)
    ours = beyond.newton_schulz(G, 5)
    torchs = _zeropower_via_newtonschulz(G.float(), beyond.NS_COEFFICIENTS, 5, 1e-7).double().cpu()
    assert float((ours - torchs).norm() / ours.norm()) < 0.03
    singular = torch.linalg.svdvals(ours)
    assert 0.6 < float(singular.min()) and float(singular.max()) < 1.2
    # The singular vectors stay: UᵀOV is diagonal, its diagonal the new singular values.
    U, _, Vh = torch.linalg.svd(G.cpu(), full_matrices=False)
    D = U.T @ ours @ Vh.T
    assert torch.allclose(D, torch.diag(torch.diagonal(D)), atol=1e-9)


def test_newton_schulz_in_float32_is_the_float64_iteration_to_float32s_tolerance():
    gen = torch.Generator().manual_seed(7)
    for shape in [(5, 5), (30, 7), (7, 30)]:
        G = torch.randn(shape, generator=gen, dtype=F64)
        assert close(beyond.newton_schulz(G.float(), 5, dtype=torch.float32), beyond.newton_schulz(G, 5),
                     torch.float32)


def test_the_quintic_pushes_small_singular_values_up_fast():
    """p(σ) = aσ + bσ³ + cσ⁵: p'(0) = a ≈ 3.4, so five steps lift σ = 1e-3 to order one,
    where the cubic iteration (1.5, −0.5, 0) barely moves it."""
    G = torch.diag(torch.tensor([1.0, 1e-1, 1e-2, 1e-3], dtype=F64))
    quintic = torch.linalg.svdvals(beyond.newton_schulz(G, 5))
    cubic = torch.linalg.svdvals(beyond.newton_schulz(G, 5, coefficients=(1.5, -0.5, 0.0)))
    assert float(quintic.min()) > 0.2
    assert float(cubic.min()) < 0.01


def test_radam_is_momentum_alone_until_rho_exceeds_five():
    """ρ_t for β₂ = 0.999 first exceeds 5 at t = 6 (and 4 at t = 5): torch's threshold."""
    assert [t for t in range(1, 10) if beyond.radam_rho(t, 0.999) > 5][0] == 6
    assert [t for t in range(1, 10) if beyond.radam_rho(t, 0.999) > 4][0] == 5
    assert math.isclose(beyond.radam_rectification(10**6, 0.999), 1.0, rel_tol=1e-6)


def test_lion_follows_algorithm_2():
    """The update is sign(β₁m + (1 − β₁)g); the momentum kept is β₂m + (1 − β₂)g; the decay
    is decoupled. Written out for two steps of one scalar."""
    hyper = dict(lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    theta, state = beyond.lion_step(torch.tensor(2.0, dtype=F64), torch.tensor(-3.0, dtype=F64), None, hyper)
    assert float(theta) == pytest.approx(2.0 * (1 - 0.05) + 0.1)
    assert float(state["m"]) == pytest.approx(0.01 * -3.0)
    # m = −0.03; c = 0.9·(−0.03) + 0.1·0.2 = −0.007 < 0 although the gradient is positive.
    theta, state = beyond.lion_step(theta, torch.tensor(0.2, dtype=F64), state, hyper)
    assert float(theta) == pytest.approx(2.0 * 0.95 ** 2 + 0.1 * 0.95 + 0.1)
    assert float(state["m"]) == pytest.approx(0.99 * -0.03 + 0.01 * 0.2)
