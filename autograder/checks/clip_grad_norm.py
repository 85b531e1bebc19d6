"""Part ``clip-grad-norm``: ``clip_grad_norm(parameters, max_norm, norm_type=2.0,
error_if_nonfinite=False)``, clipping by the global norm as
``torch.nn.utils.clip_grad_norm_`` does.

Rule: ‖g‖ is the ``norm_type``-norm of every gradient's entries taken together
(parameters without a gradient left out); every gradient is multiplied, in place, by
min(1, max_norm / (‖g‖ + 10⁻⁶)), and ‖g‖ is returned. A non-finite ‖g‖ raises a
RuntimeError when ``error_if_nonfinite`` is set, and otherwise is applied as it is. The
oracle is that rule in float64 (:mod:`autograder.oracles.practice`).
"""

import math

import pytest
import torch

from autograder.checks._refuse import refusing
from autograder.feedback import Mismatch, SubmissionError, call_submission, close, describe
from autograder.oracles import practice
from autograder.probe import probe

NAME = "clip_grad_norm"
HINTS = {
    "unexpected keyword": "Call signature: clip_grad_norm(parameters, max_norm, norm_type=2.0, "
                          "error_if_nonfinite=False).",
    "NoneType": "Likely mistake: a parameter without a gradient (p.grad is None) must be left out.",
}


#: PyTorch's clipping by norm, which this part asks the learner to write.
TORCH_CLIPPING = [(torch.nn.utils, "clip_grad_norm_"), (torch.nn.utils, "clip_grad_norm"),
                  (torch.nn.utils, "get_total_norm"), (torch.nn.utils, "clip_grads_with_norm_"),
                  (torch.nn.utils.clip_grad, "clip_grad_norm_"), (torch.nn.utils.clip_grad, "clip_grad_norm"),
                  (torch.nn.utils.clip_grad, "_get_total_norm"),
                  (torch.nn.utils.clip_grad, "_clip_grads_with_norm_")]


def gradients(seed, dtype, device, *, size=1.0, without_grad=()):
    """Gradients of several shapes (None for the indices in ``without_grad``), their global
    norm about ``size`` times √(entries)."""
    gen = torch.Generator().manual_seed(9100 + seed)
    shapes = [(3, 4), (7,), (2, 3, 2), (5,)][: 2 + seed % 3]
    return [None if i in without_grad else
            (size * torch.randn(s, generator=gen, dtype=torch.float64)).to(dtype).to(device)
            for i, s in enumerate(shapes)]


