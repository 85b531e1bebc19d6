"""Shared by the Adam checks: what the known mistakes compute, and how to name them.

The correct runs come from :mod:`autograder.oracles.adam` and ``torch.optim``. This
module only models *wrong* versions of Adam, so that a check can say which mistake
reproduces a learner's run: a :class:`Mistake` lists the changes, :func:`mistaken_run`
plays a scripted run with them (tensors, float64), :func:`mistaken_scalar_loop` the
plain-Python loop. Some mistakes make the run infinite or NaN (a bias correction
1 − β⁰ = 0); :func:`same_run` lets NaN match NaN so that they can still be named.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import torch

from autograder import oracles
from autograder.checks import _optimizer
from autograder.feedback import TOLERANCES, Mismatch, call_submission, close, describe
from autograder.oracles import adam
from autograder.probe import probe

F64 = torch.float64


@dataclasses.dataclass(frozen=True)
class Mistake:
    """Changes to Adam, each a known wrong variant; the defaults change nothing.

    ``correct``: which moments get their bias correction ("both", "m", "v", "none");
    ``t_shift``: the step count off by this much; ``eps_inside``: √(v̂ + ε);
    ``efficient``: the paper's η_t = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) with ε added to the
    uncorrected √v; ``swap_betas``; ``write_back``: which corrected moments are stored
    back ("m", "v", "mv"); ``v_of_g``: v averages g, not g²; ``no_lerp``: the moments add
    g (or g²) without the factor 1 − β; ``no_eps``: ε left out;
    ``decay``: weight decay "coupled", "decoupled", "unscaled" (θ(1 − λ)), "after"
    (decoupled, after the Adam step) or "none", default as asked;
    ``amsgrad``: the maximum over "v" (right), "v_hat", or "v" left "uncorrected", or
    "ignored"; ``maximize``: "grad" (right), "ignored", "all" (g + λθ negated);
    ``counter``: "param" (right) or "global" (one count of step() calls, lost at a reload);
    ``step_tensor``: the count kept as a float32 tensor, so 1 − βᵗ is rounded to float32;
    ``ignore_group``: the group keys (betas, eps) read from the constructor instead.
    """

    correct: str = "both"
    t_shift: int = 0
    eps_inside: bool = False
    efficient: bool = False
    swap_betas: bool = False
    write_back: str = ""
    v_of_g: bool = False
    no_lerp: bool = False
    no_eps: bool = False
    decay: str | None = None
    amsgrad: str = "v"
    maximize: str = "grad"
    counter: str = "param"
    step_tensor: bool = False
    ignore_group: tuple[str, ...] = ()


def _step(theta, g, st, hyper, t, mistake: Mistake, decoupled: bool):
    lr, (beta1, beta2), eps, wd = hyper["lr"], hyper["betas"], hyper["eps"], hyper["weight_decay"]
    if mistake.swap_betas:
        beta1, beta2 = beta2, beta1
    if mistake.no_eps:
        eps = 0.0
    if hyper["maximize"] and mistake.maximize == "grad":
        g = -g
    decay = mistake.decay or ("decoupled" if decoupled else "coupled")
    if wd != 0:
        if decay == "coupled":
            g = g + wd * theta
        elif decay == "decoupled":
            theta = theta * (1 - lr * wd)
        elif decay == "unscaled":
            theta = theta * (1 - wd)
    if hyper["maximize"] and mistake.maximize == "all":
        g = -g
    t = t + mistake.t_shift
    second = g if mistake.v_of_g else g * g
    if mistake.no_lerp:
        m, v = beta1 * st["m"] + g, beta2 * st["v"] + second
    else:
        m, v = adam.ema(st["m"], g, beta1), adam.ema(st["v"], second, beta2)
    if mistake.step_tensor:
        t = torch.tensor(float(t))  # float32, as torch.optim.Adam stores it
    bc1 = (1 - beta1 ** t) if mistake.correct in ("both", "m") else 1.0
    bc2 = (1 - beta2 ** t) if mistake.correct in ("both", "v") else 1.0
    m_hat, v_used, v_max = m / bc1, v, st["v_max"]
    if hyper["amsgrad"] and mistake.amsgrad != "ignored":
        if mistake.amsgrad == "v_hat":
            v_max = torch.maximum(v_max, v / bc2)
            v_hat = v_max
        else:
            v_max = torch.maximum(v_max, v)
            v_used = v_max
            v_hat = v_max if mistake.amsgrad == "uncorrected" else v_max / bc2
    else:
        v_hat = v / bc2
    if mistake.efficient:
        update = lr * math.sqrt(bc2) / bc1 * m / (v_used.sqrt() + eps)
    elif mistake.eps_inside:
        update = lr * m_hat / (v_hat + eps).sqrt()
    else:
        update = lr * m_hat / (v_hat.sqrt() + eps)
    theta = theta - update
    if wd != 0 and decay == "after":
        theta = theta * (1 - lr * wd)
    if "m" in mistake.write_back:
        m = m_hat
    if "v" in mistake.write_back:
        v = v / bc2
    return theta, dict(m=m, v=v, v_max=v_max, t=st["t"])


def mistaken_run(
    schedule: oracles.Schedule,
    group_options=None,
    *,
    decoupled: bool = False,
    defaults: Mapping | None = None,
    reload_at: int | None = None,
    moments: bool = False,
    **changes,
):
    """The scripted run of Adam (AdamW when ``decoupled``) with the :class:`Mistake`
    ``changes``, in float64, step by step: yields the parameters after each step, or with
    ``moments=True`` the triple (params, ms, vs). A generator, so that comparing it with a
    learner's run stops computing at the first step that differs."""
    mistake = Mistake(**changes)
    base = dict(adam.ADAM_DEFAULTS, weight_decay=1e-2 if decoupled else 0.0)
    base.update(defaults or {})
    options = list(group_options) if group_options else [{} for _ in schedule.initial]
    groups = [dict(base, lr=lr, **extra) for lr, extra in zip(schedule.lrs, options)]
    for key in mistake.ignore_group:
        for group in groups:
            group[key] = base[key]
    params = [[p.detach().to("cpu", F64) for p in group] for group in schedule.initial]
    state = [[None for _ in group] for group in params]
    calls = 0
    for step in range(schedule.steps):
        for g, lr in schedule.lr_changes.get(step, {}).items():
            groups[g]["lr"] = lr
        calls += 1
        for group, hyper, grads, states in zip(params, groups, schedule.grads[step], state):
            for i, grad in enumerate(grads):
                if grad is None:
                    continue
                if states[i] is None:
                    zeros = torch.zeros_like(group[i])
                    states[i] = dict(m=zeros, v=zeros, v_max=zeros, t=0)
                states[i]["t"] += 1
                t = calls if mistake.counter == "global" else states[i]["t"]
                group[i], states[i] = _step(group[i], grad.detach().to("cpu", F64), states[i],
                                            hyper, t, mistake, decoupled)
        # _step builds new tensors and never changes one in place: no copies needed.
        flat = [p for group in params for p in group]
        if moments:
            pairs = [(s, p) for group, states in zip(params, state) for p, s in zip(group, states)]
            ms = [s["m"] if s else torch.zeros_like(p) for s, p in pairs]
            vs = [s["v"] if s else torch.zeros_like(p) for s, p in pairs]
            yield flat, ms, vs
        else:
            yield flat
        if reload_at is not None and step == reload_at:
            calls = 0


