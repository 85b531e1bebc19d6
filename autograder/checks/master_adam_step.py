"""Part ``master-adam-step``: ``master_adam_step(params, masters, exp_avgs, exp_avg_sqs,
step, lr, betas=(0.9, 0.999), eps=1e-8)``, one Adam step on bfloat16 parameters kept
with float32 master weights and float32 moments.

Rule: each parameter's bfloat16 gradient is cast to float32; the moments and the master
weight take ``torch.optim.Adam``'s step (ε added to √v̂, ``step`` = t, 1 on the first
call) in float32, in place; then the bfloat16 parameter is overwritten, in place, by its
master rounded to bfloat16. The oracle is that rule in float64
(:func:`autograder.oracles.practice.master_adam`), which a test holds against
``torch.optim.Adam`` on float32 masters.
"""

import pytest
import torch

from autograder.feedback import Mismatch, call_submission, close, describe, no_builtin_optimizers
from autograder.oracles import practice
from autograder.probe import probe

NAME = "master_adam_step"
BF16, F32 = torch.bfloat16, torch.float32
HINTS = {
    "unexpected keyword": "Call signature: master_adam_step(params, masters, exp_avgs, exp_avg_sqs, step, lr, "
                          "betas=(0.9, 0.999), eps=1e-8).",
    "expected scalar type": "Likely mistake: mixing bfloat16 and float32 tensors in an in-place operation; cast "
                            "the gradient with .float() first.",
}


def problem(seed, device, *, steps=8, near_one=False):
    """bfloat16 parameters, a bfloat16 gradient per step for each, and the rate."""
    gen = torch.Generator().manual_seed(9500 + seed)
    shapes = [(4, 3), (6,)][: 1 + seed % 2] + [(5,)]
    if near_one:
        params = [(1.0 + torch.rand(s, generator=gen)).to(BF16).to(device) for s in shapes]
    else:
        params = [torch.randn(s, generator=gen).to(BF16).to(device) for s in shapes]
    grads = [[torch.randn(s, generator=gen).mul(10 ** (seed % 3 - 2)).to(BF16).to(device) for s in shapes]
             for _ in range(steps)]
    lr = 1e-4 if near_one else [1e-2, 3e-3][seed % 2]
    return params, grads, lr


