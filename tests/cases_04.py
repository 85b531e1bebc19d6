"""Assignment 04 (Adam): the reference, the blank release, and realistic mistakes, with
the points each test cell must award and what the feedback must say.

Check weights, for reading the predictions:
adam-step (4 points): m 1, v 1, parameters 3, tiny gradients 1, in place 1 (of 7).
adam-optimizer (6 points): defaults 1, torch.optim.Adam over many steps 3, per-group settings 2,
weight decay 1, AMSGrad 1, maximize 1, tiny gradients 1, state_dict 1, ValueError 1, closure 1
(of 13). adamw-optimizer (3 points): defaults 1, torch.optim.AdamW over many steps 3, default
decay 1, AMSGrad and maximize 1, state_dict 1 (of 7). adam-scalar-loop (4 points): plain floats
1, torch with LambdaLR 3, cosine schedule 1, defaults 1, tiny gradients 1 (of 7).
AdamW subclasses the learner's Adam, so a mistake in Adam's step costs AdamW's points too.
"""

from submissions import Submission, borrowing, optimizer_borrowings, with_scores

A = "04-adam"
FULL = {"adam-step-tests": 4.0, "adam-optimizer-tests": 6.0, "adamw-optimizer-tests": 3.0,
        "adam-scalar-loop-tests": 4.0}

SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # The moments are right (2 of 7) and so is the in-place update (1 of 7); the parameters
    # and the tiny-gradient run fail: 3/7 of 4.
    Submission(
        "no-bias-correction", A, with_scores(FULL, adam_step=1.7143), cell="adam-step-code",
        old="            m_hat = m / (1 - beta1 ** t)\n            v_hat = v / (1 - beta2 ** t)\n",
        new="            m_hat = m\n            v_hat = v\n",
        messages=("Likely mistake: no bias correction",),
    ),
    # As above, 3/7 of 4: only the parameters (with ε up to 0.1, and with tiny gradients) differ.
    Submission(
        "epsilon-inside-the-root", A, with_scores(FULL, adam_step=1.7143), cell="adam-step-code",
        old="(v_hat.sqrt() + eps)", new="(v_hat + eps).sqrt()",
        messages=("Likely mistake: ε is inside the square root",),
    ),
    # β₂ averages the gradient and β₁ its square: both moments, the parameters and the tiny
    # run fail; only the in-place check passes: 1/7 of 4.
    Submission(
        "betas-swapped", A, with_scores(FULL, adam_step=0.5714), cell="adam-step-code",
        old="            m.mul_(beta1).add_((1 - beta1) * g)\n            v.mul_(beta2).add_((1 - beta2) * g * g)\n"
            "            m_hat = m / (1 - beta1 ** t)\n            v_hat = v / (1 - beta2 ** t)\n",
        new="            m.mul_(beta2).add_((1 - beta2) * g)\n            v.mul_(beta1).add_((1 - beta1) * g * g)\n"
            "            m_hat = m / (1 - beta2 ** t)\n            v_hat = v / (1 - beta1 ** t)\n",
        messages=("Likely mistake: β₁ and β₂ are swapped",),
    ),
    # Dividing m in place stores m̂: the first moment, the parameters and the tiny run fail;
    # v and the in-place check pass: 2/7 of 4.
    Submission(
        "corrected-moment-stored", A, with_scores(FULL, adam_step=1.1429), cell="adam-step-code",
        old="m_hat = m / (1 - beta1 ** t)", new="m_hat = m.div_(1 - beta1 ** t)",
        messages=("the bias-corrected m̂ is written back into the stored first moment",),
    ),
    # The article's optimizer: ε meets the uncorrected √v. Every run of Adam fails (in float64
    # even with ε = 1e-8, where a gradient is small); the defaults, ValueError and closure checks
    # pass: 3/13 of 6. AdamW inherits the step: only its defaults check passes, 1/7 of 3.
    Submission(
        "efficient-form", A, with_scores(FULL, adam_optimizer=1.3846, adamw_optimizer=0.4286),
        cell="adam-optimizer-code",
        old="                m_hat = m / (1 - beta1 ** t)\n                v_hat = v / (1 - beta2 ** t)\n"
            '                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))\n',
        new='                step_size = group["lr"] * (1 - beta2 ** t) ** 0.5 / (1 - beta1 ** t)\n'
            '                p.sub_(step_size * m / (v.sqrt() + group["eps"]))\n',
        messages=("Likely mistake: this is the paper's \"efficient\" form",),
    ),
    # Counting after use makes t = 0 on the first step: 1 − β⁰ = 0, every parameter turns NaN.
    # Only the defaults and ValueError checks pass (2/13 of 6); AdamW keeps 1/7 of 3.
    Submission(
        "step-count-from-zero", A, with_scores(FULL, adam_optimizer=0.9231, adamw_optimizer=0.4286),
        cell="adam-optimizer-code",
        old='                state["step"] += 1\n                t = state["step"]\n',
        new='                t = state["step"]\n                state["step"] += 1\n',
        messages=("such as a bias correction 1 − βᵗ computed with t = 0",),
    ),
    # The maximum of v̂ instead of v: every run with an AMSGrad group fails (per-group 2, AMSGrad
    # 1, state_dict 1): 9/13 of 6. AdamW's AMSGrad-and-maximize check fails: 6/7 of 3.
    Submission(
        "amsgrad-max-of-corrected-v", A,
        with_scores(FULL, adam_optimizer=4.1538, adamw_optimizer=2.5714), cell="adam-optimizer-code",
        old='                if group["amsgrad"]:\n'
            '                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])\n'
            '                    v = state["max_exp_avg_sq"]\n'
            "                m_hat = m / (1 - beta1 ** t)\n                v_hat = v / (1 - beta2 ** t)\n",
        new="                m_hat = m / (1 - beta1 ** t)\n                v_hat = v / (1 - beta2 ** t)\n"
            '                if group["amsgrad"]:\n'
            '                    torch.maximum(state["max_exp_avg_sq"], v_hat, out=state["max_exp_avg_sq"])\n'
            '                    v_hat = state["max_exp_avg_sq"]\n',
        messages=("Likely mistake: AMSGrad takes the maximum of the bias-corrected v̂",),
    ),
    # AdamW with L2 (Adam's rule): every run with a decay fails; its defaults pass: 1/7 of 3.
    Submission(
        "adamw-coupled-decay", A, with_scores(FULL, adamw_optimizer=0.4286), cell="adamw-optimizer-code",
        old='        p.mul_(1 - group["lr"] * group["weight_decay"])\n        return grad\n',
        new='        return grad + group["weight_decay"] * p\n',
        messages=("Likely mistake: the weight decay is coupled",),
    ),
    # θ(1 − λ) instead of θ(1 − ηλ): as above, 1/7 of 3.
    Submission(
        "adamw-decay-without-lr", A, with_scores(FULL, adamw_optimizer=0.4286), cell="adamw-optimizer-code",
        old='p.mul_(1 - group["lr"] * group["weight_decay"])', new='p.mul_(1 - group["weight_decay"])',
        messages=("Likely mistake: the decay is not scaled by the learning rate",),
    ),
    # cos(π(t + 1)/T): every run of the loop fails; only the plain-floats check passes: 1/7 of 4.
    Submission(
        "cosine-off-by-one", A, with_scores(FULL, adam_scalar_loop=0.5714), cell="adam-scalar-loop-code",
        old="math.cos(math.pi * step / num_steps)", new="math.cos(math.pi * (step + 1) / num_steps)",
        messages=("Likely mistake: the cosine uses t + 1",),
    ),
    # Each of these fails one of Adam's thirteen unit weights: 6 × 12/13.
    Submission(
        "rejects-zero-lr", A, with_scores(FULL, adam_optimizer=5.5385), cell="adam-optimizer-code",
        old="if not 0.0 <= lr:", new="if not 0.0 < lr:",
        messages=("torch.optim.Adam accepts Adam([p], lr=0.0)",),
    ),
    Submission(
        "rejects-zero-beta1", A, with_scores(FULL, adam_optimizer=5.5385), cell="adam-optimizer-code",
        old="0.0 <= betas[0] < 1.0", new="0.0 < betas[0] < 1.0",
        messages=("torch.optim.Adam accepts Adam([p], betas=(0.0, 0.999))",),
    ),
    # Moments under names of its own: its own round trip works, torch's state_dict does not.
    Submission(
        "state-names-of-its-own", A, with_scores(FULL, adam_optimizer=5.5385), cell="adam-optimizer-code",
        old='"exp_avg"]', new='"m"]',
        messages=("Likely mistake: the state is not kept under torch's names",),
    ),
    # L2 decay inline in step(): Adam's own runs are right but apply_weight_decay is never
    # called (1 of 13), so AdamW's override never runs; AdamW's decay runs fail (6 of 7)
    # and the message blames Part 2, not AdamW.
    Submission(
        "decay-inline-in-step", A, with_scores(FULL, adam_optimizer=5.5385, adamw_optimizer=0.4286),
        cell="adam-optimizer-code",
        old="grad = self.apply_weight_decay(p, grad, group)",
        new='grad = grad + group["weight_decay"] * p if group["weight_decay"] else grad',
        messages=("does not get each parameter's gradient from self.apply_weight_decay",
                  "Likely mistake: Part 2's Adam.step() applies the weight decay itself"),
    ),
    # State created in __init__: a group added by add_param_group() has none (1 of 13).
    Submission(
        "state-created-in-init", A, with_scores(FULL, adam_optimizer=5.5385), cell="adam-optimizer-code",
        old="        super().__init__(params, defaults)\n",
        new="        super().__init__(params, defaults)\n"
            "        for group in self.param_groups:\n"
            "            for p in group[\"params\"]:\n"
            "                self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p),\n"
            "                                     max_exp_avg_sq=torch.zeros_like(p))\n",
        more=(("adam-optimizer-code", "                if not state:\n", "                if False:\n"),),
        messages=("parameters added later with add_param_group() get theirs",),
    ),
    # The parameters moved before the moments: at t = 1 they stand still, though the moments
    # are right; the message says so rather than blaming a rebound name.
    Submission(
        "params-before-moments", A, with_scores(FULL, adam_step=1.1429), cell="adam-step-code",
        old="            m.mul_(beta1).add_((1 - beta1) * g)\n            v.mul_(beta2).add_((1 - beta2) * g * g)\n"
            "            m_hat = m / (1 - beta1 ** t)\n            v_hat = v / (1 - beta2 ** t)\n"
            "            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))\n",
        new="            m_hat = m / (1 - beta1 ** t)\n            v_hat = v / (1 - beta2 ** t)\n"
            "            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))\n"
            "            m.mul_(beta1).add_((1 - beta1) * g)\n            v.mul_(beta2).add_((1 - beta2) * g * g)\n",
        messages=("Likely mistake: the parameters are updated before the moments",),
    ),
]