#: Learning-rate schedules a scalar loop may compute by mistake, as functions (lr, t, T).
SCHEDULES = {
    "cosine": adam.cosine_decay,
    "t+1": lambda lr, t, T: adam.cosine_decay(lr, t + 1, T),
    "T-1": lambda lr, t, T: adam.cosine_decay(lr, t, T - 1) if T > 1 else lr,
    "constant": lambda lr, t, T: lr,
    "linear": lambda lr, t, T: lr * (1 - t / T),
    "no-half": lambda lr, t, T: lr * math.cos(math.pi * t / T),
}


def mistaken_scalar_loop(grad_fn, params, num_steps, *, lr, beta1, beta2, eps,
                         schedule: str = "cosine", **changes):
    """The plain-Python loop of :func:`autograder.oracles.adam.scalar_adam` with a
    :class:`Mistake` and a learning-rate schedule from :data:`SCHEDULES`, in float64."""
    mistake = Mistake(**changes)
    hyper = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=0.0, amsgrad=False,
                 maximize=False)
    theta = torch.tensor([float(p) for p in params], dtype=F64)
    zeros = torch.zeros_like(theta)
    st = dict(m=zeros, v=zeros, v_max=zeros, t=0)
    history = []
    for t in range(num_steps):
        g = torch.tensor([float(x) for x in grad_fn(theta.tolist())], dtype=F64)
        hyper["lr"] = SCHEDULES[schedule](lr, t, num_steps)
        theta, st = _step(theta, g, st, hyper, t + 1, mistake, False)
        history.append(theta.tolist())
    return history


