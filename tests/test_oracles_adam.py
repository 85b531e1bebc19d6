"""The Adam oracles agree with torch.optim and with the paper, the models of wrong Adams
are the runs those mistakes really produce, and the checks name the mistakes that the
graded submissions (cases_04.py) do not already cover."""

from __future__ import annotations

import math

import pytest
import torch

from autograder import oracles, run_checks
from autograder.checks import _adam
from autograder.feedback import TOLERANCES
from autograder.oracles import adam

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is checked only on a GPU"))]
DTYPES = [torch.float32, torch.float64]
F64 = torch.float64


def torch_adam_history(params, grads, **options):
    """torch.optim.Adam's parameters after each step, fed ``grads[k]`` at step k + 1."""
    params = [p.clone().requires_grad_() for p in params]
    optimizer = torch.optim.Adam(params, **options)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history, optimizer


def random_run(seed, dtype=F64, device="cpu", steps=25, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [oracles.random_shape(gen) for _ in range(3)]
    params = [torch.randn(s, generator=gen, dtype=F64).to(device, dtype) for s in shapes]
    grads = [[(scale * torch.randn(s, generator=gen, dtype=F64)).to(device, dtype) for s in shapes]
             for _ in range(steps)]
    return params, grads


# Algorithm 1 and the paper's "efficient" ordering.

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_algorithm1_is_torch_adam(seed, dtype, device):
    params, grads = random_run(seed, dtype, device)
    expected, optimizer = torch_adam_history(params, grads, lr=0.05, betas=(0.8, 0.99), eps=1e-3)
    history = adam.algorithm1(params, grads, lr=0.05, beta1=0.8, beta2=0.99, eps=1e-3)
    assert oracles.first_divergence([h[0] for h in history], expected, dtype) is None
    final_m, final_v = history[-1][1], history[-1][2]
    for p, m, v in zip(optimizer.param_groups[0]["params"], final_m, final_v):
        state = optimizer.state[p]
        torch.testing.assert_close(m, state["exp_avg"].to("cpu", F64), **_tolerance(dtype))
        torch.testing.assert_close(v, state["exp_avg_sq"].to("cpu", F64), **_tolerance(dtype))


def _tolerance(dtype):
    tol = TOLERANCES[dtype]
    return dict(rtol=tol["rtol"], atol=tol["atol"])


def test_the_first_step_moves_each_coordinate_by_about_lr():
    """m̂₁ = g and v̂₁ = g², so the first step is η·g/(|g| + ε): the bias corrections exact."""
    params, grads = random_run(0, steps=1)
    (theta, _, _), = adam.algorithm1(params, grads, lr=0.01)
    for before, after, g in zip(params, theta, grads[0]):
        torch.testing.assert_close(before - after, 0.01 * g / (g.abs() + 1e-8))


def test_efficient_form_is_algorithm1_with_a_larger_epsilon():
    params, grads = random_run(1, steps=12, scale=1e-7)
    efficient = adam.algorithm1(params, grads, lr=0.01, step=adam.efficient_step)
    theta, m, v = [p.to(F64) for p in params], [0 * p.to(F64) for p in params], [0 * p.to(F64) for p in params]
    for t, step_grads in enumerate(grads, start=1):
        eps_t = 1e-8 / math.sqrt(1 - 0.999 ** t)
        for i, g in enumerate(step_grads):
            theta[i], m[i], v[i] = adam.algorithm1_step(theta[i], g, m[i], v[i], t, lr=0.01,
                                                        beta1=0.9, beta2=0.999, eps=eps_t)
        for a, b in zip(efficient[t - 1][0], theta):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_efficient_form_agrees_only_where_epsilon_is_negligible():
    params, grads = random_run(2, steps=10)
    textbook = adam.algorithm1(params, grads, lr=0.01, eps=0.0)
    efficient = adam.algorithm1(params, grads, lr=0.01, eps=0.0, step=adam.efficient_step)
    assert oracles.first_divergence([h[0] for h in efficient], [h[0] for h in textbook], F64) is None
    params, grads = random_run(2, steps=10, scale=1e-7)
    textbook = adam.algorithm1(params, grads, lr=0.01)
    efficient = adam.algorithm1(params, grads, lr=0.01, step=adam.efficient_step)
    # With gradients near ε the two forms part at the first step, far beyond float32's tolerance.
    assert oracles.first_divergence([h[0] for h in efficient], [h[0] for h in textbook], torch.float32) == 0


# torch.optim.Adam and AdamW through the scripted runs.

GROUP_OPTIONS = [
    None,
    [dict(amsgrad=True, betas=(0.7, 0.97), eps=1e-3), dict(weight_decay=0.3, maximize=True)],
    [dict(amsgrad=True, weight_decay=0.1, maximize=True), dict(eps=0.05)],
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
def test_adam_equation_is_torch_through_the_scripted_run(seed, dtype, device, decoupled):
    schedule = oracles.make_schedule(seed, dtype, device, steps=20)
    reference = torch.optim.AdamW if decoupled else torch.optim.Adam
    options = GROUP_OPTIONS[seed]
    expected = oracles.replay(lambda groups: reference(groups, lr=1e-3), schedule, group_options=options)
    equation = adam.adam_equation(schedule, options, decoupled=decoupled)
    assert oracles.first_divergence(equation, expected, dtype) is None


def test_amsgrad_keeps_the_maximum_of_the_uncorrected_second_moment():
    """torch/optim/adam.py: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), then it is
    divided by 1 − β₂ᵗ; taking the maximum of v̂ instead is a different optimizer."""
    schedule = oracles.make_schedule(4, F64, "cpu", steps=20)
    options = [dict(amsgrad=True), dict(amsgrad=True)]
    expected = oracles.replay(lambda g: torch.optim.Adam(g, lr=1e-3), schedule, group_options=options)
    assert oracles.first_divergence(adam.adam_equation(schedule, options), expected, F64) is None
    over_v_hat = list(_adam.mistaken_run(schedule, options, amsgrad="v_hat"))
    assert oracles.first_divergence(over_v_hat, expected, F64) is not None


def test_state_dict_round_trip_of_torch_adam_is_seamless():
    schedule = oracles.make_schedule(5, F64, "cpu")
    options = [dict(amsgrad=True), {}]
    straight = oracles.replay(lambda g: torch.optim.Adam(g, lr=1e-3), schedule, group_options=options)
    reloaded = oracles.replay(lambda g: torch.optim.Adam(g, lr=1e-3), schedule, group_options=options,
                              reload_at=10)
    assert oracles.first_divergence(reloaded, straight, F64) is None
    assert oracles.first_divergence(adam.adam_equation(schedule, options), straight, F64) is None


# The cosine schedule and the scalar loop.

@pytest.mark.parametrize("num_steps", [1, 7, 100])
def test_cosine_decay_is_lambdalr_with_the_half_cosine(num_steps):
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / num_steps)))
    for t in range(num_steps):
        assert adam.cosine_decay(0.01, t, num_steps) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-15)
        optimizer.step()
        scheduler.step()
    assert adam.cosine_decay(0.01, 0, num_steps) == 0.01
    assert adam.cosine_decay(0.01, num_steps - 1, num_steps) > 0.0 or num_steps == 1
    assert adam.cosine_decay(0.01, num_steps, num_steps) == pytest.approx(0.0, abs=1e-18)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_scalar_loop_is_torch_adam_with_lambdalr(seed, scale):
    problem = _adam.Quadratic(seed, scale=scale)
    hyper = dict(lr=0.02, beta1=0.85, beta2=0.97, eps=1e-8)
    history = adam.scalar_adam(problem, problem.start, problem.steps, **hyper)
    assert all(type(x) is float for row in history for x in row)
    expected = adam.torch_scalar_adam(problem, problem.start, problem.steps, **hyper)
    torch.testing.assert_close(torch.tensor(history, dtype=F64), expected, rtol=1e-12, atol=1e-14)


