"""Assignment 09 (Adam in practice): the reference, the blank release, and realistic
mistakes, with the points each test cell must award and what the feedback must say."""

from submissions import Submission, reference_code, with_scores

A = "09-adam-in-practice"
FULL = {"clip-grad-norm-tests": 3.0, "loss-scaler-tests": 4.0, "master-adam-step-tests": 4.0,
        "wsd-scheduler-tests": 3.0}
# Check weights: clip-grad-norm 1:3:1:1:1:1 (returns the norm, clips, small gradients,
# no gradient, other norm types, non-finite); loss-scaler 1:2:2:3:1 (scale, unscaled
# step, skipping, back off and grow, unscale once); master-adam-step 1:3:2:2 (moments,
# masters, copy back, small updates); wsd-scheduler 1:1:3:1:1:1 (step 0, warmup and
# stable, decay, floor, no warmup or stable phase, state_dict).
CLIP = "clip-grad-norm-code"
SCALER = "loss-scaler-code"
MASTER = "master-adam-step-code"


SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # Clamping each entry to ±max_norm: the returned norm is right (1), gradients below
    # max_norm are untouched (1) and error_if_nonfinite still raises, but the non-finite
    # case without it fails: 2 of 8.
    Submission(
        "clips-by-value", A, with_scores(FULL, clip_grad_norm=0.75), cell=CLIP,
        old="            g.mul_(factor)", new="            g.clamp_(-max_norm, max_norm)",
        messages=("the gradients are clipped by value (each entry clamped to ±max_norm), not by their norm",),
    ),
    # Each tensor scaled by its own norm: right only where nothing is clipped (1 + 1 of 8).
    Submission(
        "clips-each-tensor-by-its-own-norm", A, with_scores(FULL, clip_grad_norm=0.75), cell=CLIP,
        old="            g.mul_(factor)",
        new="            g.mul_(torch.clamp(max_norm / (torch.linalg.vector_norm(g, norm_type) + 1e-6), max=1.0))",
        messages=("each tensor is clipped by its own norm",),
    ),
    # No clamp at 1: small gradients are blown up to max_norm (1 of 8 fails).
    Submission(
        "rescales-small-gradients-up", A, with_scores(FULL, clip_grad_norm=2.625), cell=CLIP,
        old="torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)", new="max_norm / (total_norm + 1e-6)",
        messages=("the gradients are always rescaled to max_norm, also when they are smaller",),
    ),
    # Python's min for the factor: min(1.0, nan) is 1.0, so a nan norm leaves the gradients
    # as they are instead of making them nan; only the non-finite check fails (1 of 8).
    Submission(
        "python-min-keeps-a-nan-norm-out", A, with_scores(FULL, clip_grad_norm=2.625), cell=CLIP,
        old="torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)", new="min(1.0, max_norm / (total_norm + 1e-6))",
        messages=("Python's min(1.0, max_norm / (norm + 1e-6))",),
    ),
    # New .grad tensors instead of scaling the caller's in place (3 of 8).
    Submission(
        "replaces-the-gradients", A, with_scores(FULL, clip_grad_norm=1.875), cell=CLIP,
        old="        for g in grads:\n            g.mul_(factor)",
        new="        for p in parameters:\n            if p.grad is not None:\n                p.grad = p.grad * factor",
        messages=("p.grad = p.grad * factor instead of p.grad.mul_(factor)",),
    ),
    # optimizer.step() on every step: Adam counts the skipped steps and takes the nan (2 of 9).
    Submission(
        "steps-on-overflow", A, with_scores(FULL, loss_scaler=3.1111), cell=SCALER,
        old="        if not self.found_inf:\n            optimizer.step()", new="        optimizer.step()",
        messages=("optimizer.step() runs on a skipped step too, which advances Adam's step counter",),
    ),
    # A skipped step counted as a good one: the scale grows one step early after an overflow (3 of 9).
    Submission(
        "grows-on-skipped-steps", A, with_scores(FULL, loss_scaler=2.6667), cell=SCALER,
        old="        else:\n            self.good_steps += 1", new="        if True:\n            self.good_steps += 1",
        messages=("a skipped step is counted as a good one",),
    ),
    # step() unscales again after unscale_(): the gradients are divided by the scale twice (1 of 9).
    Submission(
        "unscales-twice", A, with_scores(FULL, loss_scaler=3.5556), cell=SCALER,
        old="        if self.found_inf is None:\n            self.unscale_(optimizer)",
        new="        self.unscale_(optimizer)",
        messages=("step() unscales again after unscale_()",),
    ),
    # The masters are updated but never copied into the bfloat16 weights (2 of 8).
    Submission(
        "master-not-copied-back", A, with_scores(FULL, master_adam_step=3.0), cell=MASTER,
        old="            p.copy_(w)", new="            pass",
        messages=("the master weights are not copied back",),
    ),
    # The update applied to the bfloat16 weight and the master copied from it: the moments
    # are right (1) and master and weight agree (2), but the masters are Adam's only where
    # the update survives bfloat16's rounding, never with small updates (5 of 8 lost).
    Submission(
        "updates-the-bfloat16-weight", A, with_scores(FULL, master_adam_step=1.5), cell=MASTER,
        old="            w.sub_(lr * m_hat / (v_hat.sqrt() + eps))\n            p.copy_(w)",
        new="            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))\n            w.copy_(p)",
        messages=("the update is applied to the bfloat16 weight",),
    ),
    # The decay's progress counted from one step later: wrong from the first decay step on,
    # in the stable-phase, decay and no-warmup checks (5 of 8 lost).
    Submission(
        "decay-one-step-early", A, with_scores(FULL, wsd_scheduler=1.125), cell="wsd-scheduler-code",
        old="(t - W - S) / D", new="(t - W - S + 1) / D",
        messages=("the decay is one step early",),
    ),
    # PyTorch's own implementations, called or subclassed: refused while the checks run.
    Submission(
        "calls-torch-clip-grad-norm", A, with_scores(FULL, clip_grad_norm=0.0), cell=CLIP,
        old=reference_code(A)[CLIP],
        new="def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):\n"
            "    return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)\n",
        messages=("this part asks you to write clip_grad_norm_ yourself",),
    ),
    Submission(
        "subclasses-grad-scaler", A, with_scores(FULL, loss_scaler=0.0), cell=SCALER,
        old=reference_code(A)[SCALER],
        new="class LossScaler(torch.amp.GradScaler):\n"
            "    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):\n"
            "        super().__init__(\"cpu\", init_scale, growth_factor, backoff_factor, growth_interval)\n",
        messages=("this part asks you to write the loss scaling yourself",),
    ),
]