def same_run(history, reference, dtype) -> bool:
    """Whether two runs agree at every step, at ``dtype``'s tolerance, with NaN matching
    NaN (a run that a mistake makes NaN is still that mistake's run). ``reference`` may
    be a generator; it is consumed only up to the first step that differs."""
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    steps = 0
    for seen, wanted in zip(history, reference):
        steps += 1
        if isinstance(seen, tuple):
            seen, wanted = [x for part in seen for x in part], [x for part in wanted for x in part]
        if len(seen) != len(wanted):
            return False
        for a, e in zip(seen, wanted):
            a = torch.as_tensor(a).detach().to("cpu", F64)
            e = torch.as_tensor(e).detach().to("cpu", F64)
            if a.shape != e.shape or not torch.allclose(a, e, equal_nan=True, **tol):
                return False
    return steps == len(history)


def name_mistake(history, variants: Mapping[str, Callable[[], list]], dtype) -> str:
    """" Likely mistake: …." for the first variant whose run is ``history``, else ""."""
    for mistake, compute in dict(variants).items():
        if same_run(history, compute(), dtype):
            return f" Likely mistake: {mistake}."
    return ""


def not_finite_hint(values, *, scratch: bool = False) -> str:
    """A sentence for values that are not finite (else ""); ``scratch``: the function was
    handed a scratch tensor whose old contents are NaN."""
    flat = [torch.as_tensor(v) for v in values]
    if all(bool(torch.isfinite(v).all()) for v in flat):
        return ""
    return (" Your values are not finite (inf or NaN): something divides by zero, such as a "
            "bias correction 1 − βᵗ computed with t = 0 (the first step is t = 1)"
            + (", or the scratch tensor's old contents were kept: it may hold anything, NaN here, and "
               "NaN·0 is NaN, so `scratch.mul_(0)` does not clear it; overwrite it (`out=scratch`, "
               "`scratch.copy_(...)`)" if scratch else "") + ".")


def finite_departure(seen, wanted, dtype) -> bool:
    """Whether a value of ``seen`` (tensors) that leaves ``wanted`` is finite. Mistakes are
    named only from such values: NaN matches NaN, so a run that is NaN wherever it departs
    would match every mistake that ends in NaN, whatever made it NaN."""
    tol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    for a, e in zip(seen, wanted):
        a = torch.as_tensor(a).detach().to("cpu", F64)
        e = torch.as_tensor(e).detach().to("cpu", F64)
        if a.shape != e.shape:
            return True
        departs = ~torch.isclose(a, e, equal_nan=True, **tol)
        if bool((departs & torch.isfinite(a)).any()):
            return True
    return False


def difference(seen, wanted, dtype) -> str:
    """When two tensors print alike, how far apart they are (else "")."""
    if describe(seen) != describe(wanted):
        return ""
    gap = (torch.as_tensor(seen).detach().to("cpu", F64) - torch.as_tensor(wanted).to("cpu", F64)).abs()
    if not bool(torch.isfinite(gap).all()):
        return ""  # NaN or inf where the shown digits agree: the hint about such values says more
    return f" (they differ by up to {float(gap.max()):.2g}, beyond the tolerance for {str(dtype)[6:]})"


