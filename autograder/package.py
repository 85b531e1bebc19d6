"""Package an assignment as a Gradescope autograder, and grade one submission there.

    python -m autograder.package ASSIGNMENT [--out DIR] [--hidden-visibility after_due_date]

Run it from the course folder (where ``nbgrader_config.py`` and ``solutions/`` are). It
writes ``DIR`` (``gradescope/ASSIGNMENT/`` by default) and ``DIR.zip``, the file to upload
as the assignment's autograder:

- ``setup.sh``: installs bubblewrap, the pinned environment and the grader (Gradescope
  runs it once, when it builds the image);
- ``run_autograder``: grades the one ``.ipynb`` in ``/autograder/submission/`` (whatever
  its name) and writes ``/autograder/results/results.json``;
- ``source/``: the grader, ``requirements.txt``, ``nbgrader_config.py`` and a gradebook
  holding this assignment alone (its cells, hidden tests included, and no learner's grade).

A submission is graded as ``python -m autograder.batch`` grades it, in the sandbox, with
the test cells of the packaged gradebook, and its ``results.json`` is the batch's: a
test per test cell, visible, with its score, status and the report of its visible
checks, and apart the report of its hidden checks, shown ``--hidden-visibility``
(``after_due_date`` unless told otherwise). ``AUTOGRADER_ROOT`` in the environment
replaces ``/autograder``, and ``AUTOGRADER_PYTHON`` the environment's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .autograde import course_secret

PACKAGE = Path(__file__).resolve().parent
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
LEARNER = "learner"

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --disable-pip-version-check -q -r source/requirements.txt
/autograder/venv/bin/python -m pip install --disable-pip-version-check -q --no-deps ./source/grader
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it always writes results/results.json.
root="${{AUTOGRADER_ROOT:-/autograder}}"
python="${{AUTOGRADER_PYTHON:-$root/venv/bin/python}}"
exec "$python" -m autograder.package --run {assignment} --source "$root/source" --root "$root" \\
  --hidden-visibility {visibility}
"""


def build(course: Path, assignment: str, out: Path, visibility: str) -> Path:
    """Write the bundle for ``assignment`` of the course in ``course`` into ``out``, and
    ``out.zip``; return the zip's path."""
    solutions = course / "solutions" / assignment
    if not solutions.is_dir():
        raise SystemExit(f"error: no solutions/{assignment}/ here: run this from the course folder")
    if out.exists():
        shutil.rmtree(out)
    source = out / "source"
    source.mkdir(parents=True)
    # A gradebook of its own: the instructor's holds every learner's grades.
    shutil.copy(course / "nbgrader_config.py", source)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(course / "nbgrader_config.py", scratch)
        with open(Path(scratch) / "nbgrader_config.py", "a") as handle:
            handle.write('\nc.CourseDirectory.db_url = "sqlite:///gradebook.db"\n')
        with open(source / "nbgrader_config.py", "a") as handle:
            handle.write('\n# The gradebook of this assignment alone, beside this file.\n'
                         'c.CourseDirectory.db_url = "sqlite:///gradebook.db"\n')
        shutil.copytree(solutions, Path(scratch) / "solutions" / assignment)
        environ = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
        result = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
                                 "--log-level=ERROR"], cwd=scratch, env=environ, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"error: nbgrader generate_assignment {assignment} failed:\n{result.stderr}")
        shutil.copy(Path(scratch) / "gradebook.db", source / "gradebook.db")
    secret = hidden_seed_secret(course)
    if secret:
        # Hidden cases drawn from the course's secret: the bundle grades with the same one.
        course_secret(course / secret)
        (source / secret).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(course / secret, source / secret)
    root = PACKAGE.parent
    shutil.copy(root / "requirements.txt", source)
    grader = source / "grader"
    grader.mkdir()
    shutil.copy(root / "pyproject.toml", grader)
    shutil.copytree(PACKAGE, grader / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
    (out / "setup.sh").write_text(SETUP)
    (out / "run_autograder").write_text(RUN.format(assignment=assignment, visibility=visibility))
    for script in ("setup.sh", "run_autograder"):
        (out / script).chmod(0o755)
    return Path(shutil.make_archive(str(out), "zip", out))


def hidden_seed_secret(course: Path) -> str:
    """The course's secret file for hidden cases, relative to ``course``, if its
    configuration names one (``c.IsolatedExecute.hidden_seed_secret``)."""
    from .batch import course_config

    return str(course_config(course).IsolatedExecute.get("hidden_seed_secret", "") or "")


def notebook_name(source: Path, assignment: str) -> str:
    """The assignment's one notebook, by the packaged gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{source / 'gradebook.db'}") as gradebook:
        (notebook,) = gradebook.find_assignment(assignment).notebooks
        return notebook.name


def failure(message: str) -> dict:
    return {"score": 0.0, "output": message, "tests": []}


def run(assignment: str, source: Path, root: Path, visibility: str) -> int:
    """Grade the one notebook in ``root/submission`` and write ``root/results/results.json``."""
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # Where the sandbox shares this file system (a container: the setuid sandbox),
        # the packaged gradebook's hidden tests must be the grader's alone.
        source.chmod(0o700)
    found = sorted(p for p in (root / "submission").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        out.write_text(json.dumps(failure(f"Submit exactly one notebook (.ipynb); this submission has {names}.")))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        course = Path(scratch)
        # A course of one learner, with a copy of the packaged gradebook to record into.
        shutil.copy(source / "nbgrader_config.py", course)
        shutil.copy(source / "gradebook.db", course)
        secret = hidden_seed_secret(source)
        if secret and (source / secret).exists():
            (course / secret).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / secret, course / secret)
        target = course / "submitted" / LEARNER / assignment / f"{notebook_name(source, assignment)}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(found[0], target)
        graded = subprocess.run([sys.executable, "-m", "autograder.batch", assignment, "--workers", "1",
                                 "--hidden-visibility", visibility], cwd=course, capture_output=True, text=True)
        path = course / "results" / assignment / LEARNER / "results.json"
        if not path.exists():
            message = graded.stderr.strip().splitlines()[-1] if graded.stderr.strip() else "the grader failed"
            out.write_text(json.dumps(failure(f"This submission could not be graded: {message}")))
            return 0
        shutil.copy(path, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", metavar="ASSIGNMENT")
    parser.add_argument("--out", type=Path, help="the bundle's folder (default: gradescope/ASSIGNMENT)")
    parser.add_argument("--hidden-visibility", choices=VISIBILITIES, default="after_due_date",
                        help="when learners see the reports of hidden tests (default: %(default)s)")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=Path("/autograder"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return run(args.assignment, args.source, args.root, args.hidden_visibility)
    out = args.out or Path("gradescope") / args.assignment
    bundle = build(Path.cwd(), args.assignment, out, args.hidden_visibility)
    print(f"Gradescope autograder for {args.assignment}: {bundle} (upload it; its files are in {out}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
