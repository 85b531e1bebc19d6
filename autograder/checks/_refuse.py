"""PyTorch's own implementation of a part, refused while the learner's code runs.

A part that asks for ``clip_grad_norm_`` or ``GradScaler`` written by hand would match
PyTorch perfectly if it called PyTorch's. While a probe runs the learner's code, the
functions (or the class's ``__init__``) named here raise instead. Like
:class:`autograder.feedback.no_builtin_optimizers`, this runs where the learner's code
runs, which can undo it, and a name bound before the probe (``from torch.nn.utils import
clip_grad_norm_``) keeps the original: it turns the plain use into feedback, it is no
defence against a determined learner.
"""

from __future__ import annotations

import contextlib

from autograder.feedback import SubmissionError


@contextlib.contextmanager
def refusing(what: str, targets: list[tuple[object, str]]):
    """While active, each ``getattr(owner, name)`` of ``targets`` raises a
    :class:`SubmissionError` saying that the part asks for ``what`` written by hand."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def refuse(*args, **kwargs):
        raise SubmissionError(f"this part asks you to write {what} yourself, with tensor operations, "
                              "not to call PyTorch's.")

    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
