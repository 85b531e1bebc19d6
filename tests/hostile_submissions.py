"""Hostile and broken submissions to assignment 01: what each tries, the score it must get,
and why. Every one is graded through the instructor's path (tests/test_hostile.py), in
one class with honest submissions whose grades must not move.

Points per test cell: gd-step 3, gd-fit 3, gd-step-size 2, gd-optimizer 4 (12 in all).
A prediction of None means the file cannot be read as a notebook: nbgrader records no
grade for it and the other submissions are graded as usual.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import nbformat

from submissions import Submission, grade_id, with_scores

A = "01-gradient-descent"
FULL = {"gd-step-tests": 3.0, "gd-fit-tests": 3.0, "gd-step-size-tests": 2.0, "gd-optimizer-tests": 4.0}
REFERENCE = Submission("reference", A, FULL)
WRONG_SIGN = ("p.sub_(g, alpha=lr)", "p.add_(g, alpha=lr)")
LR_IGNORED = ('p.add_(p.grad, alpha=-group["lr"])', "p.sub_(p.grad)")
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"


@dataclasses.dataclass(frozen=True)
class Hostile:
    """A submission: ``build(course)`` gives its bytes (``course`` is the course folder,
    which some attacks try to reach). ``scores`` predicts each test cell; ``why`` says
    what it tries and why that is the score; ``messages`` must appear in its feedback."""

    name: str
    why: str
    build: Callable[[Path], bytes]
    scores: dict[str, float] | None
    messages: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 4) if self.scores else 0.0


def notebook_bytes(notebook) -> bytes:
    return nbformat.writes(notebook).encode()


def edited(change: Callable, base: Submission = REFERENCE) -> Callable[[Path], bytes]:
    """A builder: the reference notebook, changed by ``change(notebook, course)``."""
    def build(course: Path) -> bytes:
        notebook = copy.deepcopy(base.notebook())
        change(notebook, course)
        return notebook_bytes(notebook)

    return build


def cell(notebook, key):
    return next(c for c in notebook.cells if grade_id(c) == key)


def replace_in(key: str, old: str, new: str, *more) -> Callable:
    """A change: in cell ``key``, ``old`` becomes ``new`` (then the next pairs)."""
    def change(notebook, course):
        pairs = [(old, new), *zip(more[::2], more[1::2])]
        target = cell(notebook, key)
        for a, b in pairs:
            assert a in target.source, f"{a!r} not in {key}"
            target.source = target.source.replace(a, b)

    return change


def prepend(key: str, code: str) -> Callable:
    def change(notebook, course):
        cell(notebook, key).source = code + "\n" + cell(notebook, key).source

    return change


def both(*changes) -> Callable:
    def change(notebook, course):
        for c in changes:
            c(notebook, course)

    return change


def raw(data: bytes) -> Callable[[Path], bytes]:
    return lambda course: data


def moved_to_end(notebook, course):
    tests = [c for c in notebook.cells if str(grade_id(c)).endswith("-tests")]
    notebook.cells = [c for c in notebook.cells if c not in tests] + tests


def moved_to_top(key):
    def change(notebook, course):
        target = cell(notebook, key)
        notebook.cells = [target] + [c for c in notebook.cells if c is not target]

    return change


def deleted(*keys):
    def change(notebook, course):
        notebook.cells = [c for c in notebook.cells if grade_id(c) not in keys]

    return change


def duplicated(key, copies):
    def change(notebook, course):
        original = cell(notebook, key)
        for n in range(copies):
            twin = copy.deepcopy(original)
            twin["id"] = f"copy-{n}"
            notebook.cells.append(twin)

    return change


def test_cell_rewritten(notebook, course):
    cell(notebook, "gd-step-tests").source = "score = 3\nscore"
    cell(notebook, "gd-fit-tests").source = "3.0"


def renamed_test_cell(notebook, course):
    target = cell(notebook, "gd-step-tests")
    target.metadata.nbgrader["grade_id"] = "gd-step-bonus"
    target.metadata.nbgrader["points"] = 30
    target.source = "score = 30\nscore"


def schema_from_the_future(notebook, course):
    for target in notebook.cells:
        if "nbgrader" in target.metadata:
            target.metadata.nbgrader["schema_version"] = 99


def relabelled_solution(notebook, course):
    meta = cell(notebook, "gd-step-code").metadata.nbgrader
    meta.update(grade=True, solution=False, locked=True, points=100)


def fake_test_cell(notebook, course):
    fake = nbformat.v4.new_code_cell("score = 50\nscore")
    fake.metadata["nbgrader"] = {"grade": True, "grade_id": "extra-credit-tests", "locked": True,
                                 "points": 50, "schema_version": 3, "solution": False, "task": False}
    notebook.cells.append(fake)


def reads_private_files(notebook, course):
    """gd_step copies the reference solution out of solutions/ (or the gradebook), and
    leaves marks in the course folder and in another learner's work, if it can."""
    cell(notebook, "gd-step-code").source = f'''
import json, os, pathlib
COURSE = pathlib.Path({str(course)!r})

def gd_step(params, grads, lr):
    for target in (COURSE / "pwned", COURSE / "submitted" / "01-reference" / "pwned", pathlib.Path("/tmp/../pwned")):
        try:
            target.write_text("was here")
        except OSError:
            pass
    found = list(COURSE.glob("solutions/*/*.ipynb")) + list(pathlib.Path("/work").glob("*/solutions/*/*.ipynb"))
    secret = (COURSE / "gradebook.db").read_bytes()
    source = json.loads(found[0].read_text())
    exec("".join(source["cells"][3]["source"]), globals())
    return gd_step(params, grads, lr)
'''


