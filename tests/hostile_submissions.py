"""Hostile and broken submissions to assignment 01: what each tries, the score it must get,
and why. Every one is graded through the instructor's path (tests/test_hostile.py), in
one class with honest submissions whose grades must not move.

Points per test cell: gd-step 3, gd-fit 3, gd-step-size 2, gd-optimizer 4 (12 in all).
A prediction of None means the file cannot be read as a notebook, or, with ``refused``,
that its submission folder is refused: nbgrader records no grade for it and the other
submissions are graded as usual.
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
    what it tries and why that is the score; ``messages`` must appear in its feedback,
    ``absent`` must not.
    ``beside(folder, course)``, if given, plants more in the submission's folder
    (``submitted/<student>/<assignment>/``, the notebook already in it) instead of the
    notebook coming through the LMS archive; ``refused`` is then the reason the batch
    gives for refusing it."""

    name: str
    why: str
    build: Callable[[Path], bytes]
    scores: dict[str, float] | None
    messages: tuple[str, ...] = ()
    beside: Callable[[Path, Path], None] | None = None
    refused: str = ""
    absent: tuple[str, ...] = ()

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


KEYRING = '''
import ctypes, errno, platform
_libc = ctypes.CDLL(None, use_errno=True)
_ADD_KEY, _KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
_USER_KEYRING, _SEARCH, _READ = -4, 10, 11
def _outcome(result):
    return "refused: " + errno.errorcode.get(ctypes.get_errno(), "?") if result < 0 else "done"
'''


def keyring_stash(notebook, course):
    """The gd-step cell, besides defining a correct gd_step, leaves that code in its user's
    kernel keyring, which outlives the sandbox and which any later sandbox of the same
    user could read."""
    target = cell(notebook, "gd-step-code")
    payload = target.source
    target.source = KEYRING + target.source + f'''
_payload = {payload.encode()!r}
print("add_key", _outcome(_libc.syscall(_ADD_KEY, b"user", b"gd-step", _payload, ctypes.c_long(len(_payload)),
                                        ctypes.c_long(_USER_KEYRING))))
'''


KEYRING_FETCH = KEYRING + '''
def gd_step(params, grads, lr):
    key = _libc.syscall(_KEYCTL, ctypes.c_long(_SEARCH), ctypes.c_long(_USER_KEYRING), b"user", b"gd-step",
                        ctypes.c_long(0))
    if key < 0:
        raise RuntimeError("nobody left a step in the keyring (" + _outcome(key) + ")")
    buffer = ctypes.create_string_buffer(1 << 16)
    size = _libc.syscall(_KEYCTL, ctypes.c_long(_READ), ctypes.c_long(key), buffer, ctypes.c_long(1 << 16))
    found = {"torch": torch}
    exec(buffer.raw[:size].decode(), found)
    return found["gd_step"](params, grads, lr)
'''


NAMESPACE_ESCAPE = '''
import ctypes, subprocess
_libc = ctypes.CDLL(None, use_errno=True)
for _flags in (0x10000000 | 0x00020000, 0x00020000):  # a user and mount namespace, then a mount namespace
    print("unshare", "refused" if _libc.unshare(_flags) != 0 else "allowed")
print("mount", "refused" if _libc.mount(b"none", b"/tmp", b"tmpfs", 0, b"size=1g") != 0 else "allowed")
_child = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                         "mount -t tmpfs none /mnt && head -c 805306368 /dev/zero > /mnt/hoard && echo hoarded"],
                        capture_output=True, text=True)
print("child", "hoarded" in _child.stdout)
'''


#: Learner code that reaches the sandbox's worker, in whose process it runs.
WORKER = '''
import sys
worker = vars(sys.modules["autograder.worker"])
'''


def appended(*sources):
    """A change: code cells with ``sources`` added at the end of the notebook."""
    def change(notebook, course):
        notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in sources)

    return change


def before_everything(*sources):
    """A change: code cells with ``sources`` added right after the setup cell."""
    def change(notebook, course):
        notebook.cells[2:2] = [nbformat.v4.new_code_cell(source) for source in sources]

    return change