#: Borrowings of torch's optimizers (tests/test_borrowing.py).
BORROWINGS = [
    *optimizer_borrowings(A, "adam-optimizer", "Adam", "Adam", "adam"),
    *optimizer_borrowings(A, "adamw-optimizer", "AdamW", "AdamW", "adamw"),
    # adam-step on a torch.optim.Adam whose state is the caller's moments.
    borrowing("direct", A, "adam-step",
              "def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    optimizer = torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)\n"
              "    for p, g, m, v in zip(params, grads, ms, vs):\n"
              "        p.grad = g\n"
              "        optimizer.state[p] = {'step': torch.tensor(t - 1.0), 'exp_avg': m, 'exp_avg_sq': v}\n"
              "    optimizer.step()\n"),
    borrowing("functional", A, "adam-step",
              "def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    steps = [torch.tensor(t - 1.0) for _ in params]\n"
              "    with torch.no_grad():\n"
              "        torch.optim._functional.adam(params, grads, ms, vs, [], steps, amsgrad=False, "
              "beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0, eps=eps, maximize=False)\n"),
    borrowing("importlib", A, "adam-step",
              "import importlib\n\n\n"
              "def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    single = importlib.import_module('torch.optim.adam')._single_tensor_adam\n"
              "    single(params, grads, ms, vs, [], [torch.tensor(t - 1.0) for _ in params], None, None, "
              "amsgrad=False, has_complex=False, beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0, eps=eps, "
              "maximize=False, capturable=False, differentiable=False)\n"),
    borrowing("fused", A, "adam-step",
              "def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    kernel = getattr(torch, '_fused_adam_')\n"
              "    kernel(params, grads, ms, vs, [], [torch.tensor(float(t)) for _ in params], lr=lr, beta1=beta1, "
              "beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)\n"),
    borrowing("from-import", A, "adam-step",
              "from torch.optim.adam import adam as library_adam\n\n\n"
              "def adam_step(params, grads, ms, vs, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):\n"
              "    library_adam(params, grads, ms, vs, [], [torch.tensor(t - 1.0) for _ in params], foreach=False, "
              "beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0, eps=eps, maximize=False, amsgrad=False)\n"),
]
