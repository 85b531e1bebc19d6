"""Assignment 08 (beyond Adam): the reference, the blank release, and realistic mistakes,
with the points each test cell must award and what the feedback must say.

Check weights, for reading the predictions:
radam-step (3 points): the first steps 1, torch.optim.RAdam 2, weight decay 2 (of 5).
lion-optimizer (3 points): defaults 1, Algorithm 2 3, state_dict and closure 1 (of 5).
newton-schulz (3 points): the iteration 2, bfloat16 1, the Gram matrix's side 1 (of 4).
muon-optimizer (4 points): defaults 1, torch's rule 3, state_dict 1 (of 5). Muon
orthogonalizes with the learner's newton_schulz, so a mistake there costs Muon's points too.
"""

from submissions import Submission, with_scores

A = "08-beyond-adam"
FULL = {"radam-step-tests": 3.0, "lion-optimizer-tests": 3.0, "newton-schulz-tests": 3.0,
        "muon-optimizer-tests": 4.0}
RADAM = "radam-step-code"
LION = "lion-optimizer-code"
NS = "newton-schulz-code"
MUON = "muon-optimizer-code"

SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True, messages=("raised NotImplementedError",)),
    # The paper's threshold: at t = 5, ρ₅ is between 4 and 5, so the step is rectified one
    # step early; every check reaches t = 5 (0 of 5).
    Submission(
        "radam-threshold-of-the-paper", A, with_scores(FULL, radam_step=0.0), cell=RADAM,
        old="if rho > 5:", new="if rho > 4:",
        messages=("Likely mistake: the threshold is ρ_t > 4 (the paper's)",),
    ),
    # ε added to the corrected √v̂, as in Adam: the first steps, which do not divide, pass (1 of 5).
    Submission(
        "radam-epsilon-as-in-adam", A, with_scores(FULL, radam_step=0.6), cell=RADAM,
        old="(1 - beta2 ** t) ** 0.5 * m_hat / (v.sqrt() + eps)",
        new="m_hat / ((v / (1 - beta2 ** t)).sqrt() + eps)",
        messages=("Likely mistake: ε is added to the bias-corrected √v̂ (Adam's placement)",),
    ),
    # Decay always added to the gradient: only the decay check fails (3 of 5).
    Submission(
        "radam-decay-never-decoupled", A, with_scores(FULL, radam_step=1.8), cell=RADAM,
        old="            if weight_decay and decoupled_weight_decay:\n"
            "                p.mul_(1 - lr * weight_decay)\n"
            "            elif weight_decay:\n",
        new="            if weight_decay:\n",
        messages=("Likely mistake: with decoupled_weight_decay=True the decay is added to the gradient",),
    ),
    # The sign of the gradient inside the interpolation: the update is no longer ±η; only
    # the defaults pass (1 of 5).
    Submission(
        "lion-sign-before-the-interpolation", A, with_scores(FULL, lion_optimizer=0.6), cell=LION,
        old="update = (beta1 * m + (1 - beta1) * p.grad).sign_()",
        new="update = beta1 * m + (1 - beta1) * p.grad.sign()",
        messages=("Likely mistake: the sign is applied before the interpolation",),
    ),
    # One β for both: the momentum kept with β₁ (1 of 5).
    Submission(
        "lion-momentum-kept-with-beta1", A, with_scores(FULL, lion_optimizer=0.6), cell=LION,
        old="m.mul_(beta2).add_(p.grad, alpha=1 - beta2)", new="m.mul_(beta1).add_(p.grad, alpha=1 - beta1)",
        messages=("Likely mistake: the momentum kept is β₁·m + (1 − β₁)·g",),
    ),
    # L2 instead of decoupled decay: the decay enters the gradient, and the sign erases its
    # size; the closure's run has no decay, but the round trip's has (1 of 5).
    Submission(
        "lion-decay-in-the-gradient", A, with_scores(FULL, lion_optimizer=0.6), cell=LION,
        old="                update = (beta1 * m + (1 - beta1) * p.grad).sign_()\n"
            "                p.mul_(1 - group[\"lr\"] * group[\"weight_decay\"]).add_(update, alpha=-group[\"lr\"])\n"
            "                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)\n",
        new="                g = p.grad + group[\"weight_decay\"] * p\n"
            "                update = (beta1 * m + (1 - beta1) * g).sign_()\n"
            "                p.add_(update, alpha=-group[\"lr\"])\n"
            "                m.mul_(beta2).add_(g, alpha=1 - beta2)\n",
        messages=("Likely mistake: the weight decay is added to the gradient (coupled)",),
    ),
    # The iteration on X @ X.T of a tall matrix: the same values, but a rows × rows Gram
    # matrix (3 of 4); Muon's results are right.
    Submission(
        "newton-schulz-on-the-long-side", A, with_scores(FULL, newton_schulz=2.25), cell=NS,
        old="    X = G.mT if G.shape[0] > G.shape[1] else G\n", new="    X = G\n",
        more=((NS, "    return X.mT if G.shape[0] > G.shape[1] else X\n", "    return X\n"),),
        messages=("Likely mistake: the Newton–Schulz iteration runs on the wrong side of a tall matrix",),
    ),
    # Transposed for the iteration, never back: tall matrices come back transposed; only the
    # Gram check passes (1 of 4), and Muon fails on every tall matrix (1 of 5).
    Submission(
        "newton-schulz-not-transposed-back", A, with_scores(FULL, newton_schulz=0.75, muon_optimizer=0.8),
        cell=NS, old="    return X.mT if G.shape[0] > G.shape[1] else X\n", new="    return X\n",
        messages=("Likely mistake: a tall matrix is transposed before the iteration but not transposed back",),
    ),
    # The cubic iteration: far from orthogonal in five steps (1 of 4); Muon follows it (1 of 5).
    Submission(
        "newton-schulz-cubic", A, with_scores(FULL, newton_schulz=0.75, muon_optimizer=0.8), cell=NS,
        old="a, b, c = 3.4445, -4.7750, 2.0315", new="a, b, c = 1.5, -0.5, 0.0",
        messages=("Likely mistake: this is the cubic iteration",),
    ),
    # A vector refused, but not with torch's ValueError: only the defaults check fails (4 of 5).
    Submission(
        "muon-refuses-a-vector-with-type-error", A, with_scores(FULL, muon_optimizer=3.2), cell=MUON,
        old="raise ValueError(", new="raise TypeError(",
        messages=("was refused, but not with ValueError",),
    ),
    # Nesterov ignored: the update orthogonalized is always B (1 of 5).
    Submission(
        "muon-nesterov-ignored", A, with_scores(FULL, muon_optimizer=0.8), cell=MUON,
        old='update = p.grad.lerp(buffer, mu) if group["nesterov"] else buffer', new="update = buffer",
        messages=("Likely mistake: nesterov is ignored",),
    ),
    # The learning rate not adjusted to the shape (1 of 5).
    Submission(
        "muon-learning-rate-not-adjusted", A, with_scores(FULL, muon_optimizer=0.8), cell=MUON,
        old='                if group["adjust_lr_fn"] == "match_rms_adamw":\n'
            "                    adjusted = 0.2 * lr * max(rows, cols) ** 0.5\n"
            "                else:\n"
            "                    adjusted = lr * max(1, rows / cols) ** 0.5\n",
        new="                adjusted = lr\n",
        messages=("Likely mistake: the learning rate is not adjusted to the matrix's shape",),
    ),
    # The decay after the update (1 of 5).
    Submission(
        "muon-decay-after-the-update", A, with_scores(FULL, muon_optimizer=0.8), cell=MUON,
        old='                p.mul_(1 - lr * group["weight_decay"])\n'
            '                p.add_(newton_schulz(update, group["ns_steps"], group["eps"]), alpha=-adjusted)\n',
        new='                p.add_(newton_schulz(update, group["ns_steps"], group["eps"]), alpha=-adjusted)\n'
            '                p.mul_(1 - lr * group["weight_decay"])\n',
        messages=("Likely mistake: the decay is applied after the update",),
    ),
]