#: The class's time budget per notebook (tests/test_hostile.py sets it).
BUDGET = 90

HUGE_OUTPUTS = WORKER + '''
import autograder.probe
from IPython.display import display
_huge = {"output_type": "display_data", "data": {"image/png": "A" * 1_900_000, "text/plain": "x"}, "metadata": {}}
worker["display_data"] = lambda data, output_type="display_data": dict(_huge, output_type=output_type)
autograder.probe.error_data = lambda error: {"type": "ValueError", "message": "m" * 8_000_000}
for _ in range(3):
    display("big")
'''


def after_cell(key, *sources):
    """A change: code cells with ``sources`` added right after cell ``key``."""
    def change(notebook, course):
        index = notebook.cells.index(cell(notebook, key)) + 1
        notebook.cells[index:index] = [nbformat.v4.new_code_cell(source) for source in sources]

    return change


RECORDING = """
seen, phase = [], "cells"
_step = gd_step
def gd_step(params, grads, lr):
    seen.append([p.tolist() for p in params])
    if phase == "after every cell":
        raise ValueError("LE" + "AK " + repr(seen[-1]))
    return _step(params, grads, lr)
"""


MARKDOWN_SCRIPT = """Some notes on my step.

<script>window.__xss = "script"</script>
<img src="x" onerror="window.__xss = 'img'">
<svg onload="window.__xss = 'svg'"></svg>
<a id="xss-link" href="javascript:window.__xss='link'">click here</a>
<iframe srcdoc="<script>parent.__xss='iframe'</script>"></iframe>
"""

IMAGE_BREAKOUT = """
from IPython.display import display
display({"image/png": 'iVBORw0KGgo" onerror="window.__xss=\\'png\\'" x="', "text/plain": "a figure"}, raw=True)
"""


def markdown_with_script(notebook, course):
    notebook.cells.insert(4, nbformat.v4.new_markdown_cell(MARKDOWN_SCRIPT))
    attached = nbformat.v4.new_markdown_cell("![plot](attachment:plot.png)")
    attached["attachments"] = {"plot.png": {"image/png": 'x" onerror="window.__xss=\'attachment\'" y="'}}
    notebook.cells.insert(5, attached)


def shadowing_package(folder, course):
    """A package named like one the notebook imports: run from the submission's folder it
    would take matplotlib's place, and a cached result keyed by the notebook alone would be
    served to every learner who handed in the same cells."""
    (folder / "matplotlib").mkdir()
    (folder / "matplotlib" / "__init__.py").write_text("import torch\ntorch.Tensor.sub_ = torch.Tensor.add_\n")


def startup_module(folder, course):
    (folder / "sitecustomize.py").write_text("import torch\ntorch.manual_seed = lambda seed: None\n")


def links_to_private_files(folder, course):
    (folder / "gradebook.db").symlink_to(course / "gradebook.db")
    (folder / "solution").symlink_to(course / "solutions" / A / "gradient-descent.ipynb")


def student_folder_is_a_link(folder, course):
    """The whole student folder is a link to an honest learner's, to earn their grade."""
    student = folder.parent
    for path in sorted(student.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    student.rmdir()
    student.symlink_to(student.parent / "control-reference")


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
    Hostile(
        "keyring-leaves-a-solution",
        "a correct solution that also leaves its gd_step in its user's kernel keyring for whoever "
        "comes next: the sandbox refuses every keyring call, so nothing is left; full marks for its "
        "own code",
        edited(keyring_stash),
        FULL, ("add_key refused: EPERM",),
    ),
    Hostile(
        "keyring-fetches-a-solution",
        "gd_step is left unwritten and instead runs whatever step another learner left in the "
        "keyring: the judge reads the exec of fetched code in its syntax tree and grades nothing "
        "(had it run, no sandbox can reach a keyring: tests/test_sandbox.py), so gd-step earns 0",
        edited(replace_in("gd-step-code", "    with torch.no_grad():\n", KEYRING_FETCH + "    with torch.no_grad():\n")),
        with_scores(FULL, gd_step=0.0), ("this part asks you to write the update yourself",),
    ),
    Hostile(
        "namespaces-and-mounts",
        "a correct solution whose gd-fit cell tries to leave the sandbox's bounds: a user and mount "
        "namespace of its own, a 1 GiB tmpfs over /tmp, and a child that maps itself root to fill a "
        "tmpfs outside the sandbox's /tmp: every one is refused, and the grade is full",
        edited(prepend("gd-fit-code", NAMESPACE_ESCAPE)),
        FULL, ("unshare refused", "mount refused", "child False"),
    ),
]