# The models of wrong Adams are the runs those mistakes produce.

class WrongAdam(torch.optim.Optimizer):
    """A plain implementation of Adam with one mistake switched on, written independently of
    the models in autograder/checks/_adam.py."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, mistake=""):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))
        self.mistake = mistake
        self.calls = 0

    @torch.no_grad()
    def step(self):
        self.calls += 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd and self.mistake == "decoupled":
                    p.mul_(1 - lr * wd)
                elif wd:
                    g = g + wd * p
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p),
                                 vmax=torch.zeros_like(p))
                state["step"] += 1
                t = self.calls if self.mistake == "global" else state["step"]
                t = t - 1 if self.mistake == "t-1" else t
                state["m"].mul_(beta1).add_(g, alpha=1 - beta1)
                square = g if self.mistake == "v-of-g" else g * g
                state["v"].mul_(beta2).add_(square, alpha=1 - beta2)
                v = state["v"]
                m_hat = state["m"] / (1 - beta1 ** t)
                v_hat = v / (1 - beta2 ** t)
                if group["amsgrad"] and self.mistake == "amsgrad-v-hat":
                    torch.maximum(state["vmax"], v_hat, out=state["vmax"])
                    v_hat = state["vmax"]
                elif group["amsgrad"]:
                    v = torch.maximum(state["vmax"], v, out=state["vmax"])
                    v_hat = v / (1 - beta2 ** t)
                if self.mistake == "efficient":
                    size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                    p.sub_(size * state["m"] / (v.sqrt() + eps))
                elif self.mistake == "eps-inside":
                    p.sub_(lr * m_hat / (v_hat + eps).sqrt())
                else:
                    p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


MODELS = {
    "efficient": dict(efficient=True),
    "eps-inside": dict(eps_inside=True),
    "global": dict(counter="global"),
    "t-1": dict(t_shift=-1),
    "v-of-g": dict(v_of_g=True),
    "amsgrad-v-hat": dict(amsgrad="v_hat"),
    "decoupled": dict(decay="decoupled"),
}


@pytest.mark.parametrize("mistake", MODELS)
def test_each_mistake_model_reproduces_a_wrong_optimizer(mistake):
    schedule = oracles.make_schedule(6, F64, "cpu", steps=15)
    options = [dict(amsgrad=True, eps=1e-3, weight_decay=0.2), dict(betas=(0.8, 0.99), eps=0.01)]
    wrong = oracles.replay(lambda g: WrongAdam(g, mistake=mistake), schedule, group_options=options,
                           reload_at=7)
    model = list(_adam.mistaken_run(schedule, options, reload_at=7, **MODELS[mistake]))
    assert _adam.same_run(wrong, model, F64)
    assert not _adam.same_run(wrong, adam.adam_equation(schedule, options), F64)


def test_no_two_mistakes_give_the_same_run_on_the_checks_schedules():
    """Naming is unambiguous: on the optimizer checks' per-group schedule every known mistake
    leaves the correct run, and no two mistakes coincide."""
    schedule = oracles.make_schedule(0, F64, "cpu", steps=20)
    options = _adam.group_settings(0)
    options[0].update(weight_decay=0.1, maximize=True)
    options[1].update(weight_decay=0.2)
    mistakes = _adam.adam_mistakes(schedule, options)
    runs = {name: list(compute()) for name, compute in mistakes.items()}
    correct = adam.adam_equation(schedule, options)
    names = list(runs)
    for i, name in enumerate(names):
        assert not _adam.same_run(runs[name], correct, F64), name
        for other in names[i + 1:]:
            assert not _adam.same_run(runs[name], runs[other], F64), (name, other)


# The checks name the mistakes that the graded submissions do not already exercise.

ADAM_STEP = '''
def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for p, g, m, v in zip(params, grads, ms, vs):
            m.mul_(beta1).add_((1 - beta1) * g)
            v.mul_(beta2).add_((1 - beta2) * g * g)
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
'''

SCALAR_LOOP = '''
import math

def adam_scalar_loop(grad_fn, params, num_steps, lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8):
    theta, m, v, history = list(params), [0.0] * len(params), [0.0] * len(params), []
    for step in range(num_steps):
        lr_t = lr * 0.5 * (1 + math.cos(math.pi * step / num_steps))
        for i, g in enumerate(grad_fn(theta)):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat = m[i] / (1 - beta1 ** (step + 1))
            v_hat = v[i] / (1 - beta2 ** (step + 1))
            theta[i] -= lr_t * m_hat / (math.sqrt(v_hat) + eps)
        history.append(list(theta))
    return history
'''


def _adam_class(mistake):
    return type("Adam", (WrongAdam,), {"__init__": lambda self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                       weight_decay=0.0, amsgrad=False, maximize=False:
                                       WrongAdam.__init__(self, params, lr, betas, eps, weight_decay,
                                                          amsgrad, mistake=mistake)})


@pytest.mark.parametrize("part, source, old, new, fragment", [
    ("adam-step", ADAM_STEP, "add_((1 - beta2) * g * g)", "add_((1 - beta2) * g)",
     "v averages the gradient g instead of its square g²"),
    ("adam-step", ADAM_STEP, "(1 - beta1 ** t)\n            v_hat = v / (1 - beta2 ** t)",
     "(1 - beta1 ** (t + 1))\n            v_hat = v / (1 - beta2 ** (t + 1))", "the step count is one ahead"),
    ("adam-step", ADAM_STEP, "m_hat = m / (1 - beta1 ** t)", "m_hat = m",
     "only the second moment is bias-corrected"),
    ("adam-scalar-loop", SCALAR_LOOP, "step / num_steps", "step / (num_steps - 1)",
     "the cosine runs over T − 1"),
    ("adam-scalar-loop", SCALAR_LOOP, "(step + 1)", "step", "with step = 0 on the first step"),
    ("adam-scalar-loop", SCALAR_LOOP, "beta1=0.9, beta2=0.95", "beta1=0.9, beta2=0.999",
     "the default beta2 is 0.999"),
])
def test_checks_name_the_mistake_in_a_function(part, source, old, new, fragment):
    assert old in source
    scope = {"torch": torch}
    exec(source.replace(old, new), scope)
    report = run_checks(part, scope[part.replace("-", "_")], points=1)
    assert report.earned < 1
    assert fragment in " ".join(report.as_text().split()), report.as_text()


@pytest.mark.parametrize("mistake, fragment", [
    ("global", "one step count for the whole optimizer"),
    ("v-of-g", "v averages the gradient g instead of its square"),
    ("decoupled", "the weight decay is decoupled"),
])
def test_checks_name_the_mistake_in_an_optimizer(mistake, fragment):
    report = run_checks("adam-optimizer", _adam_class(mistake), points=1)
    assert report.earned < 1
    assert fragment in " ".join(report.as_text().split()), report.as_text()
