"""Part ``loss-scaler``: ``LossScaler(init_scale=2.0**16, growth_factor=2.0,
backoff_factor=0.5, growth_interval=2000)``, a dynamic loss scale with
``torch.amp.GradScaler``'s methods ``scale``, ``unscale_``, ``step``, ``update`` and
``get_scale``.

Rule (GradScaler's): the loss is multiplied by the scale; ``unscale_`` divides the
gradients by it and notes whether any is inf or nan; ``step`` unscales (once per
iteration) and skips ``optimizer.step()`` when one was; ``update`` multiplies the scale by
``backoff_factor`` after a skipped step, and by ``growth_factor`` after ``growth_interval``
good steps in a row. The oracles are ``torch.amp.GradScaler`` itself, driven through the
same run; the known wrong variants of ``update`` are transcribed here.
"""

import math

import pytest
import torch

from autograder.checks._refuse import refusing
from autograder.feedback import Mismatch, call_submission, close, describe
from autograder.probe import probe

NAME = "LossScaler"
SIGNATURE = ("Call signature: LossScaler(init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, "
             "growth_interval=2000).")
HINTS = {"unexpected keyword": SIGNATURE, "positional argument": SIGNATURE}
#: PyTorch's GradScaler, which this part asks the learner to write: refused while the learner's scaler runs.
TORCH_SCALER = [(torch.amp.GradScaler, "__init__")]


def gradients(seed, steps, overflows, device):
    """Each step's gradient of the loss w·g: three entries, with an inf or a nan on the
    steps in ``overflows``."""
    gen = torch.Generator().manual_seed(9300 + seed)
    rows = []
    for t in range(steps):
        g = torch.randn(3, generator=gen)
        if t in overflows:
            g[t % 3] = math.inf if (t + seed) % 2 else math.nan
        rows.append(g.to(device))
    return rows


@probe
def training_run(scaler_class, options, grads, optimizer, *, unscale_first=False, lr=0.1):
    """One step per gradient of ``grads`` with the learner's scaler (or, for
    ``scaler_class=None``, ``torch.amp.GradScaler``): each step's loss is w·g, scaled and
    backpropagated, unscaled first if asked, then ``step`` and ``update``. Returns after
    each step the scale, w, the gradient the optimizer saw, and Adam's step count."""
    device = grads[0].device
    w = torch.linspace(-1.0, 1.0, 3, device=device).requires_grad_()
    opt = torch.optim.Adam([w], lr=lr) if optimizer == "adam" else torch.optim.SGD([w], lr=lr)
    if scaler_class is None:
        return run_with(torch.amp.GradScaler(device.type, **options), w, opt, grads, unscale_first)
    shown = ", ".join(f"{k}={v:g}" for k, v in options.items())
    with refusing("the loss scaling", TORCH_SCALER):
        scaler = call_submission(f"{NAME}({shown})", scaler_class, **options, hints=HINTS)
        return run_with(scaler, w, opt, grads, unscale_first)


def run_with(scaler, w, opt, grads, unscale_first):
    """Drive ``scaler`` through the steps of :func:`training_run`."""
    rows = []
    for g in grads:
        opt.zero_grad()
        loss = (w * g).sum()
        scaled = call_submission(f"{NAME}.scale(loss)", scaler.scale, loss)
        if not isinstance(scaled, torch.Tensor) or not scaled.requires_grad:
            raise Mismatch(f"{NAME}.scale(loss) must return the scaled loss, a tensor to call .backward() on; "
                           f"it returned {describe(scaled)}.")
        scaled.backward()
        if unscale_first:
            call_submission(f"{NAME}.unscale_(optimizer)", scaler.unscale_, opt)
        call_submission(f"{NAME}.step(optimizer)", scaler.step, opt)
        seen = w.grad.detach().clone()
        call_submission(f"{NAME}.update()", scaler.update)
        scale = call_submission(f"{NAME}.get_scale()", scaler.get_scale)
        state = opt.state.get(w, {})
        rows.append({"scale": float(scale), "w": w.detach().clone(), "grad": seen,
                     "steps": int(state["step"]) if "step" in state else 0})
    return rows


