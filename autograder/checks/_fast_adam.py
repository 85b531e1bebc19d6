"""Shared by the checks of assignment 06 (a fast Adam step): measuring allocations, the
bit-exact reference, and what rounding differently looks like.

- :func:`allocations_during` runs a learner's call under ``torch.profiler`` with memory
  profiling and returns, as plain data, every block the allocator handed out during the
  call: its size and the outermost operator it was made in. Probes call it; the checks
  judge the list with :func:`allocation_problem`.
- :func:`torch_adam_run` is the bit-exact oracle: ``torch.optim.Adam(foreach=False)``, the
  for-loop implementation, run on the same tensors in the same dtype.
- :func:`ordered_run` replays the for-loop's sequence of tensor operations with one of
  them replaced by a common alternative that rounds differently (:data:`ROUNDING`), so a
  check can say which operation keeps a learner's result from being bit for bit
  torch's. It models wrong answers only; the correct run always comes from torch.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

from autograder.feedback import Mismatch, first_difference

F64 = torch.float64
#: The record_function label that delimits the learner's call in the profile.
MARK = "autograder: learner call"


@contextlib.contextmanager
def _stderr_silenced():
    """The profiler's C++ side logs its start and stop on file descriptor 2; a test cell
    that writes to stderr scores zero in nbgrader, so those lines go to /dev/null."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocations_during(function, *args, **kwargs):
    """Call ``function(*args, **kwargs)``; return ``(result, allocations)``.

    ``allocations`` lists, in order, each block of memory PyTorch's allocator handed out
    on this thread while the call ran (the checks measure on the CPU), as ``[operator, bytes]``: the outermost
    ``aten::`` operator the allocation happened in (``aten::sqrt`` for ``v.sqrt()``), or
    ``""`` outside any. Frees are not listed. The profiler records every allocation, so
    the list does not depend on timing or load; allocations made by other threads (or
    before and after the call) are not the call's and are left out.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU]
    profiler = profile(activities=activities, profile_memory=True, record_shapes=False)
    with _stderr_silenced():
        profiler.__enter__()
    try:
        with record_function(MARK):
            result = function(*args, **kwargs)
    finally:
        with _stderr_silenced():
            profiler.__exit__(None, None, None)
    events = list(profiler.profiler.kineto_results.events())
    (mark,) = [e for e in events if e.name() == MARK]
    thread, start, end = mark.start_thread_id(), mark.start_ns(), mark.end_ns()
    operators = [e for e in events if e.name().startswith("aten::") and e.start_thread_id() == thread]
    allocations = []
    for event in events:
        if event.name() != "[memory]" or event.nbytes() <= 0 or event.start_thread_id() != thread:
            continue
        at = event.start_ns()
        if not start <= at <= end:
            continue
        around = [op for op in operators if op.start_ns() <= at <= op.end_ns()]
        outermost = min(around, key=lambda op: op.start_ns()).name() if around else ""
        allocations.append([outermost, int(event.nbytes())])
    return result, allocations


#: What an allocation made in each operator most likely is, in a learner's Adam step.
ALLOCATING_OPERATORS = {
    "aten::sqrt": "`v.sqrt()` (or `torch.sqrt(v)`) returns a new tensor; write the root into the "
                  "scratch tensor with `torch.sqrt(v, out=scratch)`",
    "aten::mul": "a product such as `(1 - beta2) * grad * grad` builds new tensors; "
                 "`exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)` works in place",
    "aten::pow": "`grad ** 2` returns a new tensor; `addcmul_(grad, grad, value=...)` multiplies "
                 "without one",
    "aten::square": "`grad.square()` returns a new tensor; `addcmul_(grad, grad, value=...)` "
                    "multiplies without one",
    "aten::div": "`a / b` returns a new tensor; divide in place (`scratch.div_(...)`) or let "
                 "`param.addcdiv_(exp_avg, scratch, value=...)` do the division",
    "aten::add": "`a + b` returns a new tensor; use the in-place form `add_`",
    "aten::sub": "`a - b` returns a new tensor; use the in-place forms `sub_` or `addcdiv_`",
    "aten::rsub": "`1 - tensor` returns a new tensor; use the in-place forms",
    "aten::lerp": "`torch.lerp(m, g, w)` returns a new tensor; `m.lerp_(g, w)` updates m in place",
    "aten::clone": "`.clone()` copies a whole tensor on every call",
    "aten::empty_like": "a new buffer on every call (`torch.empty_like`); make scratch memory once "
                        "and reuse it",
    "aten::zeros_like": "a new buffer on every call (`torch.zeros_like`); make scratch memory once "
                        "and reuse it",
    "aten::empty": "a new tensor on every call (`torch.empty`, `torch.tensor`); make scratch memory "
                   "once and reuse it",
    "aten::zeros": "a new tensor on every call (`torch.zeros`); make scratch memory once and reuse it",
    "aten::to": "a conversion (`.to(...)`, `.double()`) copies the whole tensor",
    "aten::contiguous": "`.contiguous()` copies a tensor that is not contiguous",
}


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**10:.3g} KiB" if nbytes >= 2**10 else f"{nbytes} bytes"


def allocation_problem(calls, sizes, *, what: str, limit: str) -> str:
    """The sentence for the learner if any call allocated a parameter's worth of memory
    (else ""). ``calls`` holds each call's :func:`allocations_during` list and ``sizes`` the
    bytes that call may not reach, in one block or in all together; ``what`` names a call
    ("adam_step_") and ``limit`` what its size is ("the parameter")."""
    for allocations, size in zip(calls, sizes):
        if not isinstance(allocations, list):
            return f"the allocations of {what} could not be measured."
        blocks = [(str(op), int(n)) for op, n in allocations]
        large = [(op, n) for op, n in blocks if n >= size]
        total = sum(n for _, n in blocks)
        if not large and total < size:
            continue
        shown = large or blocks
        listed = ", ".join(f"{_size(n)} in {op or 'Python code'}" for op, n in shown[:4])
        more = f" and {len(shown) - 4} more" if len(shown) > 4 else ""
        if large:
            message = (f"{what} allocated {len(large)} new tensor(s) at least as large as {limit} "
                       f"({_size(size)}): {listed}{more}.")
        else:
            message = (f"{what} allocated {_size(total)} in {len(blocks)} blocks, as much as {limit} "
                       f"({_size(size)}): {listed}{more}.")
        hint = next((ALLOCATING_OPERATORS[op] for op, _ in shown if op in ALLOCATING_OPERATORS), "")
        if hint:
            message += f" Likely mistake: {hint}."
        else:
            message += (" Every step must reuse the tensors it is given: in-place methods (`mul_`, "
                        "`addcmul_`, `addcdiv_`) and `out=` arguments.")
        return message
    return ""


def hyperparameters(gen: torch.Generator) -> dict:
    """Random Adam hyperparameters under which every known mistake shows: lr in [1e-3, 0.3],
    β₁ in [0.6, 0.9], β₂ in [0.95, 0.999], ε in [1e-4, 1e-1]."""
    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))

    lr = 10 ** uniform(-3, -0.5)
    return dict(lr=lr, beta1=uniform(0.6, 0.9), beta2=uniform(0.95, 0.999), eps=10 ** uniform(-4, -1))


def torch_adam_run(params, grads, hyper):
    """``torch.optim.Adam(foreach=False)`` over ``grads[k][i]`` (step k + 1, tensor i), in
    the tensors' own dtype: the list of (params, exp_avgs, exp_avg_sqs) after each step."""
    leaves = [p.detach().clone().requires_grad_() for p in params]
    optimizer = torch.optim.Adam(leaves, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                                 eps=hyper["eps"], foreach=False)
    history = []
    for step_grads in grads:
        for p, g in zip(leaves, step_grads):
            p.grad = g.detach().clone()
        optimizer.step()
        state = [optimizer.state[p] for p in leaves]
        history.append(([p.detach().clone() for p in leaves], [s["exp_avg"].clone() for s in state],
                        [s["exp_avg_sq"].clone() for s in state]))
    return history


