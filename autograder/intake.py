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
otherwise follow a learner's links into the instructor's files, and
:class:`CheckedExtractor` unpacks ``nbgrader zip_collect``'s archives entry by entry, so
that one learner's file name can neither write outside the course's folders nor stop the
others from being collected; learner ids have one documented form, :data:`LEARNER_ID`.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.plugins import ExtractorPlugin

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
    (``submitted/<student>/``) must not be a link either, and its name must be a learner
    id (:data:`LEARNER_ID`)."""
    folder = Path(folder)
    if student_folder and not re.fullmatch(LEARNER_ID, folder.parent.name):
        raise SubmissionRefused(f"the learner id {folder.parent.name!a} is not of the form {LEARNER_ID}")
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


#: A learner id: a letter or digit, then up to 63 letters, digits, dots, @ and hyphens. It
#: names a folder (so no "..", no "/"), and a CSV cell (so no leading "=", "+", "-", "@").
LEARNER_ID = r"[A-Za-z0-9][A-Za-z0-9.@-]{0,63}"
#: zip_collect's file names, <id>_<anything>_<notebook>.ipynb or <id>_<notebook>.ipynb
#: (``c.FileNameCollectorPlugin.named_regexp``); notebook names have no underscore.
#: A re-submission the system renamed <notebook>-1.ipynb (Canvas does) is collected as
#: <notebook>.ipynb: no notebook of the course ends in -<digits>.
NAMED_REGEXP = rf".*/(?P<student_id>{LEARNER_ID})_(?:[^/]*_)?(?P<file_id>[A-Za-z0-9][A-Za-z0-9.-]*?)(?:-\d+)?\.ipynb$"
#: The largest file an archive entry may unpack to.
MAX_ENTRY = 64 * 2**20


def unsafe_entry(entry: zipfile.ZipInfo) -> str | None:
    """Why an archive entry may not be extracted, if it may not."""
    name = entry.filename
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "its name has a backslash or a control character"
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        return "its path leaves the archive's folder"
    if stat.S_ISLNK(entry.external_attr >> 16):
        return "it is a symbolic link"
    if entry.file_size > MAX_ENTRY:
        return f"it unpacks to more than {MAX_ENTRY // 2**20} MiB"
    return None


class CheckedExtractor(ExtractorPlugin):
    """``nbgrader zip_collect``'s extraction, entry by entry: an entry with an unsafe name
    (:func:`unsafe_entry`) is refused with an error naming it and the reason, and every
    other entry is extracted (nbgrader's own refuses the whole archive, or writes where
    the name points). Zip files inside the archive are extracted the same way, two
    levels deep; other files are copied as they are.

    In ``nbgrader_config.py``: ``c.ZipCollectApp.extractor_plugin = "autograder.intake.CheckedExtractor"``.
    """

    def extract(self, archive_path: str, extracted_path: str) -> None:
        for root, _, names in os.walk(archive_path):
            target = Path(extracted_path) / Path(root).relative_to(archive_path)
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                path = Path(root) / name
                if zipfile.is_zipfile(path):
                    self._unzip(path, target / path.stem)
                else:
                    shutil.copy(path, target / name)

    def _unzip(self, path: Path, target: Path, depth: int = 0) -> None:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.infolist():
                if entry.is_dir():
                    continue
                reason = unsafe_entry(entry)
                if reason:
                    self.log.error("Refused %s in %s: %s", ascii(entry.filename), path.name, reason)
                    continue
                destination = target.joinpath(*entry.filename.split("/"))
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(entry) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                if destination.suffix == ".zip" and depth < 2 and zipfile.is_zipfile(destination):
                    self._unzip(destination, destination.with_suffix(""), depth + 1)
                    destination.unlink()
