"""Assignment 06 (a fast Adam step): the reference, the blank release, and realistic
mistakes, with the points each test cell must award and what the feedback must say.

Check weights, for reading the predictions:
inplace-adam-step (4 points): moments 1, parameters against the equations 2, bit for bit
torch 2, allocations 2, in place 1 (of 8). fast-adam-optimizer (4 points): defaults 1,
torch.optim.Adam over many steps 2, bit for bit 1, allocations 2, state_dict 1, closure 1
(of 8). FastAdam steps with the learner's adam_step_, so a mistake in the step costs
FastAdam's points too.
"""

from submissions import Submission, optimizer_borrowings, with_scores

A = "06-fast-adam"
FULL = {"inplace-adam-step-tests": 4.0, "fast-adam-optimizer-tests": 4.0}
STEP = "inplace-adam-step-code"
OPTIMIZER = "fast-adam-optimizer-code"

SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # torch's own denominator: bit for bit torch, but sqrt() and / each allocate a tensor the
    # size of the parameter on every step; only the allocation checks fail: 6/8 of 4 twice.
    Submission(
        "denominator-as-torch-writes-it", A, with_scores(FULL, inplace_adam_step=3.0, fast_adam_optimizer=3.0),
        cell=STEP,
        old="    torch.sqrt(exp_avg_sq, out=scratch)\n    scratch.div_(bias_correction2_sqrt).add_(eps)\n"
            "    param.addcdiv_(exp_avg, scratch, value=-lr / bias_correction1)\n",
        new="    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)\n"
            "    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)\n",
        messages=("Likely mistake: `v.sqrt()` (or `torch.sqrt(v)`) returns a new tensor",),
    ),
    # The first moment as β₁m + (1 − β₁)g: right to rounding, not bit for bit: 6/8 of 4, and
    # FastAdam loses its bit-for-bit check only: 7/8 of 4.
    Submission(
        "first-moment-without-lerp", A, with_scores(FULL, inplace_adam_step=3.0, fast_adam_optimizer=3.5),
        cell=STEP, old="exp_avg.lerp_(grad, 1 - beta1)", new="exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)",
        messages=("Likely cause: m is updated as m·β₁ + (1 − β₁)·g",),
    ),
    # (1 − β₂)·g·g as a product: two temporaries per step, and rounded otherwise than by
    # addcmul_: the bit-for-bit and allocation checks fail (4/8 of 4); FastAdam loses the
    # same two (5/8 of 4).
    Submission(
        "second-moment-as-a-product", A, with_scores(FULL, inplace_adam_step=2.0, fast_adam_optimizer=2.5),
        cell=STEP, old="exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)",
        new="exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)",
        messages=("Likely mistake: a product such as `(1 - beta2) * grad * grad` builds new tensors",
                  "Likely cause: (1 − β₂)·g·g is computed as a product"),
    ),
    # Squaring the gradient in place avoids the temporary but destroys grad, and rounds g²
    # before scaling it: the bit-for-bit and in-place checks fail (5/8 of 4); FastAdam gets
    # fresh gradients every step and loses only bit for bit (7/8 of 4).
    Submission(
        "gradient-squared-in-place", A, with_scores(FULL, inplace_adam_step=2.5, fast_adam_optimizer=3.5),
        cell=STEP, old="exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)",
        new="exp_avg_sq.mul_(beta2).add_(grad.mul_(grad), alpha=1 - beta2)",
        messages=("grad of tensor 0 changed", "Likely cause: (1 − β₂)·g² is added as"),
    ),
    # The step size without its correction η/(1 − β₁ᵗ): the moments, allocations and in-place
    # checks pass (4/8 of 4); FastAdam keeps its defaults and allocations (3/8 of 4).
    Submission(
        "step-size-not-corrected", A, with_scores(FULL, inplace_adam_step=2.0, fast_adam_optimizer=1.5),
        cell=STEP, old="value=-lr / bias_correction1", new="value=-lr",
        messages=("Likely mistake: only the second moment is bias-corrected",),
    ),
    # √(v̂ + ε): as above for the step (4/8 of 4); with ε = 1e-8 the closure's first step still
    # looks right, so FastAdam keeps 4/8 of 4.
    Submission(
        "epsilon-inside-the-root", A, with_scores(FULL, inplace_adam_step=2.0, fast_adam_optimizer=2.0),
        cell=STEP,
        old="    torch.sqrt(exp_avg_sq, out=scratch)\n    scratch.div_(bias_correction2_sqrt).add_(eps)\n",
        new="    torch.div(exp_avg_sq, bias_correction2_sqrt ** 2, out=scratch)\n    scratch.add_(eps).sqrt_()\n",
        messages=("Likely mistake: ε is inside the square root",),
    ),
    # The count starts at 1, so the first step is corrected as step 2: every run fails; the
    # defaults and allocations checks pass (3/8 of 4).
    Submission(
        "step-count-starts-at-one", A, with_scores(FULL, fast_adam_optimizer=1.5), cell=OPTIMIZER,
        old='state["step"] = 0', new='state["step"] = 1',
        messages=("Likely mistake: the step count is one ahead",),
    ),
    # A new scratch tensor on every step: right to the bit, but each step allocates one
    # tensor per parameter (6/8 of 4).
    Submission(
        "new-scratch-every-step", A, with_scores(FULL, fast_adam_optimizer=3.0), cell=OPTIMIZER,
        old="self.scratch_for(p),", new="torch.empty_like(p),",
        messages=("Likely mistake: a new buffer on every call (`torch.empty_like`)",
                  "make scratch memory once and reuse it"),
    ),
    # The constructor's betas for every group: runs with per-group betas fail (matches, bit for
    # bit, state_dict); defaults, allocations and the closure pass (4/8 of 4).
    Submission(
        "group-betas-ignored", A, with_scores(FULL, fast_adam_optimizer=2.0), cell=OPTIMIZER,
        old='beta1, beta2 = group["betas"]', new='beta1, beta2 = self.defaults["betas"]',
        messages=("Likely mistake: each group's betas are ignored",),
    ),
    # Each fails one of FastAdam's eight unit weights: 4 × 7/8.
    Submission(
        "state-names-of-its-own", A, with_scores(FULL, fast_adam_optimizer=3.5), cell="fast-adam-optimizer-code",
        old='"exp_avg"]', new='"m"]',
        messages=("Likely mistake: the state is not kept under torch's names",),
    ),
    Submission(
        "scratch-per-device-only", A, with_scores(FULL, fast_adam_optimizer=3.5), cell="fast-adam-optimizer-code",
        old="key = (p.dtype, p.device)", new="key = p.device",
        messages=("Likely mistake: a scratch buffer is shared by parameters of different dtypes",),
    ),
    # The scratch "cleared" with mul_(0): the checks hand it over full of NaN, and NaN·0 is
    # NaN. The parameter and bit-for-bit checks fail (4 of 8); no mistake is named from NaN
    # alone. FastAdam's buffers start as zeros here, so it is right (with torch.empty's
    # garbage, whether it fails would depend on the memory it was given).
    Submission(
        "scratch-cleared-by-mul-zero", A, with_scores(FULL, inplace_adam_step=2.0), cell=STEP,
        old="    torch.sqrt(exp_avg_sq, out=scratch)\n",
        new="    scratch.mul_(0).add_(exp_avg_sq).sqrt_()\n",
        more=(("fast-adam-optimizer-code", "buffer = torch.empty(", "buffer = torch.zeros("),),
        messages=("`scratch.mul_(0)` does not clear it",),
    ),
]

#: Borrowings of torch's optimizers (tests/test_borrowing.py).
BORROWINGS = optimizer_borrowings(A, "fast-adam-optimizer", "FastAdam", "Adam", "adam")
