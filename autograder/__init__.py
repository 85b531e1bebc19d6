"""The course's autograder.

A notebook's test cell calls :func:`grade` with the name of a graded part, the learner's
function or class, and the cell's points::

    from autograder import grade
    grade("gd-step", gd_step, points=3)

The checks for each part live in :mod:`autograder.checks`; they observe the learner's
code only through probes that return plain data (:mod:`autograder.probe`,
:mod:`autograder.wire`), compare it with ``torch.optim`` and with float64 transcriptions
of the equations (:mod:`autograder.oracles`), and name the likely mistake when they
disagree (:mod:`autograder.feedback`). In a notebook the checks run beside the learner's
code, for instant feedback; when an instructor grades (``nbgrader autograde`` through
:mod:`autograder.autograde`, ``python -m autograder.batch`` for a class, or
``python -m autograder NOTEBOOK.ipynb``), the learner's code runs in a sandbox
(:mod:`autograder.sandbox`) and the checks in a judge outside it (:mod:`autograder.judge`).
"""

from .runner import GraderError, Report, grade, known_parts, run_checks

__all__ = ["GraderError", "Report", "grade", "known_parts", "run_checks"]
