"""Assignment 03 (Adagrad and RMSprop): the reference, the blank release, and realistic
mistakes, with the points each test cell must award and what the feedback must say.

Check weights: adagrad-step 3:1:1:1 (value, sums in place, autograd, gradients kept);
rmsprop-step 3:1:1:1:1 (value, torch's defaults, averages in place, autograd, gradients
kept); rmsprop-optimizer 1:3:2:2:1:1:1:1:1:1 (is an optimizer with torch's defaults, plain
run, momentum, centered, weight decay, mixed groups, missing gradients, state_dict round
trip, closure, invalid settings).
"""

from submissions import Submission, optimizer_borrowings, with_scores

A = "03-rmsprop"
FULL = {"adagrad-step-tests": 3.0, "rmsprop-step-tests": 3.0, "rmsprop-optimizer-tests": 5.0}


def share(points, passed, total):
    return round(points * passed / total, 4)


SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # `s = s + g * g` rebinds the loop name: the caller's sums stay zero, so every step
    # divides by |g| alone. The value (3) and sums-in-place (1) checks fail: 2 of 6.
    Submission(
        "adagrad-sum-not-kept", A, with_scores(FULL, adagrad_step=share(3, 2, 6)),
        cell="adagrad-step-code", old="s.addcmul_(g, g)", new="s = s + g * g",
        messages=("the sums are not carried from call to call",
                  "every tensor in `sums` is still zero"),
    ),
    # Keras's and TensorFlow's placement of epsilon: the value check (3) and the defaults
    # check (1, whose tiny gradients make eps=1e-8 matter) fail: 3 of 7.
    Submission(
        "rmsprop-eps-inside-sqrt", A, with_scores(FULL, rmsprop_step=share(3, 3, 7)),
        cell="rmsprop-step-code", old="p.addcdiv_(g, v.sqrt().add_(eps), value=-lr)",
        new="p.addcdiv_(g, (v + eps).sqrt(), value=-lr)",
        messages=("Likely mistake: epsilon is added inside the square root",),
    ),
    # The average of g instead of g²: negative averages and NaN steps. Value (3), defaults
    # (1) and the averages kept in place (1) fail: 2 of 7.
    Submission(
        "rmsprop-gradient-not-squared", A, with_scores(FULL, rmsprop_step=share(3, 2, 7)),
        cell="rmsprop-step-code", old="v.mul_(alpha).addcmul_(g, g, value=1 - alpha)",
        new="v.mul_(alpha).add_(g, alpha=1 - alpha)",
        messages=("the running average is of the gradient g instead of its square g²",),
    ),
    # Adagrad's sum where RMSprop's moving average is asked: value, defaults and averages
    # fail: 2 of 7.
    Submission(
        "rmsprop-adagrad-sum", A, with_scores(FULL, rmsprop_step=share(3, 2, 7)),
        cell="rmsprop-step-code", old="v.mul_(alpha).addcmul_(g, g, value=1 - alpha)",
        new="v.addcmul_(g, g)",
        messages=("the squared gradients are summed, as Adagrad does",),
    ),
    # alpha and 1 - alpha swapped in the optimizer: every run and the closure's step are
    # wrong; only "is an optimizer" and "rejects invalid settings" pass: 2 of 14.
    Submission(
        "optimizer-alpha-swapped", A, with_scores(FULL, rmsprop_optimizer=share(5, 2, 14)),
        cell="rmsprop-optimizer-code",
        old="square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)",
        new="square_avg.mul_(1 - alpha).addcmul_(grad, grad, value=alpha)",
        messages=("Likely mistake: alpha and 1 − alpha are swapped",),
    ),
    # v − ḡ instead of v − ḡ²: the centered (2), mixed groups (1), missing gradients (1)
    # and state_dict (1) runs, all centered, fail: 9 of 14.
    Submission(
        "optimizer-centered-mean-not-squared", A,
        with_scores(FULL, rmsprop_optimizer=share(5, 9, 14)),
        cell="rmsprop-optimizer-code",
        old="avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()",
        new="avg = (square_avg - grad_avg).sqrt()",
        messages=("the centered variance subtracts the mean ḡ instead of its square",),
    ),
    # Momentum on the raw gradient, divided afterwards: every run with momentum fails
    # (momentum 2, centered 2, groups 1, missing gradients 1, state_dict 1): 7 of 14.
    Submission(
        "optimizer-momentum-before-division", A,
        with_scores(FULL, rmsprop_optimizer=share(5, 7, 14)),
        cell="rmsprop-optimizer-code",
        old="buf.mul_(momentum).addcdiv_(grad, avg)\n                    p.add_(buf, alpha=-lr)",
        new="buf.mul_(momentum).add_(grad)\n                    p.addcdiv_(buf, avg, value=-lr)",
        messages=("Likely mistake: momentum is applied to the raw gradient before the division",),
    ),
    # AdamW's decoupled decay instead of torch's L2 gradient: the weight-decay (1) and
    # mixed-groups (1) runs fail: 12 of 14.
    Submission(
        "optimizer-weight-decay-after-scaling", A,
        with_scores(FULL, rmsprop_optimizer=share(5, 12, 14)),
        cell="rmsprop-optimizer-code",
        old="grad = grad.add(p, alpha=weight_decay)",
        new="p.mul_(1 - lr * weight_decay)",
        messages=("Likely mistake: weight decay is applied after the scaling",),
    ),
    # A missing gradient treated as zero: every scripted run has missing gradients and
    # fails; "is an optimizer", the closure and the invalid settings pass: 3 of 14.
    Submission(
        "optimizer-missing-gradient-as-zero", A,
        with_scores(FULL, rmsprop_optimizer=share(5, 3, 14)),
        cell="rmsprop-optimizer-code",
        old="if p.grad is None:\n                    continue\n                grad = p.grad",
        new="grad = p.grad if p.grad is not None else torch.zeros_like(p)",
        messages=("a parameter without a gradient was treated as if its gradient were zero",),
    ),
    # eps = 0 refused, which torch accepts: the settings check (1 of its weights) fails.
    Submission(
        "rejects-zero-eps", A, with_scores(FULL, rmsprop_optimizer=share(5, 13, 14)), cell="rmsprop-optimizer-code",
        old="            if value < 0.0:\n", new='            if value < 0.0 or (name == "epsilon value" and value == 0):\n',
        messages=("torch.optim.RMSprop accepts RMSprop([p], eps=0.0)",),
    ),
]

#: Borrowings of torch's optimizers (tests/test_borrowing.py).
BORROWINGS = optimizer_borrowings(A, "rmsprop-optimizer", "RMSprop", "RMSprop", "rmsprop")