def explain(history, expected, schedule, dtype, variants, *, reference: str, scratch: bool = False) -> None:
    """Raise :class:`Mismatch` at the first step where the parameters of ``history``
    leave ``expected``, naming the mistake in ``variants`` that reproduces the run (NaN
    matching NaN, when a finite value departs too), as
    :func:`autograder.checks._optimizer.explain_divergence` does; ``scratch`` as for
    :func:`not_finite_hint`."""
    __tracebackhide__ = True  # pytest need not print this frame's tensors
    step = oracles.first_divergence(history, expected, dtype)
    if step is None:
        return
    seen, wanted = history[step], expected[step]
    index = next(i for i, (a, b) in enumerate(zip(seen, wanted)) if not close(a, b, dtype))
    message = (
        f"after step {step + 1} of {schedule.steps}, parameter {index} is "
        f"{describe(seen[index])}; {reference} gives {describe(wanted[index])}"
        f"{difference(seen[index], wanted[index], dtype)}."
    )
    named = name_mistake(history, variants, dtype) if finite_departure(seen, wanted, dtype) else ""
    if named:
        message += named
    elif not_finite_hint(seen):
        message += not_finite_hint(seen, scratch=scratch)
    elif schedule.lr_changes and step == min(schedule.lr_changes):
        message += (
            " The runs part ways exactly when a learning rate is changed through "
            "`optimizer.param_groups[i]['lr']`: read each group's lr inside step()."
        )
    raise Mismatch(message)


#: Mistakes any implementation of Adam's update can make: the sentence that names each,
#: and the :class:`Mistake` that reproduces it.
UPDATE_MISTAKES = {
    "no bias correction: m and v are used without dividing by 1 − β₁ᵗ and 1 − β₂ᵗ": dict(correct="none"),
    "only the first moment is bias-corrected; v̂ = v/(1 − β₂ᵗ) is missing": dict(correct="m"),
    "only the second moment is bias-corrected; m̂ = m/(1 − β₁ᵗ) is missing": dict(correct="v"),
    "the step count is one ahead (t + 1 in the bias corrections, as in a loop whose step "
    "starts at 0); here t is already 1 on the first step": dict(t_shift=1),
    "the step count is 0 on the first step, so 1 − β⁰ = 0 divides by zero: the first step "
    "is t = 1 (increment the count before computing the corrections)": dict(t_shift=-1),
    "ε is inside the square root, √(v̂ + ε); Adam adds it after the root: √v̂ + ε": dict(eps_inside=True),
    "this is the paper's \"efficient\" form, η·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m/(√v + ε), which adds ε "
    "to the uncorrected √v; torch.optim.Adam (and this exercise) adds ε to the corrected √v̂": dict(
        efficient=True),
    "β₁ and β₂ are swapped: betas = (β₁, β₂), and β₁ belongs to the first moment m": dict(swap_betas=True),
    "the bias-corrected m̂ is written back into the stored first moment (as `m.div_(1 - beta1 ** t)` "
    "does); keep m uncorrected and compute m̂ as a new tensor": dict(write_back="m"),
    "the bias-corrected v̂ is written back into the stored second moment; keep v uncorrected "
    "and compute v̂ as a new tensor": dict(write_back="v"),
    "both bias-corrected moments are written back into the stored m and v; keep them "
    "uncorrected and compute m̂ and v̂ as new tensors": dict(write_back="mv"),
    "v averages the gradient g instead of its square g²": dict(v_of_g=True),
    "the moments add g (and g²) without the factor 1 − β (PyTorch's momentum convention); "
    "Adam's moments are averages β·m + (1 − β)·g": dict(no_lerp=True),
    "ε is left out of the denominator": dict(no_eps=True),
}

