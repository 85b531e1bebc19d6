"""The course's autograder.

A notebook's test cell calls :func:`grade` with the name of a graded part, the learner's
function or class, and the cell's points::

    from autograder import grade
    grade("gd-step", gd_step, points=3)

The checks for each part live in :mod:`autograder.checks`; they compare the learner's
code with ``torch.optim`` and with float64 transcriptions of the equations
(:mod:`autograder.oracles`) and name the likely mistake when they disagree
(:mod:`autograder.feedback`). ``python -m autograder NOTEBOOK.ipynb`` grades a whole
notebook from the command line.
"""

from .runner import GraderError, Report, grade, known_parts, run_checks

__all__ = ["GraderError", "Report", "grade", "known_parts", "run_checks"]
