"""Assignment 02 (momentum): the reference, the blank release, and realistic mistakes, with
the points each test cell must award and what the feedback must say."""

from submissions import Submission, optimizer_borrowings, with_scores

A = "02-momentum"
FULL = {"momentum-ema-tests": 2.0, "momentum-step-tests": 3.0, "momentum-rate-tests": 3.0,
        "momentum-optimizer-tests": 4.0}
STEP_BODY = (
    '                d_p = -p.grad if group["maximize"] else p.grad\n'
    '                if group["weight_decay"] != 0:\n'
    '                    d_p = d_p.add(p, alpha=group["weight_decay"])\n'
    "                if mu != 0:\n"
    "                    state = self.state[p]\n"
    '                    if "momentum_buffer" not in state:\n'
    '                        state["momentum_buffer"] = d_p.clone()\n'
    "                    else:\n"
    '                        state["momentum_buffer"].mul_(mu).add_(d_p, alpha=1 - group["dampening"])\n'
    '                    buf = state["momentum_buffer"]\n'
    '                    d_p = d_p.add(buf, alpha=mu) if group["nesterov"] else buf\n'
    '                p.add_(d_p, alpha=-group["lr"])\n'
)
DECAY = (
    '                if group["weight_decay"] != 0:\n'
    '                    d_p = d_p.add(p, alpha=group["weight_decay"])\n'
)
STEP_LINE = '                p.add_(d_p, alpha=-group["lr"])\n'
BUFFER_UPDATE = (
    "            if buffers[i] is None:\n"
    "                buffers[i] = g.detach().clone()\n"
    "            else:\n"
    "                buffers[i].mul_(momentum).add_(g, alpha=1 - dampening)\n"
)


SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # Checks of momentum-ema weigh 2:1:1; swapped weights fail only the value check.
    Submission(
        "ema-weights-swapped", A, with_scores(FULL, momentum_ema=1.0), cell="momentum-ema-code",
        old="m.mul_(beta).add_(x, alpha=1 - beta)", new="m.mul_(1 - beta).add_(x, alpha=beta)",
        messages=("Likely mistake: the weights are swapped",),
    ),
    # PyTorch's momentum buffer where the EMA is asked: again only the value check fails.
    Submission(
        "ema-as-momentum-buffer", A, with_scores(FULL, momentum_ema=1.0), cell="momentum-ema-code",
        old="m.mul_(beta).add_(x, alpha=1 - beta)", new="m.mul_(beta).add_(x)",
        messages=("is PyTorch's momentum buffer",),
    ),
    # The EMA form where PyTorch's is asked: the three comparisons with torch.optim.SGD
    # (plain 2, dampening 1, Nesterov 1 of 5) fail; the buffer bookkeeping (1) passes.
    Submission(
        "step-ema-form", A, with_scores(FULL, momentum_step=0.6), cell="momentum-step-code",
        old=BUFFER_UPDATE,
        new="            if buffers[i] is None:\n"
            "                buffers[i] = torch.zeros_like(g)\n"
            "            buffers[i].mul_(momentum).add_(g, alpha=1 - momentum)\n",
        messages=("this is the EMA form",),
    ),
    # A buffer started at zero instead of at g: identical to PyTorch without dampening, so
    # only the dampening check (1 of 5) fails.
    Submission(
        "step-buffer-from-zero", A, with_scores(FULL, momentum_step=2.4), cell="momentum-step-code",
        old=BUFFER_UPDATE,
        new="            if buffers[i] is None:\n"
            "                buffers[i] = torch.zeros_like(g)\n"
            "            buffers[i].mul_(momentum).add_(g, alpha=1 - dampening)\n",
        messages=("a buffer started at zero, or dampening applied on the first step",),
    ),
    # The Nesterov direction built from the buffer (b + μb): only the Nesterov check
    # (1 of 5) fails.
    Submission(
        "nesterov-look-ahead-twice", A, with_scores(FULL, momentum_step=2.4),
        cell="momentum-step-code",
        old="direction = g.add(buffers[i], alpha=momentum)",
        new="direction = buffers[i].add(buffers[i], alpha=momentum)",
        messages=("the Nesterov look-ahead is applied twice",),
    ),
    # beta returned as the rate instead of its square: the beta check and the measured
    # contraction (2 of 4) fail.
    Submission(
        "momentum-not-squared", A, with_scores(FULL, momentum_rate=1.5), cell="momentum-rate-code",
        old="return lr, rate**2, rate", new="return lr, rate, rate",
        messages=("beta is the square of the rate",),
    ),
    # Checks of momentum-optimizer weigh 1:3:2:2:1:1:1:1. Weight decay moved after the
    # momentum fails the weight-decay-and-maximize check (2 of 12).
    Submission(
        "decay-after-momentum", A, with_scores(FULL, momentum_optimizer=3.3333),
        cell="momentum-optimizer-code",
        old=STEP_BODY,
        new=STEP_BODY.replace(DECAY, "").replace(STEP_LINE, DECAY + STEP_LINE),
        messages=("weight decay is added to the step after momentum",),
    ),
    # maximize applied by flipping the step's sign at the end, so the decay flips too:
    # the same check (2 of 12) fails.
    Submission(
        "maximize-flips-the-step", A, with_scores(FULL, momentum_optimizer=3.3333),
        cell="momentum-optimizer-code",
        old=STEP_BODY,
        new=STEP_BODY.replace('-p.grad if group["maximize"] else p.grad', "p.grad").replace(
            'alpha=-group["lr"]', 'alpha=group["lr"] if group["maximize"] else -group["lr"]'),
        messages=("maximize negates the whole step",),
    ),
    # The Nesterov condition is not validated: only the invalid-settings check (1 of 12)
    # fails.
    Submission(
        "nesterov-not-validated", A, with_scores(FULL, momentum_optimizer=3.6667),
        cell="momentum-optimizer-code",
        old="        if nesterov and (momentum <= 0 or dampening != 0):\n"
            '            raise ValueError("Nesterov momentum requires a momentum and zero dampening")\n',
        new="",
        messages=("nesterov=True) was accepted, but torch.optim.SGD raises",),
    ),
    # Nesterov's direction built in place on the caller's gradient: the values are right,
    # the gradients are not left alone (the state check, 1 of 5).
    Submission(
        "nesterov-on-the-gradient", A, with_scores(FULL, momentum_step=2.4), cell="momentum-step-code",
        old="g.add(buffers[i], alpha=momentum) if nesterov", new="g.add_(buffers[i], alpha=momentum) if nesterov",
        messages=("grads[0] changed during the call (nesterov=True, call 1)",),
    ),
    # A list where the text shows a triple: accepted, as a pair is in optimal_step_size.
    Submission(
        "triple-as-a-list", A, FULL, cell="momentum-rate-code",
        old="    return lr, rate**2, rate\n", new="    return [lr, rate**2, rate]\n",
    ),
]

#: Borrowings of torch's optimizers (tests/test_borrowing.py).
BORROWINGS = optimizer_borrowings(A, "momentum-optimizer", "MomentumSGD", "SGD", "sgd")