@probe
def run(function, params, grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """After each call of the learner's step (on float32 masters copied from the
    parameters and zero moments), every parameter, master and moment, and whether the
    parameters are still the same bfloat16 tensors."""
    params = [p.clone() for p in params]
    masters = [p.float() for p in params]
    exp_avgs = [torch.zeros_like(w) for w in masters]
    exp_avg_sqs = [torch.zeros_like(w) for w in masters]
    originals = list(params)
    history = []
    for t, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        with no_builtin_optimizers(NAME), torch.no_grad():
            call_submission(f"{NAME}(params, masters, exp_avgs, exp_avg_sqs, step={t + 1}, lr={lr:g})", function,
                            params, masters, exp_avgs, exp_avg_sqs, t + 1, lr, betas=betas, eps=eps, hints=HINTS)
        history.append({
            "params": [p.detach().clone() for p in params], "masters": [w.clone() for w in masters],
            "exp_avgs": [m.clone() for m in exp_avgs], "exp_avg_sqs": [v.clone() for v in exp_avg_sqs],
            "same_params": all(a is b for a, b in zip(params, originals)),
        })
    return history


def oracle(params, grads, lr, **options):
    return practice.master_adam(params, grads, len(grads), lr, **options)


def master_variants(params, grads, lr):
    """What known wrong steps leave in the masters, step by step."""
    steps = len(grads)

    def no_correction():
        masters = [p.double() for p in params]
        m = [torch.zeros_like(w) for w in masters]
        v = [torch.zeros_like(w) for w in masters]
        out = []
        for t in range(steps):
            for i, g in enumerate(grads[t]):
                g = g.double()
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                masters[i] = masters[i] - lr * m[i] / (v[i].sqrt() + 1e-8)
            out.append([w.clone() for w in masters])
        return out

    def from_the_bf16_weights():
        # The update computed in float32 but applied to the bfloat16 weight, the master copied from it.
        history = practice.master_adam(params, grads, steps, lr)
        out, weights = [], [p.clone() for p in params]
        for t in range(steps):
            before = history[t - 1][1] if t else [p.double() for p in params]
            weights = [(w.double() + (after - b)).to(BF16) for w, after, b in zip(weights, history[t][1], before)]
            out.append([w.double() for w in weights])
        return out

    def unchanged():
        return [[p.double() for p in params] for _ in range(steps)]

    return {
        "the update is applied to the bfloat16 weight, where an update smaller than half its spacing rounds "
        "away; apply it to the float32 master and copy the master into the weight": from_the_bf16_weights,
        "the masters never change: update the float32 master weights in place (w.sub_(...) or w.copy_(...)), "
        "not a new tensor": unchanged,
        "there is no bias correction: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ": no_correction,
    }


def compare_masters(seen, params, grads, lr, context):
    expected = oracle(params, grads, lr)
    variants = master_variants(params, grads, lr)
    for t, (row, want) in enumerate(zip(seen, expected)):
        if not close(row["masters"], want[1], F32):
            message = (f"{context}: after step {t + 1} the master weights are {describe(row['masters'])}; Adam in "
                       f"float32 gives {describe(want[1])}.")
            for mistake, compute in variants.items():
                if close(row["masters"], compute()[t], F32):
                    message += f" Likely mistake: {mistake}."
                    break
            raise Mismatch(message)


def check_keeps_the_moments_in_float32(submission, seed, device):
    """m and v stay float32 and follow Adam's moments of the float32 gradient"""
    params, grads, lr = problem(seed, device)
    seen = run(submission, params, grads, lr)
    expected = oracle(params, grads, lr)
    for t, (row, want) in enumerate(zip(seen, expected)):
        for key, index, symbol in (("exp_avgs", 2, "m"), ("exp_avg_sqs", 3, "v")):
            if any(x.dtype != F32 for x in row[key]):
                raise Mismatch(f"{key} must stay float32 tensors, updated in place.")
            if not close(row[key], want[index], F32):
                in_bf16 = close(row[key], want[index], BF16)
                raise Mismatch(
                    f"after step {t + 1}, {symbol} ({key}) is {describe(row[key])}; Adam's is "
                    f"{describe(want[index])}."
                    + (" Likely mistake: the moments are computed in bfloat16 (from p.grad as it is) and only "
                       "stored in float32; cast the gradient with .float() first." if in_bf16 else ""))


@pytest.mark.weight(3)
def check_takes_adams_step_on_the_float32_masters(submission, seed, device):
    """The master weights take torch.optim.Adam's step, in float32"""
    params, grads, lr = problem(seed, device)
    compare_masters(run(submission, params, grads, lr), params, grads, lr, f"lr={lr:g}")


@pytest.mark.weight(2)
def check_copies_the_masters_into_the_bfloat16_weights(submission, seed, device):
    """After each step every bfloat16 parameter, the same tensor, holds its master rounded to bfloat16"""
    params, grads, lr = problem(seed, device)
    seen = run(submission, params, grads, lr)
    for t, row in enumerate(seen):
        if not row["same_params"] or any(p.dtype != BF16 for p in row["params"]):
            raise Mismatch("the parameters must stay the same bfloat16 tensors: copy into them in place "
                           "(p.copy_(master)), do not rebind or convert them.")
        rounded = [w.to(BF16) for w in row["masters"]]
        if not all(torch.equal(p.cpu(), r.cpu()) for p, r in zip(row["params"], rounded)):
            previous = [w.to(BF16) for w in seen[t - 1]["masters"]] if t else [p.clone() for p in params]
            lagging = all(torch.equal(p.cpu(), r.cpu()) for p, r in zip(row["params"], previous))
            unchanged = all(torch.equal(p.cpu(), q.cpu()) for p, q in zip(row["params"], params))
            hint = ""
            if unchanged:
                hint = (" Likely mistake: the master weights are not copied back: after the update, "
                        "p.copy_(master) for every parameter.")
            elif lagging:
                hint = " Likely mistake: the master is copied into the weight before it is updated."
            raise Mismatch(f"after step {t + 1} the bfloat16 parameters are {describe(row['params'])}; their "
                           f"masters rounded to bfloat16 are {describe(rounded)}.{hint}")


@pytest.mark.weight(2)
def check_small_updates_accumulate_in_the_masters(submission, seed, device):
    """Updates far below bfloat16's spacing at the weights (lr=1e-4, weights in [1, 2)) add up in the masters"""
    params, grads, lr = problem(seed, device, steps=24, near_one=True)
    compare_masters(run(submission, params, grads, lr), params, grads, lr,
                    "lr=1e-4 on weights between 1 and 2 (bfloat16's spacing there is 2⁻⁷ ≈ 0.0078)")