SUBMISSIONS += [
    Hostile("many-slow-cells", f"eight cells that each sleep 15 s (under the class's 20 s cell limit) before "
            f"anything is defined: the notebook's {BUDGET} s budget runs out, nothing after it runs, and "
            "every test cell scores 0 with the reason",
            edited(before_everything(*["import time\ntime.sleep(15)"] * 8)), {k: 0.0 for k in FULL},
            (f"Not graded: the notebook used up its time budget of {BUDGET} s",)),
    Hostile("thousands-of-empty-cells", "5,000 empty code cells before the solution: the first 200 run, "
            "and every test cell after them scores 0 with the reason",
            edited(before_everything(*[""] * 5000)), {k: 0.0 for k in FULL},
            ("Not graded: the notebook has more than 200 cells to run",)),
    Hostile("stops-reading-its-requests", "a correct solution, then a cell that makes the sandbox stop reading "
            "the grader's requests, then a cell of 900 kB: the write of that cell is cut off at the time "
            "limit instead of blocking the class forever; the hidden checks, which run after every cell, "
            "find a sandbox that no longer listens, so every part earns 0",
            edited(appended(WORKER + "import time\nworker['read_exactly'] = lambda fd, n: time.sleep(3600)",
                            "#" * 900_000)),
            {k: 0.0 for k in FULL}, ("stopped reading",)),
    Hostile("ten-megabytes-of-markdown", "a correct solution with a markdown cell of 10 MB and another with "
            "10 MB of attachments: both are cut to a note, full marks, and the graded notebook stays small",
            edited(lambda notebook, course: notebook.cells.extend([
                nbformat.v4.new_markdown_cell("my notes " * 1_200_000),
                nbformat.v4.new_markdown_cell("![a](attachment:a.png)",
                                              attachments={"a.png": {"image/png": "QUFB" * 2_500_000}})])),
            FULL, ("A cell longer than 1,000,000 characters was cut",)),
    Hostile("answer-nested-past-any-parser", "a correct solution, then a cell whose answer to the grader is "
            "nested 50,000 deep: the reader refuses it as a broken protocol (that cell alone); full marks",
            edited(appended(WORKER + "import os, struct\n"
                            "def nested(fd, message):\n"
                            "    body = b'{\"seq\":%d,\"op\":\"done\",\"outputs\":' % message['seq'] "
                            "+ b'[' * 50000 + b']' * 50000 + b'}'\n"
                            "    os.write(fd, struct.pack('>I', len(body)) + body)\n"
                            "worker['write_message'] = nested")),
            FULL, ("broke the grader's protocol",)),
    Hostile("outputs-past-every-cap", "the worker patched to send three outputs of 1.9 MB for a cell and 8 MB "
            "error messages for the checks, with gd_step raising: the cell keeps 2 MB of outputs, each "
            "message is cut to 4,000 characters, gd-step earns 0 and the autograded notebook stays small",
            edited(both(prepend("gd-step-code", HUGE_OUTPUTS),
                        replace_in("gd-step-code", "    with torch.no_grad():",
                                   "    raise ValueError('no')\n    with torch.no_grad():"))),
            with_scores(FULL, gd_step=0.0), ("were not kept",)),
]

