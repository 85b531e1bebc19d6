"""Assignment 01 (gradient descent): the reference, the blank release, and realistic
mistakes, with the points each test cell must award and what the feedback must say."""

from submissions import PATCH_GUARD, Submission, borrowing, optimizer_borrowings, with_scores

A = "01-gradient-descent"
FULL = {"gd-step-tests": 3.0, "gd-fit-tests": 3.0, "gd-step-size-tests": 2.0, "gd-optimizer-tests": 4.0}


SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # Checks of gd-step weigh 3:1:1:1; a flipped sign fails only the value check.
    Submission(
        "wrong-sign", A, with_scores(FULL, gd_step=1.5), cell="gd-step-code",
        old="p.sub_(g, alpha=lr)", new="p.add_(g, alpha=lr)",
        messages=("Likely mistake: the sign is flipped",),
    ),
    # Rebinding the loop variable changes nothing: the value and in-place checks fail.
    Submission(
        "not-in-place", A, with_scores(FULL, gd_step=1.0), cell="gd-step-code",
        old="p.sub_(g, alpha=lr)", new="p = p - lr * g",
        messages=("rebinds a local name",),
    ),
    # Updating w with autograd on makes it a non-leaf whose .grad stays None: every check
    # of the loop fails on the second step.
    Submission(
        "kept-in-graph", A, with_scores(FULL, gd_fit=0.0), cell="gd-fit-code",
        old="        with torch.no_grad():\n            w.sub_(w.grad, alpha=lr)\n        w.grad = None\n",
        new="        w = w - lr * w.grad\n",
        messages=("is not a leaf, so backward() leaves its .grad as None",),
    ),
    # One step short: the loss count, the losses and w fail (1+2+1 of 5); the target is met.
    Submission(
        "off-by-one", A, with_scores(FULL, gd_fit=0.6), cell="gd-fit-code",
        old="for _ in range(num_steps):", new="for _ in range(1, num_steps):",
        messages=("one step too few",),
    ),
    # The Hessian without 2/n: eta (2 of 5) and its consistency with the rate (1 of 5)
    # fail, but κ does not depend on the scale, so the rate (2 of 5) is right.
    Submission(
        "hessian-scale", A, with_scores(FULL, gd_step_size=0.8),
        cell="gd-step-size-code", old="H = (2.0 / X.shape[0]) * (X.T @ X)", new="H = X.T @ X",
        messages=("without the factor 2/n",),
    ),
    # The learning rate dropped from step(): only "is an optimizer" and "rejects lr < 0"
    # (1 + 1 of 8) pass.
    Submission(
        "lr-ignored", A, with_scores(FULL, gd_optimizer=1.0),
        cell="gd-optimizer-code", old='p.add_(p.grad, alpha=-group["lr"])', new="p.sub_(p.grad)",
        messages=("Likely mistake: the group's learning rate is ignored",),
    ),
    # A correct solution that writes a warning and a line to stderr keeps full marks.
    Submission(
        "noisy-but-correct", A, FULL, cell="gd-step-code",
        old="    with torch.no_grad():\n",
        new="    import sys, warnings\n    warnings.warn('checking my step')\n"
            "    print('debug: stepping', file=sys.stderr)\n    with torch.no_grad():\n",
    ),
    # lr = 0 refused: torch.optim.SGD accepts it, so the rejection check (1 of 8) fails.
    Submission(
        "rejects-zero-lr", A, with_scores(FULL, gd_optimizer=3.5), cell="gd-optimizer-code",
        old="        if lr < 0.0:\n", new="        if lr <= 0.0:\n",
        messages=("torch.optim.SGD accepts GradientDescent([p], lr=0.0)",),
    ),
    # A list where the text shows a pair: a pair is two values in order, whichever sequence
    # holds them (as optimal_step_size already accepted).
    Submission(
        "pair-as-a-list", A, FULL, cell="gd-fit-code",
        old="    return w.detach(), losses\n", new="    return [w.detach(), losses]\n",
    ),
    # `.data` assigned a new tensor: the caller's tensors change, which is what the text
    # asks of "in place"; full marks.
    Submission(
        "data-reassigned", A, FULL, cell="gd-step-code",
        old="p.sub_(g, alpha=lr)", new="p.data = p.data - lr * g",
    ),
]

#: Borrowings of torch's optimizers, each spelled differently; graded in the sandbox by
#: tests/test_borrowing.py, each earns nothing on its part.
BORROWINGS = [
    *optimizer_borrowings(A, "gd-optimizer", "GradientDescent", "SGD", "sgd"),
    borrowing("direct", A, "gd-step",
              "def gd_step(params, grads, lr):\n"
              "    for p, g in zip(params, grads):\n        p.grad = g\n"
              "    torch.optim.SGD(params, lr=lr).step()\n"),
    borrowing("getattr-strings", A, "gd-step",
              "def gd_step(params, grads, lr):\n"
              "    name = 'S' + 'GD'\n"
              "    for p, g in zip(params, grads):\n        p.grad = g\n"
              "    getattr(torch.optim, name)(params, lr=lr).step()\n"),
    borrowing("functional", A, "gd-step",
              "def gd_step(params, grads, lr):\n"
              "    with torch.no_grad():\n"
              "        torch.optim._functional.sgd(params, grads, [None] * len(params), weight_decay=0.0, "
              "momentum=0.0, lr=lr, dampening=0.0, nesterov=False, maximize=False)\n"),
    borrowing("fused", A, "gd-step",
              "from torch import _fused_sgd_ as fused\n\n\n"
              "def gd_step(params, grads, lr):\n"
              "    fused(params, grads, [], weight_decay=0.0, momentum=0.0, lr=lr, dampening=0.0, "
              "nesterov=False, maximize=False, is_first_step=True)\n"),
    borrowing("patched-guard", A, "gd-step", PATCH_GUARD +
              "import torch.optim as o\n\n\n"
              "def gd_step(params, grads, lr):\n"
              "    for p, g in zip(params, grads):\n        p.grad = g\n"
              "    o.SGD(params, lr=lr).step()\n"),
]
