"""What a learner hands in, checked before anything of it is graded or copied.

A submission is a folder, ``submitted/<student>/<assignment>/``, that holds the
assignment's notebooks and nothing else but nbgrader's ``timestamp.txt`` (and the
caches nbgrader itself ignores, ``.ipynb_checkpoints/`` and ``__pycache__/``). A symbolic
link anywhere in it (or a student folder that is one), a device, a pipe, a socket,
another folder or any other file is refused: such a
submission could make the grader read, or copy back to the learner, what is not theirs
(the gradebook, another learner's notebook). A refused submission is that learner's
alone: :class:`SubmissionRefused` says why, and the class goes on.

The grader runs nothing but the notebook's cells (the sandbox sees no file of the
submission), so nothing else in the folder could shape a grade in any case.

:class:`CheckedCollect` applies the same rule to ``nbgrader collect``, which would
otherwise follow a learner's links into the instructor's files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

#: Folders nbgrader leaves out of everything it copies; their files are not graded.
IGNORED_FOLDERS = frozenset({".ipynb_checkpoints", "__pycache__"})
#: The one file besides the notebooks that nbgrader writes into a submission.
TIMESTAMP = "timestamp.txt"


class SubmissionRefused(ValueError):
    """A submission folder that is not only the assignment's notebooks; the message says why."""


def _walk(folder: Path, notebooks: frozenset[str], relative: str = "") -> None:
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = f"{relative}{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise SubmissionRefused(f"{name} is a symbolic link")
            if stat.S_ISDIR(info.st_mode):
                if entry.name not in IGNORED_FOLDERS and not relative.startswith(tuple(IGNORED_FOLDERS)):
                    raise SubmissionRefused(f"{name}/ is a folder; a submission holds only the notebooks")
                _walk(Path(entry.path), notebooks, f"{name}/")
            elif not stat.S_ISREG(info.st_mode):
                raise SubmissionRefused(f"{name} is not a plain file")
            elif not relative and name not in notebooks and name != TIMESTAMP:
                raise SubmissionRefused(f"{name} is not one of the assignment's notebooks "
                                        f"({', '.join(sorted(notebooks))})")


def check_folder(folder: str | Path, notebooks, *, student_folder: bool = True) -> None:
    """Raise :class:`SubmissionRefused` unless ``folder`` holds only the notebooks named in
    ``notebooks`` (file names, ``gradient-descent.ipynb``), nbgrader's timestamp and its
    ignored caches, with no link of any kind; with ``student_folder``, the folder's parent
    (``submitted/<student>/``) must not be a link either."""
    folder = Path(folder)
    for path in ([folder.parent] if student_folder else []) + [folder]:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise SubmissionRefused(f"{path.name} is a symbolic link")
        if not stat.S_ISDIR(info.st_mode):
            raise SubmissionRefused(f"{path.name} is not a folder")
    _walk(folder, frozenset(notebooks))


def assignment_notebooks(db_url: str, assignment: str) -> set[str]:
    """The file names of ``assignment``'s notebooks, as the gradebook records them."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        return {f"{notebook.name}.ipynb" for notebook in gradebook.find_assignment(assignment).notebooks}


class CheckedCollect(ExchangeCollect):
    """``nbgrader collect`` that refuses a submission :func:`check_folder` refuses: it is
    not copied into ``submitted/`` (nbgrader's own copy follows links), an error names the
    learner and the reason, and the other learners are collected.

    In ``nbgrader_config.py``: ``c.ExchangeFactory.collect = "autograder.intake.CheckedCollect"``.
    """

    def do_copy(self, src, dest, log=None):
        try:
            notebooks = assignment_notebooks(self.coursedir.db_url, self.coursedir.assignment_id)
            check_folder(src, notebooks, student_folder=False)
        except SubmissionRefused as refused:
            self.log.error("Refused submission %s: %s", os.path.basename(src), refused)
            return
        super().do_copy(src, dest, log)