@probe
def clip(function, grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """The gradients after ``function`` on parameters holding ``grads``, what it returned,
    and, if it raised, the message saying so."""
    params = []
    for g in grads:
        p = torch.zeros(g.shape if g is not None else (2,), dtype=g.dtype if g is not None else torch.float32,
                        device=g.device if g is not None else "cpu", requires_grad=True)
        p.grad = None if g is None else g.clone()
        params.append(p)
    given = [p.grad for p in params]
    name = f"{NAME}(parameters, max_norm={max_norm:g}, norm_type={norm_type:g})"
    try:
        with refusing("clip_grad_norm_", TORCH_CLIPPING):
            returned = call_submission(name, function, params, max_norm, norm_type=norm_type,
                                       error_if_nonfinite=error_if_nonfinite, hints=HINTS)
    except SubmissionError as error:
        return {"raised": str(error), "grads": [p.grad for p in params]}
    if isinstance(returned, torch.Tensor):
        returned = returned.detach().to("cpu", torch.float64)
    # identity is only visible here, before the gradients leave the probe
    replaced = [i for i, (p, g) in enumerate(zip(params, given)) if g is not None and p.grad is not g]
    return {"raised": None, "returned": returned, "grads": [p.grad for p in params], "replaced": replaced}


def run(submission, grads, max_norm, norm_type=2.0):
    seen = clip(submission, grads, max_norm, norm_type)
    if seen["raised"]:
        raise SubmissionError(seen["raised"])
    return seen


def mistakes(grads, max_norm, norm_type=2.0):
    """What known wrong clippings leave in the gradients."""
    present = [g.to("cpu", torch.float64) for g in grads if g is not None]
    total = practice.global_norm(present, norm_type)

    def by_value():
        return [g.clamp(-max_norm, max_norm) for g in present]

    def per_tensor():
        return [g * practice.clip_coefficient(practice.global_norm([g], norm_type), max_norm) for g in present]

    def without_eps():
        return [g * torch.clamp(max_norm / total, max=1.0) for g in present]

    def always():
        return [g * max_norm / (total + practice.CLIP_EPS) for g in present]

    def sum_of_norms():
        norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in present])
        return [g * practice.clip_coefficient(norms.sum(), max_norm) for g in present]

    def squared():
        return [g * practice.clip_coefficient(total ** 2, max_norm) for g in present]

    return {
        "the gradients are clipped by value (each entry clamped to ±max_norm), not by their norm": by_value,
        "each tensor is clipped by its own norm; clip_grad_norm_ uses one norm, of all the gradients "
        "together, so every gradient is scaled by the same factor": per_tensor,
        "the tensors' norms are added; the global norm is the norm of the vector of the per-tensor norms "
        "(√(Σ‖gᵢ‖²) for the 2-norm)": sum_of_norms,
        "the norm is squared (no square root)": squared,
        "the gradients are always rescaled to max_norm, also when they are smaller; the factor is at most 1 "
        "(torch.clamp(..., max=1.0))": always,
        "the factor is max_norm / ‖g‖; clip_grad_norm_ divides by ‖g‖ + 1e-6": without_eps,
    }


def compare_grads(seen, grads, max_norm, norm_type, dtype, context):
    _, expected = practice.clipped([g for g in grads if g is not None], max_norm, norm_type)
    got = [g for g in seen["grads"] if g is not None]
    if len(got) != len(expected) or not close(got, expected, dtype):
        message = f"{context}: the gradients after clipping are {describe(got)}; clip_grad_norm_ leaves " \
                  f"{describe(expected)}."
        for mistake, compute in mistakes(grads, max_norm, norm_type).items():
            if close(got, compute(), dtype):
                message += f" Likely mistake: {mistake}."
                break
        raise Mismatch(message)


def check_returns_the_total_norm(submission, seed, dtype, device):
    """Returns the norm of all the gradients together, before clipping"""
    grads = gradients(seed, dtype, device, size=2.0)
    seen = run(submission, grads, 1.0)
    expected = practice.global_norm(grads)
    returned = seen["returned"]
    if not isinstance(returned, (torch.Tensor, float, int)) or torch.as_tensor(returned).numel() != 1:
        raise Mismatch(f"{NAME} must return the total norm (a 0-dimensional tensor); it returned "
                       f"{describe(returned)}.")
    if not close(torch.as_tensor(returned, dtype=torch.float64).reshape(()), expected, dtype):
        after = practice.global_norm([g for g in seen["grads"] if g is not None])
        hint = (" Likely mistake: it returns the norm after clipping; clip_grad_norm_ returns the norm the "
                "gradients had before") if close(torch.as_tensor(returned, dtype=torch.float64).reshape(()),
                                                   after, dtype) else ""
        raise Mismatch(f"{NAME} returned {describe(returned)}; the gradients' total norm is "
                       f"{float(expected):.6g}.{hint}")


@pytest.mark.weight(3)
def check_clips_by_the_global_norm(submission, seed, dtype, device):
    """Scales every gradient, in place, by max_norm / (‖g‖ + 1e-6), ‖g‖ the norm of all of them"""
    grads = gradients(seed, dtype, device, size=2.0)
    max_norm = 0.5 + seed % 3
    seen = run(submission, grads, max_norm)
    compare_grads(seen, grads, max_norm, 2.0, dtype, f"max_norm={max_norm:g}")
    if seen["replaced"]:
        raise Mismatch(f"{NAME} gave parameter(s) {seen['replaced']} new .grad tensors; clip_grad_norm_ scales "
                       "the caller's gradients in place (g.mul_(factor)), so whoever holds them sees the change. "
                       "Likely mistake: p.grad = p.grad * factor instead of p.grad.mul_(factor).")