#: Mistakes of an optimizer class beyond the update itself.
OPTIMIZER_MISTAKES = {
    "one step count for the whole optimizer instead of one per parameter in self.state[p]: a "
    "parameter that missed steps is corrected as if it had not, and the count is lost when "
    "the optimizer is reloaded from its state_dict": dict(counter="global"),
    "state['step'] is a float32 tensor (as torch.optim.Adam keeps it), so 1 − βᵗ is computed in "
    "float32, too coarse for float64 parameters; keep the count a Python int (torch calls "
    ".item() on it before use)": dict(step_tensor=True),
    "each group's betas are ignored: read them from the group being updated, group['betas'], "
    "not from the constructor's arguments": dict(ignore_group=("betas",)),
    "each group's eps is ignored: read it from the group being updated, group['eps'], not from "
    "the constructor's arguments": dict(ignore_group=("eps",)),
    "each group's betas and eps are ignored: read them from the group being updated, not from "
    "the constructor's arguments": dict(ignore_group=("betas", "eps")),
    "AMSGrad takes the maximum of the bias-corrected v̂; torch.optim.Adam keeps the maximum of "
    "the uncorrected v and divides that by 1 − β₂ᵗ": dict(amsgrad="v_hat"),
    "AMSGrad's maximum of v is used without its bias correction 1 − β₂ᵗ": dict(amsgrad="uncorrected"),
    "amsgrad=True is ignored": dict(amsgrad="ignored"),
    "maximize=True is ignored": dict(maximize="ignored"),
    "with maximize=True the weight-decay term is negated along with the gradient; negate only "
    "the gradient, then apply the decay": dict(maximize="all"),
    "weight_decay is ignored": dict(decay="none"),
}

COUPLED_MISTAKES = {
    "the weight decay is decoupled (θ ← θ(1 − ηλ), AdamW's rule); Adam's weight_decay is L2, "
    "added to the gradient: g ← g + λθ": dict(decay="decoupled"),
    "the weight decay shrinks θ by 1 − λ; Adam's weight_decay is L2, added to the gradient: "
    "g ← g + λθ": dict(decay="unscaled"),
}

DECOUPLED_MISTAKES = {
    "the weight decay is coupled (L2: λθ added to the gradient, as Adam's weight_decay does); "
    "AdamW decouples it: θ ← θ(1 − ηλ) before the Adam step": dict(decay="coupled"),
    "the decay is not scaled by the learning rate: torch.optim.AdamW shrinks θ by 1 − ηλ, "
    "not 1 − λ": dict(decay="unscaled"),
    "the decay is applied after the Adam step; torch.optim.AdamW shrinks θ before it": dict(
        decay="after"),
}


def runs(schedule, group_options=None, mistakes: Mapping[str, dict] = UPDATE_MISTAKES, **options):
    """``mistakes`` as functions computing their runs of ``schedule`` (see
    :func:`mistaken_run` for ``options``)."""
    return {
        sentence: (lambda c=changes: mistaken_run(schedule, group_options, **options, **c))
        for sentence, changes in mistakes.items()
    }


def adam_mistakes(schedule, group_options=None, *, decoupled=False, reload_at=None):
    """The known wrong variants of an Adam (or AdamW) optimizer class on ``schedule``."""
    options = dict(decoupled=decoupled, reload_at=reload_at)
    found = runs(schedule, group_options, DECOUPLED_MISTAKES if decoupled else COUPLED_MISTAKES, **options)
    found.update(runs(schedule, group_options, UPDATE_MISTAKES, **options))
    found.update(runs(schedule, group_options, OPTIMIZER_MISTAKES, **options))

    def equation(s):
        return mistaken_run(s, group_options, **options)

    found.update(_optimizer.learning_rate_mistakes(equation, schedule))
    return found


def uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))


def group_settings(seed: int, **fixed) -> list[dict]:
    """Two groups' own betas, eps and amsgrad, drawn so that every mistake shows:
    β₁ ∈ [0.6, 0.9], β₂ ∈ [0.95, 0.999], ε ∈ [1e-4, 1e-1]; one group has AMSGrad."""
    gen = torch.Generator().manual_seed(5000 + seed)
    return [
        dict(betas=(uniform(gen, 0.6, 0.9), uniform(gen, 0.95, 0.999)), eps=10 ** uniform(gen, -4, -1),
             amsgrad=g == seed % 2, **fixed)
        for g in range(2)
    ]