def runs(submission, seed, device, overflows, steps, optimizer="adam", unscale_first=False, **options):
    grads = gradients(seed, steps, overflows, device)
    seen = training_run(submission, options, grads, optimizer, unscale_first=unscale_first)
    expected = training_run(None, options, grads, optimizer, unscale_first=unscale_first)
    return seen, expected


def scale_variants(overflows, steps, init_scale, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
    """Scale histories of known wrong updates of the scale."""
    flags = [t in overflows for t in range(steps)]

    def run(*, back_off=True, reset_on_overflow=True, count_skipped=False, reset_on_growth=True, interval=None):
        interval = growth_interval if interval is None else interval
        scale, good, history = init_scale, 0, []
        for found in flags:
            if found and back_off:
                scale *= backoff_factor
            if found and reset_on_overflow:
                good = 0
            if not found or count_skipped:
                good += 1
                if good >= interval and (good == interval or not reset_on_growth):
                    scale *= growth_factor
                    if reset_on_growth:
                        good = 0
            history.append(scale)
        return history

    return {
        "a skipped step is counted as a good one, so after an overflow the scale grows one step early: a "
        "step with an inf or a nan must reset the count of good steps to 0 and only back off":
            lambda: run(count_skipped=True),
        "the count of good steps is not reset after a skipped step, so the scale grows too early":
            lambda: run(reset_on_overflow=False),
        "the scale never backs off: after a step with an inf or a nan, multiply it by backoff_factor":
            lambda: run(back_off=False),
        "the scale grows one step late: it grows on the growth_interval-th good step in a row":
            lambda: run(interval=growth_interval + 1),
        "the count of good steps is not reset when the scale grows, so it grows on every step after "
        "growth_interval": lambda: run(reset_on_growth=False),
    }


def check_scales_the_loss(submission, seed, device):
    """scale(loss) is the loss times init_scale, and get_scale() returns init_scale"""
    init = 2.0 ** (8 + seed % 8)
    seen, expected = runs(submission, seed, device, (), 1, optimizer="sgd", init_scale=init, growth_interval=100)
    if seen[0]["scale"] != init:
        raise Mismatch(f"{NAME}(init_scale={init:g}).get_scale() after one good step is {seen[0]['scale']:g}; "
                       f"GradScaler's scale is still {init:g}.")
    probe_loss = scaled_loss(submission, init, device)
    if not close(probe_loss, torch.tensor(3.0 * init, dtype=torch.float64), torch.float32):
        raise Mismatch(f"{NAME}(init_scale={init:g}).scale(loss) with a loss of 3 returned {describe(probe_loss)}; "
                       f"expected {3.0 * init:g}.")


@probe
def scaled_loss(scaler_class, init, device):
    """What the learner's scaler makes of a loss of 3."""
    with refusing("the loss scaling", TORCH_SCALER):
        scaler = call_submission(f"{NAME}(init_scale={init:g})", scaler_class, init_scale=init, hints=HINTS)
        loss = torch.tensor(3.0, device=device, requires_grad=True) * 1.0
        return call_submission(f"{NAME}.scale(loss)", scaler.scale, loss).detach()


def compare_weights(seen, expected, context, variants=()):
    for t, (a, b) in enumerate(zip(seen, expected)):
        if not close(a["w"], b["w"], torch.float32):
            message = (f"{context}: after step {t + 1} the weights are {describe(a['w'])}; with "
                       f"torch.amp.GradScaler they are {describe(b['w'])}.")
            for mistake, applies in dict(variants).items():
                if applies(a, b):
                    message += f" Likely mistake: {mistake}."
                    break
            raise Mismatch(message)


@pytest.mark.weight(2)
def check_steps_with_the_unscaled_gradients(submission, seed, device):
    """With SGD and no overflow, the step uses the gradients divided by the scale, as GradScaler's"""
    seen, expected = runs(submission, seed, device, (), 4, optimizer="sgd", init_scale=1024.0, growth_interval=1000)
    for t, (a, b) in enumerate(zip(seen, expected)):
        if not close(a["grad"], b["grad"], torch.float32):
            ratio = float((a["grad"] / b["grad"]).mean())
            hint = ""
            if math.isclose(ratio, 1024.0, rel_tol=1e-3):
                hint = " Likely mistake: the gradients are not unscaled (divide them by the scale before the step)."
            elif math.isclose(ratio, 1 / 1024.0, rel_tol=1e-3):
                hint = " Likely mistake: the gradients are divided by the scale twice."
            raise Mismatch(f"with init_scale=1024, at step {t + 1} the optimizer saw the gradient "
                           f"{describe(a['grad'])}; with GradScaler it sees {describe(b['grad'])}.{hint}")
    compare_weights(seen, expected, "SGD with init_scale=1024")


@pytest.mark.weight(2)
def check_skips_steps_with_inf_or_nan(submission, seed, device):
    """A step whose gradients hold an inf or a nan is skipped: the weights and Adam's step count stay"""
    overflows = (1, 2, 4)
    seen, expected = runs(submission, seed, device, overflows, 6, init_scale=256.0, growth_interval=1000)
    for t, (a, b) in enumerate(zip(seen, expected)):
        if a["steps"] != b["steps"]:
            raise Mismatch(
                f"after step {t + 1} (steps {', '.join(str(o + 1) for o in overflows)} have an inf or a nan), "
                f"Adam has counted {a['steps']} steps; with GradScaler it has taken {b['steps']}. "
                + ("Likely mistake: optimizer.step() runs on a skipped step too, which advances Adam's step "
                   "counter and its moments (and writes the nan into the weights)."
                   if a["steps"] > b["steps"] else "Likely mistake: a good step was skipped."))
    compare_weights(seen, expected, f"Adam, with an inf or a nan in steps {', '.join(str(o + 1) for o in overflows)}",
                    {"the weights hold a nan: a step with a nan or an inf in its gradients was taken":
                     lambda a, b: bool(a["w"].isnan().any())})


@pytest.mark.weight(3)
def check_backs_off_and_grows_like_grad_scaler(submission, seed, device):
    """The scale backs off after each skipped step and grows after growth_interval good ones, as GradScaler's"""
    steps = 16
    overflows = (3, 9, 10) if seed % 2 == 0 else (0, 6, 7, 12)
    options = dict(init_scale=2.0 ** (10 + seed % 4), growth_interval=3, growth_factor=[2.0, 4.0][seed % 2],
                   backoff_factor=[0.5, 0.25][seed % 2])
    seen, expected = runs(submission, seed, device, overflows, steps, **options)
    got = [row["scale"] for row in seen]
    want = [row["scale"] for row in expected]
    if got != want:
        t = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        shown = ", ".join(f"{k}={v:g}" for k, v in options.items())
        message = (f"{NAME}({shown}), with an inf or a nan in steps {', '.join(str(o + 1) for o in overflows)}: "
                   f"after step {t + 1} the scale is {got[t]:g}; GradScaler's is {want[t]:g}.")
        for mistake, compute in scale_variants(overflows, steps, **options).items():
            if compute() == got:
                message += f" Likely mistake: {mistake}."
                break
        raise Mismatch(message)


def check_unscales_once_when_unscale_is_called_first(submission, seed, device):
    """After unscale_ (to clip in between), step does not divide the gradients again"""
    seen, expected = runs(submission, seed, device, (), 3, optimizer="sgd", unscale_first=True, init_scale=512.0,
                          growth_interval=1000)
    for t, (a, b) in enumerate(zip(seen, expected)):
        if not close(a["grad"], b["grad"], torch.float32):
            hint = ""
            if close(a["grad"] * 512.0, b["grad"], torch.float32):
                hint = (" Likely mistake: step() unscales again after unscale_(); unscale once per iteration "
                        "(update() starts the next one).")
            elif close(a["grad"] / 512.0, b["grad"], torch.float32):
                hint = " Likely mistake: the gradients are not unscaled (divide them by the scale)."
            raise Mismatch(
                f"unscale_(optimizer) then step(optimizer), init_scale=512: at step {t + 1} the optimizer saw "
                f"{describe(a['grad'])}; with GradScaler it sees {describe(b['grad'])}.{hint}")