def check_leaves_small_gradients_alone(submission, seed, dtype, device):
    """Gradients whose total norm is below max_norm are left as they are"""
    grads = gradients(seed, dtype, device, size=0.05)
    compare_grads(run(submission, grads, 10.0), grads, 10.0, 2.0, dtype, "max_norm=10, a norm below it")


def check_skips_parameters_without_gradients(submission, seed, dtype, device):
    """Parameters whose .grad is None are left out of the norm and left without a gradient"""
    grads = gradients(seed, dtype, device, size=2.0, without_grad=(1,))
    seen = run(submission, grads, 1.0)
    if seen["grads"][1] is not None:
        raise Mismatch(f"{NAME} gave a gradient to a parameter that had none (its .grad was None).")
    compare_grads(seen, grads, 1.0, 2.0, dtype, "with a parameter whose .grad is None")


@pytest.mark.parametrize("norm_type", [1.0, math.inf])
def check_other_norm_types(submission, seed, dtype, device, norm_type):
    """norm_type=1 and norm_type=inf (the largest |entry|) as torch.linalg.vector_norm has them"""
    grads = gradients(seed, dtype, device, size=2.0)
    compare_grads(run(submission, grads, 1.0, norm_type), grads, 1.0, norm_type, dtype, f"norm_type={norm_type}")


def check_non_finite_norms(submission, seed, dtype, device):
    """A non-finite norm raises a RuntimeError with error_if_nonfinite, and is applied as it is without"""
    grads = gradients(seed, dtype, device, size=2.0)
    bad = [math.inf, math.nan][seed % 2]
    grads[0].view(-1)[seed % grads[0].numel()] = bad
    seen = clip(submission, grads, 1.0, error_if_nonfinite=True)
    if not (seen["raised"] or "").startswith(f"{NAME}(parameters, max_norm=1, norm_type=2) raised RuntimeError"):
        did = "returned" if not seen["raised"] else "raised another error: " + seen["raised"]
        raise Mismatch(f"with a gradient entry of {bad} and error_if_nonfinite=True, {NAME} {did}; "
                       "clip_grad_norm_ raises a RuntimeError.")
    if not all(a.isnan().equal(b.isnan()) and a.nan_to_num().equal(b.nan_to_num())
               for a, b in zip(seen["grads"], grads)):
        raise Mismatch(f"{NAME} changed the gradients before raising; it must raise before clipping.")
    seen = run(submission, grads, 1.0)
    _, expected = practice.clipped(grads, 1.0)
    got = seen["grads"]
    same = all(a.to("cpu", torch.float64).isnan().equal(b.isnan())
               and a.to("cpu", torch.float64).nan_to_num().equal(b.nan_to_num()) for a, b in zip(got, expected))
    if not same:
        untouched = all(a.to("cpu", torch.float64).nan_to_num().equal(b.to("cpu", torch.float64).nan_to_num())
                        for a, b in zip(got, grads))
        if not untouched:
            hint = ""
        elif math.isnan(bad):
            hint = (" Likely mistake: the factor is 1 for a nan norm, as Python's min(1.0, max_norm / (norm + 1e-6)) "
                    "gives (every comparison with nan is false); a nan norm makes every gradient nan: use "
                    "torch.clamp(max_norm / (norm + 1e-6), max=1.0), not Python's min")
        else:
            hint = (" Likely mistake: clipping is skipped when the norm is not finite; clip_grad_norm_ multiplies "
                    "by the factor anyway (0 for an infinite norm, so the inf becomes nan)")
        raise Mismatch(f"with a gradient entry of {bad} and error_if_nonfinite=False, the gradients are "
                       f"{describe(got)}; clip_grad_norm_ leaves {describe(expected)}.{hint}")