def compare_with_torch(submission, schedule, dtype, group_options=None, *, name, reference,
                       hints, reload_at=None) -> None:
    """Drive the learner's optimizer class and ``reference`` (``torch.optim.Adam`` or
    ``AdamW``) through ``schedule`` and explain the first difference, naming the mistake;
    then hold the learner's run to the float64 equations as well."""
    __tracebackhide__ = True  # pytest need not print this frame's tensors
    decoupled = reference is torch.optim.AdamW
    history = _optimizer.drive(submission, schedule, name=name, hints=hints,
                               group_options=group_options, reload_at=reload_at)
    expected = oracles.replay(lambda groups: reference(groups, lr=1e-3), schedule,
                              group_options=group_options)
    mistakes = adam_mistakes(schedule, group_options, decoupled=decoupled, reload_at=reload_at)
    explain(history, expected, schedule, dtype, mistakes, reference=f"torch.optim.{reference.__name__}")
    equation = adam.adam_equation(schedule, group_options, decoupled=decoupled)
    step = oracles.first_divergence(history, equation, dtype)
    if step is not None:
        raise Mismatch(f"after step {step + 1} the parameters leave the equations of {name}.")


class Quadratic:
    """f(x) = Σ aᵢ(xᵢ − cᵢ)² + b(Σ xᵢ)², times ``scale``: its gradient, in plain Python."""

    def __init__(self, seed, *, scale=1.0):
        self.seed, self.options = seed, {"scale": scale}
        gen = torch.Generator().manual_seed(9000 + seed)
        n = int(torch.randint(1, 6, (1,), generator=gen))
        self.a = (0.5 + 2.5 * torch.rand(n, generator=gen, dtype=torch.float64)).tolist()
        self.c = torch.randn(n, generator=gen, dtype=torch.float64).tolist()
        self.b = 0.4 * float(torch.rand((), generator=gen, dtype=torch.float64)) - 0.2
        self.start = torch.randn(n, generator=gen, dtype=torch.float64).tolist()
        self.steps = int(torch.randint(20, 60, (1,), generator=gen))
        self.scale = scale
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        total = sum(float(v) for v in x)
        return [self.scale * (2 * a * (float(v) - c) + 2 * self.b * total)
                for a, c, v in zip(self.a, self.c, x)]


class Constant:
    """A gradient that never changes: with it Adam moves each parameter by lr_t·g/(|g| + ε)."""

    def __init__(self, seed):
        self.seed, self.options = seed, {}
        gen = torch.Generator().manual_seed(9500 + seed)
        n = int(torch.randint(1, 4, (1,), generator=gen))
        signs = torch.randint(0, 2, (n,), generator=gen) * 2 - 1
        self.g = (signs * (0.1 + 2 * torch.rand(n, generator=gen, dtype=torch.float64))).tolist()
        self.start = torch.randn(n, generator=gen, dtype=torch.float64).tolist()
        self.steps = int(torch.randint(10, 40, (1,), generator=gen))

    def __call__(self, x):
        return list(self.g)


@probe
def weight_decay_calls(learner, name: str, hints: dict) -> dict:
    """One step with weight_decay=0.1 of a subclass of the learner's class that records
    its calls of ``apply_weight_decay``: how many of the parameters it was called for."""
    seen = []

    class Recording(learner):
        def apply_weight_decay(self, p, grad, group):
            seen.append(id(p))
            return super().apply_weight_decay(p, grad, group)

    params = [torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)]
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    optimizer = call_submission(f"{name}(params, weight_decay=0.1)", Recording, params, weight_decay=0.1,
                                hints=hints)
    call_submission(f"{name}.step", optimizer.step, hints=hints)
    return {"params": len(params), "called_for": len({id(p) for p in params} & set(seen))}


def calls_apply_weight_decay(submission, name: str, hints) -> bool:
    """Whether the learner's step() gets every parameter's gradient from ``apply_weight_decay``."""
    seen = weight_decay_calls(submission, name, dict(hints))
    return seen["called_for"] == seen["params"]