SUBMISSIONS += [
    Hostile("records-hidden-calls", "gd_step records every call's tensors and a cell after the gd-step test "
            "cell prints them, to recover the hidden cases: the hidden checks run after every learner cell, so "
            "no cell sees one; full marks",
            edited(both(replace_in("gd-step-code", "            p.sub_(g, alpha=lr)\n",
                                   "            p.sub_(g, alpha=lr)\n" + RECORDING),
                        after_cell("gd-step-tests", "after_the_test = len(seen)\nprint(seen)"),
                        appended("print('hidden calls seen by a learner cell:', len(seen) - after_the_test)"))),
            FULL, ("hidden calls seen by a learner cell: 0",)),
    Hostile("hidden-cases-in-error-messages", "gd_step, once the last cell has run, raises an error that quotes "
            "its arguments, to carry the hidden cases into the hidden checks' report: that report says which "
            "checks failed but not how, and gd-step earns the hidden checks' 0",
            edited(both(replace_in("gd-step-code", "            p.sub_(g, alpha=lr)\n",
                                   "            p.sub_(g, alpha=lr)\n" + RECORDING),
                        appended("phase = 'after every cell'"))),
            with_scores(FULL, gd_step=0.0), ("failed on a hidden case",), absent=("LEAK",)),
]

#: Their feedback pages are opened in a browser (tests/test_hostile.py): no script may run.
SCRIPTED = [
    Hostile("script-in-markdown", "a correct solution with markdown cells that carry a script, event "
            "handlers, a javascript: link, an iframe and an attachment whose data breaks out of its "
            "attribute: full marks, and none of it runs in the feedback page",
            edited(markdown_with_script), FULL, ("Some notes on my step",)),
    Hostile("image-that-breaks-out", "a correct solution with a cell that displays image/png data that is "
            "not base64 but an attribute break-out with a handler: the image is dropped, full marks",
            edited(appended(IMAGE_BREAKOUT)), FULL),
]
SUBMISSIONS += SCRIPTED

#: Submissions whose folder is refused: the notebook in each is the honest reference's, cell
#: for cell, so a result cached for one of them would be the control's too.
SUBMISSIONS += [
    Hostile("shadowing-package-beside-a-copy", "a copy of the reference notebook beside a matplotlib/ "
            "package that flips every step's sign: refused (a submission is its notebooks), and the "
            "honest reference graded in the same class keeps its 12",
            edited(lambda notebook, course: None), None, beside=shadowing_package,
            refused="matplotlib/ is a folder"),
    Hostile("startup-module-beside-a-copy", "a copy of the reference notebook beside a sitecustomize.py "
            "that Python would run first: refused", edited(lambda notebook, course: None), None,
            beside=startup_module, refused="sitecustomize.py is not one of the assignment's notebooks"),
    Hostile("links-to-the-gradebook-and-the-source", "links to gradebook.db and to the source notebook "
            "beside the notebook, which a copy of the folder would follow into the learner's feedback: "
            "refused", edited(lambda notebook, course: None), None, beside=links_to_private_files,
            refused="gradebook.db is a symbolic link"),
    Hostile("student-folder-links-to-another", "the learner's whole folder is a link to an honest "
            "learner's, to be graded with their notebook: refused", edited(lambda notebook, course: None),
            None, beside=student_folder_is_a_link, refused="student-folder-links-to-another is a symbolic link"),
]

#: Names in the LMS archive that a learner chose (the reference notebook in each): none is
#: collected, each alone is refused, and the class around them is graded.
BAD_NAMES = {
    "../../escaped_attempt_gradient-descent.ipynb": "a path that leaves the archive's folder",
    "back\\slash_attempt_gradient-descent.ipynb": "a backslash, which made the whole archive be refused",
    "line\nbreak_attempt_gradient-descent.ipynb": "a newline in the id, which stopped nbgrader autograde for the class",
    ".._gradient-descent.ipynb": "an id of .., which wrote a notebook outside submitted/",
    "..._attempt_gradient-descent.ipynb": "an id of ..., silently never graded",
    "=1+2_attempt_gradient-descent.ipynb": "a formula for the CSVs the course writes",
}

#: Honest submissions graded in the same class: their grades must not move.
CONTROLS = [REFERENCE, Submission("wrong-sign", A, with_scores(FULL, gd_step=1.5), cell="gd-step-code",
                                  old=WRONG_SIGN[0], new=WRONG_SIGN[1])]
