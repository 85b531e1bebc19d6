"""Assignment 05 (learning-rate schedules): the reference, the blank release, and realistic
mistakes, with the points each test cell must award and what the feedback must say."""

from submissions import Submission, with_scores

A = "05-schedules"
FULL = {"cosine-closed-form-tests": 2.0, "cosine-scheduler-tests": 4.0, "warmup-cosine-tests": 3.0,
        "schedule-training-tests": 3.0}
# Check weights: cosine-closed-form 1:2:1:1 (endpoints, every step, default lr_min, past T);
# cosine-scheduler 1:3:2:2:1:1 (starts at the base rates, T_max steps, eta_min, past T_max,
# state_dict, drives SGD); warmup-cosine 1:2:2:1:1:1 (step 0, warmup, decay, floor after T,
# no warmup, default min_ratio); schedule-training 1:1:2:1:1 (one rate per step, total_steps,
# rates, weights, target).
STEP_ORDER = "            optimizer.step()\n            scheduler.step()\n"


SUBMISSIONS = [
    Submission("reference", A, FULL),
    Submission("blank", A, {k: 0.0 for k in FULL}, blank=True,
               messages=("raised NotImplementedError",)),
    # (t + 1)/T: every value of the closed form is one step ahead, so all of part 1 fails.
    # The scheduler and the warmup's decay reuse cosine_lr and inherit the shift: only the
    # state_dict round trip (1 of 10) and the warmup's step 0 (1 of 8) still pass. Part 4
    # gets its schedule from the checks and keeps full marks.
    Submission(
        "closed-form-off-by-one", A,
        with_scores(FULL, cosine_closed_form=0.0, cosine_scheduler=0.4, warmup_cosine=0.375),
        cell="cosine-closed-form-code", old="progress = step / total_steps",
        new="progress = (step + 1) / total_steps",
        messages=("the step is off by one: this is η at t + 1",
                  "get_lr() returns the rate of last_epoch + 1"),
    ),
    # Clamping at T_max matches CosineAnnealingLR up to T_max and fails only the check past
    # it (2 of 10).
    Submission(
        "scheduler-clamps", A, with_scores(FULL, cosine_scheduler=3.2), cell="cosine-scheduler-code",
        old="cosine_lr(self.last_epoch, self.T_max,", new="cosine_lr(min(self.last_epoch, self.T_max), self.T_max,",
        messages=("the rate is clamped at T_max",),
    ),
    # eta_min not passed on: right while eta_min is 0, wrong in the eta_min check (2) and in
    # the past-T_max check, whose second case has an eta_min (2): 6 of 10.
    Submission(
        "scheduler-decays-to-zero", A, with_scores(FULL, cosine_scheduler=2.4), cell="cosine-scheduler-code",
        old="base_lr, self.eta_min)", new="base_lr)",
        messages=("eta_min is ignored, so the rate decays to zero instead of to eta_min",),
    ),
    # The closed form applied to the already-decayed group["lr"]: right at step 0 and
    # through a state_dict round trip (1 + 1 of 10), wrong from step 2 on.
    Submission(
        "scheduler-compounds", A, with_scores(FULL, cosine_scheduler=0.8), cell="cosine-scheduler-code",
        old="base_lr, self.eta_min) for base_lr in self.base_lrs]",
        new='group["lr"], self.eta_min)\n                for group in self.optimizer.param_groups]',
        messages=("the decay compounds step after step",),
    ),
    # Attributes set after super().__init__(), which already calls get_lr(): every
    # construction raises AttributeError.
    Submission(
        "scheduler-attributes-too-late", A, with_scores(FULL, cosine_scheduler=0.0),
        cell="cosine-scheduler-code",
        old="        self.T_max = T_max\n        self.eta_min = eta_min\n        super().__init__(optimizer, last_epoch)\n",
        new="        super().__init__(optimizer, last_epoch)\n        self.T_max = T_max\n        self.eta_min = eta_min\n",
        messages=("set self.T_max and self.eta_min *before* super().__init__",),
    ),
    # A ramp of step / W wastes step 0: the step-0 check (1) and the warmup check (2) fail,
    # 5 of 8 remain.
    Submission(
        "warmup-from-zero", A, with_scores(FULL, warmup_cosine=1.875), cell="warmup-cosine-code",
        old="return (step + 1) / warmup_steps", new="return step / warmup_steps",
        messages=("the warmup starts at zero on step 0",),
    ),
    # No ramp at all: the warmup runs at the peak. The step-0 check (1) and the warmup
    # check (2) fail, 5 of 8 remain.
    Submission(
        "warmup-at-the-peak", A, with_scores(FULL, warmup_cosine=1.875), cell="warmup-cosine-code",
        old="return (step + 1) / warmup_steps", new="return 1.0",
        messages=("the warmup starts at the peak",),
    ),
    # The ramp computed before the test on the step: identical for W > 0, ZeroDivisionError
    # for warmup_steps=0 (1 of 8).
    Submission(
        "warmup-divides-by-zero", A, with_scores(FULL, warmup_cosine=2.625), cell="warmup-cosine-code",
        old="        if step < warmup_steps:\n            return (step + 1) / warmup_steps\n",
        new="        ramp = (step + 1) / warmup_steps\n        if ramp <= 1.0:\n            return ramp\n",
        messages=("raised ZeroDivisionError", "the ramp (step + 1) / warmup_steps is still computed"),
    ),
    # No clamp after total_steps: the floor check (1) and the no-warmup check, which runs a
    # few steps past T (1), fail: 6 of 8.
    Submission(
        "warmup-keeps-going-round", A, with_scores(FULL, warmup_cosine=2.25), cell="warmup-cosine-code",
        old="min(step - warmup_steps, decay_steps)", new="step - warmup_steps",
        messages=("past total_steps the cosine keeps going round",),
    ),
    # scheduler.step() once per epoch: one rate per step is still recorded and total_steps
    # is right (1 + 1 of 6), but the rates (2), the weights (1) and the target (1) fail.
    Submission(
        "scheduler-stepped-per-epoch", A, with_scores(FULL, schedule_training=1.0),
        cell="schedule-training-code", old=STEP_ORDER,
        new="            optimizer.step()\n        scheduler.step()\n",
        messages=("the scheduler steps once per epoch instead of once per optimizer step",),
    ),
    # total_steps = epochs with a per-step scheduler.step(): CosineAnnealingLR goes round
    # its cosine every epoch; only the count of rates (1 of 6) passes.
    Submission(
        "total-steps-is-epochs", A, with_scores(FULL, schedule_training=0.5),
        cell="schedule-training-code", old="make_scheduler(optimizer, epochs * len(batches))",
        new="make_scheduler(optimizer, epochs)",
        messages=("total_steps counts epochs", "goes round its cosine again and again"),
    ),
    # scheduler.step() before optimizer.step(): the recorded rates are the schedule's, but
    # the optimizer runs one step ahead of it, so only the weights (1 of 6) are wrong; the
    # target is still reached.
    Submission(
        "scheduler-steps-first", A, with_scores(FULL, schedule_training=2.5),
        cell="schedule-training-code", old=STEP_ORDER,
        new="            scheduler.step()\n            optimizer.step()\n",
        messages=("the schedule runs one step ahead",),
    ),
    # last_epoch dropped: a scheduler built to resume starts again from step 0 (1 of 10).
    Submission(
        "last-epoch-dropped", A, with_scores(FULL, cosine_scheduler=3.6), cell="cosine-scheduler-code",
        old="super().__init__(optimizer, last_epoch)", new="super().__init__(optimizer)",
        messages=("Likely mistake: last_epoch is not passed on",),
    ),
    # t mod T restarts the schedule: named as such (not as lr_max and lr_min swapped, which
    # gives the same value at t = T only), with the size of the difference shown. Every
    # closed-form check fails; the scheduler built on it keeps its class, resume and SGD
    # checks (3 of 10), the warmup its construction and warmup checks (3 of 8).
    Submission(
        "cosine-restarts", A, with_scores(FULL, cosine_closed_form=0.0, cosine_scheduler=1.2, warmup_cosine=1.125),
        cell="cosine-closed-form-code",
        old="progress = step / total_steps", new="progress = (step % total_steps) / total_steps",
        messages=("Likely mistake: the schedule restarts at T", "they differ by up to"),
    ),
    # A list where the text shows (w, lrs): accepted.
    Submission(
        "pair-as-a-list", A, FULL, cell="schedule-training-code",
        old="    return w.detach(), lrs\n", new="    return [w.detach(), lrs]\n",
    ),
    # cos of a default float32 tensor: right to 7 digits only. The text asks for a Python
    # float (float64); the feedback names float32 wherever the rates fall short: the closed
    # form keeps its end points (1 of 5), the scheduler its class and resume checks (2 of
    # 10), the warmup its construction, warmup and floor checks (5 of 8).
    Submission(
        "cosine-in-float32", A, with_scores(FULL, cosine_closed_form=0.4, cosine_scheduler=0.8, warmup_cosine=1.875),
        cell="cosine-closed-form-code",
        old="math.cos(math.pi * progress)", new="float(torch.cos(torch.tensor(math.pi * progress)))",
        messages=("Likely mistake: the rates are computed in float32",),
    ),
]
