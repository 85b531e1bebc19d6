"""The course's fast Adam steps, and the clock the chapter "Making Adam fast" and the
benchmarks (``python3 tasks.py bench``) measure them with.

Each step updates parameters and moments in place and computes what
``torch.optim.Adam`` computes: :func:`foreach_adam_` bit for bit (the same operations in
the same order as torch's for-loop), :func:`compiled_step` and :class:`FlatAdam` to
rounding (the compiler fuses and reorders). :func:`adam_out_of_place` is the slow
baseline, the textbook equations written as tensor expressions. :func:`ceiling_` moves
exactly the memory an Adam step must move and does no other work: no Adam step can be
faster, so its speed is the ceiling the others are measured against.

The exercise's step (``adam_step_``, allocation-free on one tensor) and its optimizer
(``FastAdam``) are not here: their code is written once, in the exercise's reference
solution, and :func:`exercise_reference` runs them from there, so that the book measures
them without ever showing them.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "solutions" / "06-fast-adam" / "fast-adam.ipynb"
#: The tensors one Adam step must read (θ, g, m, v) and write back (θ, m, v).
READS, WRITES = 4, 3


def minimal_bytes(numel: int, dtype: torch.dtype = torch.float32) -> int:
    """The bytes an Adam step over ``numel`` parameters must move at the least: four
    tensors read and three written, each once."""
    return (READS + WRITES) * numel * torch.empty((), dtype=dtype).element_size()


def adam_out_of_place(param, grad, m, v, step, lr, beta1, beta2, eps):
    """Adam's update as tensor expressions, each operation making a new tensor: returns
    the new (param, m, v), which the caller keeps in place of the old ones."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_corrected = m / (1 - beta1**step)
    v_corrected = v / (1 - beta2**step)
    return param - lr * m_corrected / (v_corrected.sqrt() + eps), m, v


def foreach_adam_(params, grads, ms, vs, scratch, step, lr, beta1, beta2, eps):
    """Adam on lists of tensors, in place, one call per operation for the whole list
    (``torch._foreach_*``), with the tensors of ``scratch`` (shaped like ``params``) as the
    only working memory: the operations of torch.optim.Adam's for-loop, in its order, so
    the result is bit for bit ``torch.optim.Adam(foreach=False)``'s. The root is taken of a
    copy of v, one pass more than an ``out=`` argument would need."""
    torch._foreach_lerp_(ms, grads, 1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    torch._foreach_copy_(scratch, vs)
    torch._foreach_sqrt_(scratch)
    torch._foreach_div_(scratch, (1 - beta2**step) ** 0.5)
    torch._foreach_add_(scratch, eps)
    torch._foreach_addcdiv_(params, ms, scratch, value=-lr / (1 - beta1**step))


def single_pass_adam_(param, grad, m, v, step_size, beta1, beta2, eps, correction2_root):
    """Adam on one tensor, written for ``torch.compile``: the compiler turns these lines
    into one loop that reads θ, g, m and v once and writes θ, m and v once, with the
    temporaries held in registers. ``step_size`` is η/(1 − β₁ᵗ) and ``correction2_root``
    is √(1 − β₂ᵗ)."""
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).add_((1 - beta2) * grad * grad)
    param.sub_(step_size * m / (v.sqrt() / correction2_root + eps))


def same_traffic_as_adam_(param, grad, m, v):
    """The ceiling: reads θ, g, m and v and writes θ, m and v, once each, like an Adam
    step, with a single addition per value written."""
    param.add_(grad)
    m.add_(grad)
    v.add_(grad)


@functools.cache
def compiled(function):
    """``function`` compiled by ``torch.compile``, once, on first use, with dynamic shapes
    so that one compilation serves every size."""
    return torch.compile(function, dynamic=True)


def ceiling_(param, grad, m, v):
    """:func:`same_traffic_as_adam_`, compiled into one loop."""
    compiled(same_traffic_as_adam_)(param, grad, m, v)


def compiled_step(param, grad, m, v, step, lr, beta1, beta2, eps):
    """One compiled Adam step at step number ``step`` (1 on the first), in place."""
    compiled(single_pass_adam_)(param, grad, m, v, lr / (1 - beta1**step), beta1, beta2, eps,
                                (1 - beta2**step) ** 0.5)


class FlatAdam:
    """Adam over many parameters that live in one flat buffer.

    The constructor copies the parameters into one buffer and makes each parameter a view
    of its slice (``p.data``), and each gradient a view of a flat gradient buffer, into
    which ``backward()`` accumulates. A step is then one call of a single-pass kernel on
    four flat tensors, however many parameters there are: :func:`compiled_step`, or with
    ``compiled=False`` :func:`foreach_adam_` on the flat tensors (bit for bit torch's).

    A sketch for speed: one group, one dtype and device, no ``state_dict``; every parameter
    steps every time, and a gradient that is ``None`` counts as zero. ``zero_grad`` zeroes
    the flat gradient and keeps the views.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, compiled=True):
        self.params = list(params)
        sizes = [p.numel() for p in self.params]
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.flat_grad = torch.zeros_like(self.flat)
        with torch.no_grad():
            for p, value, grad in zip(self.params, self.flat.split(sizes), self.flat_grad.split(sizes)):
                p.data = value.view_as(p)
                p.grad = grad.view_as(p)
        self.grads = [p.grad for p in self.params]
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.scratch = None if compiled else torch.empty_like(self.flat)
        self.lr, self.betas, self.eps, self.steps = lr, betas, eps, 0

    def zero_grad(self):
        self.flat_grad.zero_()

    @torch.no_grad()
    def step(self):
        for p, view in zip(self.params, self.grads):
            if p.grad is not view:  # a gradient set by hand: bring it into the buffer
                if p.grad is None:
                    view.zero_()
                else:
                    view.copy_(p.grad)
                p.grad = view
        self.steps += 1
        beta1, beta2 = self.betas
        hyper = (self.steps, self.lr, beta1, beta2, self.eps)
        if self.scratch is None:
            compiled_step(self.flat, self.flat_grad, self.exp_avg, self.exp_avg_sq, *hyper)
        else:
            foreach_adam_([self.flat], [self.flat_grad], [self.exp_avg], [self.exp_avg_sq],
                          [self.scratch], *hyper)


def exercise_reference() -> dict:
    """The exercise's reference solution, run from its source notebook (the one place
    its code is written): a namespace holding ``adam_step_`` and ``FastAdam``."""
    markers = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.MULTILINE)
    scope = {"torch": torch}
    for cell in json.loads(EXERCISE.read_text())["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            source = markers.sub("", "".join(cell["source"]))
            exec(compile(source, str(EXERCISE), "exec"), scope)
    return scope


def _synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds_per_call(functions: Mapping[str, Callable[[], object]], *, rounds: int = 5,
                     calls: int = 1, warmup: int = 1) -> dict[str, float]:
    """Seconds per call of each function, measured side by side.

    Each function is called ``warmup`` times untimed; then every round times ``calls``
    calls of each function in turn. A function's time is its fastest round: whatever else
    the machine does can only slow a round down, and taking turns spreads it over every
    function alike.
    """
    for function in functions.values():
        for _ in range(warmup):
            function()
    _synchronize()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            _synchronize()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: min(seconds) for name, seconds in times.items()}