def ordered_run(params, grads, hyper, *, m_rule="lerp", v_rule="addcmul", root="divide",
                update="addcdiv"):
    """The for-loop's operations, in the tensors' dtype, with one choice changed (see
    :data:`ROUNDING`): the list of (params, exp_avgs, exp_avg_sqs) after each step."""
    lr, beta1, beta2, eps = hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["eps"]
    params = [p.detach().clone() for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    history = []
    for step, step_grads in enumerate(grads, start=1):
        correction1, root2 = 1 - beta1 ** step, (1 - beta2 ** step) ** 0.5
        for p, g, m, v in zip(params, step_grads, ms, vs):
            if m_rule == "lerp":
                m.lerp_(g, 1 - beta1)
            else:
                m.mul_(beta1).add_(g, alpha=1 - beta1)
            if v_rule == "addcmul":
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            elif v_rule == "square_add":
                v.mul_(beta2).add_(g * g, alpha=1 - beta2)
            elif v_rule == "product":
                v.mul_(beta2).add_((1 - beta2) * g * g)
            else:
                v.lerp_(g * g, 1 - beta2)
            if root == "divide":
                denominator = v.sqrt() / root2
            elif root == "reciprocal":
                denominator = v.sqrt() * (1 / root2)
            else:
                denominator = (v / (1 - beta2 ** step)).sqrt()
            denominator.add_(eps)
            if update == "addcdiv":
                p.addcdiv_(m, denominator, value=-lr / correction1)
            else:
                p.add_(m / denominator, alpha=-lr / correction1)
        history.append(([p.clone() for p in params], [m.clone() for m in ms], [v.clone() for v in vs]))
    return history


#: Operations that compute Adam's update correctly but round differently from
#: torch.optim.Adam's for-loop: the sentence naming each, and the :func:`ordered_run`
#: choice that reproduces it.
ROUNDING = {
    "m is updated as m·β₁ + (1 − β₁)·g (`mul_` then `add_`); torch.optim.Adam computes "
    "`exp_avg.lerp_(grad, 1 - beta1)`, m + (1 − β₁)·(g − m), which rounds differently": dict(
        m_rule="mul_add"),
    "(1 − β₂)·g² is added as `add_(grad * grad, alpha=1 - beta2)`, which rounds g² first; "
    "torch.optim.Adam uses `addcmul_(grad, grad, value=1 - beta2)`": dict(v_rule="square_add"),
    "(1 − β₂)·g·g is computed as a product and then added; torch.optim.Adam adds it with "
    "`addcmul_(grad, grad, value=1 - beta2)`, which rounds differently": dict(v_rule="product"),
    "v is updated with `lerp_`; torch.optim.Adam uses `mul_(beta2)` then "
    "`addcmul_(grad, grad, value=1 - beta2)`": dict(v_rule="lerp"),
    "√v is multiplied by 1/√(1 − β₂ᵗ); torch.optim.Adam divides it by √(1 − β₂ᵗ)": dict(
        root="reciprocal"),
    "the root is taken of v/(1 − β₂ᵗ); torch.optim.Adam takes √v first and divides it by "
    "√(1 − β₂ᵗ)": dict(root="inside"),
    "the quotient m/d is formed first and then added with alpha = −η/(1 − β₁ᵗ); "
    "torch.optim.Adam does both in one `addcdiv_(exp_avg, denom, value=-step_size)`": dict(
        update="divide_then_add"),
}


def identical_runs(history, reference) -> bool:
    """Whether two runs hold the same bits at every step (same dtypes, shapes, values)."""
    if len(history) != len(reference):
        return False
    for seen, wanted in zip(history, reference):
        flat_seen = [x for part in seen for x in part]
        flat_wanted = [x for part in wanted for x in part]
        if len(flat_seen) != len(flat_wanted):
            return False
        for a, e in zip(flat_seen, flat_wanted):
            if not (isinstance(a, torch.Tensor) and a.dtype == e.dtype and a.shape == e.shape
                    and torch.equal(a.to("cpu"), e.to("cpu"))):
                return False
    return True


def explain_rounding(history, reference, variants, *, what: str, reference_name: str) -> None:
    """Raise :class:`Mismatch` unless ``history`` is bit for bit ``reference``: at the first
    step and tensor that differ, naming the variant of :data:`ROUNDING` (computed by
    ``variants[sentence]()``) that reproduces the learner's bits."""
    if identical_runs(history, reference):
        return
    names = ("param", "exp_avg", "exp_avg_sq")
    where, gap = what, ""
    for step, (seen, wanted) in enumerate(zip(history, reference)):
        differing = [(name, index, a, b) for part, name in enumerate(names)
                     for index, (a, b) in enumerate(zip(seen[part], wanted[part]))
                     if not identical_runs([((a,),)], [((b,),)])]
        if differing:
            name, index, a, b = differing[0]
            where, gap = f"after step {step + 1}, {name} of {what} {index}", first_difference(a, b)
            break
    message = (f"{where} is not bit for bit what {reference_name} computes"
               + (f" ({gap})" if gap else "") + ".")
    for sentence, compute in variants.items():
        if identical_runs(history, compute()):
            message += f" Likely cause: {sentence}."
            break
    else:
        message += (" Apply torch's operations in torch's order, each rounding once, as the "
                    "exercise lists them (lerp_, mul_ and addcmul_, sqrt into scratch, div_, add_, "
                    "addcdiv_).")
    raise Mismatch(message)