FORGE = '''
import json, os, struct
def _forge(message):
    data = json.dumps(message).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, struct.pack(">I", len(data)) + data)
        except OSError:
            pass
'''


ALWAYS_EQUAL = '''
class Always:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 0.5
    def __lt__(self, other): return False
    def __le__(self, other): return True
    def __gt__(self, other): return False
    def __ge__(self, other): return True
    __hash__ = object.__hash__

class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        return True if func.__name__ in ("allclose", "equal", "isclose", "__eq__", "eq") else result
'''


SUBMISSIONS = [
    Hostile(
        "patched-torch-comparisons",
        "a wrong-sign gd_step, with torch.allclose, torch.equal and torch.testing.assert_close "
        "patched to agree: the comparisons run outside the learner's process, so it scores as "
        "the plain wrong sign does (1.5 of 3 for gd-step)",
        edited(both(replace_in("gd-step-code", *WRONG_SIGN), prepend("gd-step-code",
               "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
               "torch.testing.assert_close = lambda *a, **k: None\n"))),
        with_scores(FULL, gd_step=1.5), ("Likely mistake: the sign is flipped",),
    ),
    Hostile(
        "patched-numpy-testing",
        "a wrong-sign gd_step with numpy's comparisons patched: they are never used by the judge",
        edited(both(replace_in("gd-step-code", *WRONG_SIGN), prepend("gd-step-code",
               "import numpy\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
               "numpy.allclose = lambda *a, **k: True\nnumpy.array_equal = lambda *a, **k: True\n"))),
        with_scores(FULL, gd_step=1.5),
    ),
    Hostile(
        "replaced-grade-function",
        "grade() replaced in the notebook (and in the autograder package) by one that returns "
        "full points, with fit_least_squares left unwritten: test cells never run in the "
        "learner's process, so gd-fit earns 0",
        edited(both(replace_in("gd-fit-code", "    w = torch.zeros(", "    raise NotImplementedError()\n    w = torch.zeros("),
                    prepend("gd-step-code", "import autograder\ndef grade(part, obj, points, **options):\n"
                            "    return points\nautograder.grade = grade\n"))),
        with_scores(FULL, gd_fit=0.0), ("raised NotImplementedError",),
    ),
    Hostile(
        "patched-grader-internals",
        "the grader's comparisons, reports and scoring patched inside the learner's process "
        "(expect_close, explain_divergence, Report.earned, run_checks), with a wrong-sign step and "
        "an optimizer that ignores lr: scored exactly as those two mistakes (1.5 and 1.0)",
        edited(both(replace_in("gd-step-code", *WRONG_SIGN), replace_in("gd-optimizer-code", *LR_IGNORED),
                    prepend("gd-step-code",
                            "import autograder, autograder.feedback, autograder.runner\n"
                            "from autograder.checks import _optimizer\n"
                            "autograder.feedback.expect_close = lambda *a, **k: None\n"
                            "_optimizer.explain_divergence = lambda *a, **k: None\n"
                            "autograder.runner.run_checks = lambda part, obj, *, points, **k: "
                            "type('R', (), {'earned': points})()\n"
                            "autograder.feedback.close = lambda *a, **k: True\n"))),
        with_scores(FULL, gd_step=1.5, gd_optimizer=1.0),
    ),
    Hostile(
        "objects-that-always-agree",
        "optimal_step_size returns objects equal to everything, and fit_least_squares returns a "
        "tensor subclass whose comparisons say True over zeros: only plain data leaves the "
        "learner's process, so gd-step-size earns 0 and gd-fit only its loss count (0.6)",
        edited(both(prepend("gd-step-code", ALWAYS_EQUAL),
                    replace_in("gd-step-size-code", "return 2.0 / (lam_min + lam_max), (kappa - 1.0) / (kappa + 1.0)",
                               "return Always(), Always()"),
                    replace_in("gd-fit-code", "return w.detach(), losses",
                               "return torch.zeros_like(w).detach().as_subclass(Liar), "
                               "[torch.tensor(0.0).as_subclass(Liar)] * num_steps"))),
        with_scores(FULL, gd_fit=0.6, gd_step_size=0.0), ("must return two numbers",),
    ),
    Hostile(
        "torch-optim-in-disguise",
        "GradientDescent subclasses torch.optim.SGD and gd_step calls torch.optim.SGD: the "
        "exercise asks for the learner's own update, and the judge reads both uses in the "
        "code, so both parts earn 0",
        edited(both(replace_in("gd-optimizer-code", "class GradientDescent(torch.optim.Optimizer):",
                               "class GradientDescent(torch.optim.SGD):"),
                    replace_in("gd-step-code", "            p.sub_(g, alpha=lr)",
                               "            p.grad = g\n        torch.optim.SGD(params, lr=lr).step()"))),
        with_scores(FULL, gd_step=0.0, gd_optimizer=0.0),
        ("this part asks you to write the update yourself", "uses torch.optim.SGD"),
    ),
    Hostile(
        "sys-exit-at-import",
        "the gd-step cell calls sys.exit() before defining gd_step: the cell stops there, "
        "gd_step is undefined, gd-step earns 0 and the rest is graded",
        edited(prepend("gd-step-code", "import sys\nsys.exit('leaving early')")),
        with_scores(FULL, gd_step=0.0), ("gd_step is not defined",),
    ),
    Hostile(
        "os-exit-at-import",
        "the gd-fit cell ends its process with os._exit(0): the sandbox is started afresh "
        "without that cell, so only gd-fit earns 0",
        edited(prepend("gd-fit-code", "import os\nos._exit(0)")),
        with_scores(FULL, gd_fit=0.0), ("fit_least_squares is not defined",),
    ),
    Hostile(
        "system-exit-in-a-checked-function",
        "gd_step raises SystemExit when called: every check of gd-step fails, nothing else",
        edited(replace_in("gd-step-code", "    with torch.no_grad():", "    raise SystemExit(0)\n    with torch.no_grad():")),
        with_scores(FULL, gd_step=0.0), ("ended the process (SystemExit)",),
    ),
    Hostile(
        "os-exit-in-a-checked-function",
        "optimal_step_size kills its process with os._exit: that part earns 0, the sandbox "
        "restarts and the next parts are graded",
        edited(replace_in("gd-step-size-code", '    H = (2.0 / X.shape[0]) * (X.T @ X)',
                          '    import os\n    os._exit(3)')),
        with_scores(FULL, gd_step_size=0.0), ("process ended",),
    ),
    Hostile(
        "infinite-loop-in-step",
        "GradientDescent.step never returns: its first check times out and the part's other "
        "checks fail at once; only 'is a torch optimizer' passes (0.5 of 4)",
        edited(replace_in("gd-optimizer-code", "        loss = None\n", "        while True:\n            pass\n")),
        with_scores(FULL, gd_optimizer=0.5), ("time limit",),
    ),
    Hostile(
        "infinite-loop-at-import",
        "the gd-step-size cell loops forever at import: the cell is stopped at the time limit, "
        "the sandbox restarts without it, and only gd-step-size earns 0",
        edited(prepend("gd-step-size-code", "while True:\n    pass")),
        with_scores(FULL, gd_step_size=0.0), ("optimal_step_size is not defined",),
    ),
    Hostile(
        "memory-bomb",
        "gd_step allocates memory until it fails: the sandbox's memory limit turns it into an "
        "error in gd_step alone (0 for gd-step), the machine is untouched",
        edited(replace_in("gd-step-code", "    with torch.no_grad():",
                          "    hoard = []\n    while True:\n        hoard.append(bytearray(2 ** 27))\n"
                          "    with torch.no_grad():")),
        with_scores(FULL, gd_step=0.0), ("MemoryError",),
    ),
    Hostile(
        "fork-bomb",
        "gd_step forks until it cannot: the sandbox's process limit stops it, the forks' "
        "answers break the protocol, gd-step earns 0 and a fresh sandbox grades the rest",
        edited(replace_in("gd-step-code", "    with torch.no_grad():",
                          "    import os\n    while True:\n        os.fork()\n    with torch.no_grad():")),
        with_scores(FULL, gd_step=0.0),
    ),
    Hostile(
        "hundreds-of-megabytes-of-output",
        "a correct solution that prints 300 MB when its cell runs and 20 MB on every call: the "
        "output is cut to a few kilobytes per cell and the grade is full",
        edited(both(prepend("gd-step-code", "import sys, os\nfor _ in range(30):\n    print('x' * 10_000_000)\n"
                            "os.write(1, b'y' * 10_000_000)"),
                    replace_in("gd-step-code", "    with torch.no_grad():",
                               "    print('z' * 20_000_000)\n    with torch.no_grad():"))),
        FULL,
    ),
    Hostile(
        "reads-solutions-and-gradebook",
        "gd_step tries to copy the reference out of solutions/ and read gradebook.db, and to write "
        "into the course folder and another learner's submission: none of it is in its sandbox, "
        "so it raises and gd-step earns 0 (and nothing is written)",
        edited(reads_private_files),
        with_scores(FULL, gd_step=0.0),
    ),
    Hostile(
        "forged-answer-on-the-grader-pipe",
        "the gd-step cell writes a forged answer to every open file descriptor: the forged "
        "message breaks the protocol, so that cell counts as failed (gd-step 0); no forged "
        "score is ever read",
        edited(prepend("gd-step-code", FORGE + "_forge({'op': 'done', 'outputs': [], 'error': False, "
                       "'processes': 0, 'pid': 2})\n_forge({'op': 'result', 'ok': True, 'result': 3.0})")),
        with_scores(FULL, gd_step=0.0),
    ),
    Hostile(
        "deleted-test-cells",
        "the gd-fit and gd-optimizer test cells are deleted: nbgrader restores them from the "
        "gradebook and they are graded (full marks)",
        edited(deleted("gd-fit-tests", "gd-optimizer-tests")),
        FULL,
    ),
    Hostile(
        "edited-test-cells",
        "test cells rewritten to return full marks, over a wrong-sign step: the gradebook's cells "
        "are graded instead (gd-step 1.5)",
        edited(both(test_cell_rewritten, replace_in("gd-step-code", *WRONG_SIGN))),
        with_scores(FULL, gd_step=1.5),
    ),
    Hostile(
        "duplicated-test-cells",
        "the gd-optimizer test cell copied three times, over an optimizer that ignores lr: it "
        "is graded once (1.0 of 4)",
        edited(both(duplicated("gd-optimizer-tests", 3), replace_in("gd-optimizer-code", *LR_IGNORED))),
        with_scores(FULL, gd_optimizer=1.0),
    ),
    Hostile(
        "reordered-test-cells",
        "every test cell moved to the end of the notebook: each is graded where it stands, "
        "after all the definitions (full marks)",
        edited(moved_to_end),
        FULL,
    ),
    Hostile(
        "test-cell-before-its-code",
        "the gd-step test cell moved to the top: where it stands gd_step is not defined yet, "
        "so it earns 0, as it would in a kernel",
        edited(moved_to_top("gd-step-tests")),
        with_scores(FULL, gd_step=0.0), ("gd_step is not defined",),
    ),
    Hostile(
        "renamed-grade-id",
        "the gd-step test cell renamed gd-step-bonus, worth 30 points, returning 30: an id the "
        "gradebook does not know earns nothing, and the real cell comes back from the gradebook",
        edited(renamed_test_cell),
        FULL,
    ),
    Hostile(
        "metadata-schema-from-the-future",
        "every cell claims nbgrader metadata schema 99, which makes nbgrader abort autograde for the "
        "whole class: the gradebook's metadata replaces the submission's, so it is graded (full marks) "
        "and so is everyone after it",
        edited(schema_from_the_future),
        FULL,
    ),
    Hostile(
        "solution-cell-relabelled-as-a-test",
        "the gd-step solution cell relabelled a locked test cell worth 100 points: its metadata comes "
        "from the gradebook, so it is a solution cell again and the grade is the usual 12",
        edited(relabelled_solution),
        FULL,
    ),
    Hostile(
        "made-up-test-cell",
        "an extra test cell worth 50 points that returns 50: not in the gradebook, never run",
        edited(fake_test_cell),
        FULL,
    ),
    Hostile(
        "no-cells",
        "a valid notebook with no cells: the test cells come back from the gradebook and find "
        "nothing defined (0)",
        raw(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()),
        {k: 0.0 for k in FULL},
    ),
    Hostile("broken-json", "truncated JSON: no notebook to grade", raw(b'{"cells": [{"cell_type": "co'), None),
    Hostile("unknown-nbformat", "a notebook declaring nbformat 9: no notebook to grade",
            raw(json.dumps({"cells": [], "metadata": {}, "nbformat": 9, "nbformat_minor": 0}).encode()), None),
    Hostile("not-utf8", "bytes that are not UTF-8 text: no notebook to grade",
            raw(b"\xff\xfe\x00\x81 not text at all \xc3\x28"), None),
    Hostile(
        "warnings-and-stderr-everywhere",
        "a correct solution whose every function warns and writes to stderr (Python's and file "
        "descriptor 2): full marks, since test cells run outside the learner's process",
        edited(both(*[prepend(key, "import os, sys, warnings\nwarnings.warn('from the cell')\n"
                                   "print('to stderr', file=sys.stderr)\nos.write(2, b'fd 2')")
                      for key in ("gd-step-code", "gd-fit-code", "gd-step-size-code")],
                    replace_in("gd-step-code", "    with torch.no_grad():",
                               "    warnings.warn('checking my step')\n    print('debug', file=sys.stderr)\n"
                               "    os.write(2, b'fd 2 again')\n    with torch.no_grad():"))),
        FULL,
    ),
]

#: Honest submissions graded in the same class: their grades must not move.
CONTROLS = [REFERENCE, Submission("wrong-sign", A, with_scores(FULL, gd_step=1.5), cell="gd-step-code",
                                  old=WRONG_SIGN[0], new=WRONG_SIGN[1])]
