"""The course outside its checkout, where learners and instructors work: the grader
installed by a notebook's setup cell into a Python that has nothing of the course, and
grading from a second clone of the repository."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, run
from submissions import SUBMISSIONS, grade_id, source_notebook

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import course_site  # noqa: E402

pytestmark = pytest.mark.slow
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: What a Colab user has before the setup cell runs: torch, numpy, matplotlib and
#: Jupyter's kernel and notebook runner, at the course's pinned versions.
COLAB = ["torch", "numpy", "matplotlib", "ipykernel", "nbclient", "nbformat"]


def clean_copy(destination: Path) -> Path:
    """The checkout's files as a clone of it would have them (tracked, or new and not
    ignored): no environment, no build, no gradebook."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=course", "-c", "user.email=course@example.org", *args],
                   cwd=cwd, check=True, capture_output=True)


def pinned(names: list[str]) -> list[str]:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    return [f"{name}=={pins[name]}" for name in names]


def fresh_environ(venv: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "NBGRADER_EXECUTION")}
    environ["PATH"] = os.pathsep.join([str(venv / "bin"), environ.get("PATH", "")])
    return environ


EXECUTE = """
import json, sys
import nbformat
from nbclient import NotebookClient

results = {}
for path in sys.argv[1:]:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": "."}}).execute()
    nbformat.write(notebook, path)
    cells = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cells[cell.metadata.get("nbgrader", {}).get("grade_id") or cell.id] = cell.outputs
    results[path] = cells
print(json.dumps(results))
"""


@pytest.mark.release
def test_a_notebook_installs_the_grader_anywhere_and_grades_from_any_folder(tmp_path):
    """Like Colab: a Python with torch, numpy and matplotlib but not the grader. The first
    notebook's setup cell installs the grader (from a clean clone at the notebook's version,
    where a published notebook names the course's repository) without touching torch; every
    release notebook filled with the reference code earns full marks in the kernel; and
    `python -m autograder` / `gd2adam-grade`, run in a folder that is no checkout, gives full
    marks (exit 0) to those and none to the blank releases (exit 1), saying why."""
    source = clean_copy(tmp_path / "repository")
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-q", "-m", "release", cwd=source)
    git("tag", f"v{VERSION}", cwd=source)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    environ = fresh_environ(venv)
    # Colab's pip is a recent one (the one Python 3.11 comes with reads no git+file: URL).
    pip = f"pip=={importlib.metadata.version('pip')}"
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", pip, *pinned(COLAB)],
                             env=environ, capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    torch_before = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], env=environ,
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert subprocess.run([python, "-c", "import autograder"], env=environ, cwd=tmp_path,
                          capture_output=True).returncode != 0, "the fresh environment has the grader"

    # The published notebooks name the course's repository; these, the local clone.
    setup = course_site.grader_setup_cell(f"file://{source}", VERSION)
    filled, blank = tmp_path / "filled", tmp_path / "blank"
    assignments = sorted({s.assignment for s in SUBMISSIONS})
    for assignment in assignments:
        reference = next(s for s in SUBMISSIONS if s.assignment == assignment and s.name == "reference")
        for folder, notebook in ((filled, reference.notebook()), (blank, nbformat.read(
                ROOT / "exercises" / assignment / source_notebook(assignment).name, as_version=4))):
            for cell in notebook.cells:
                if grade_id(cell) == course_site.GRADER_CELL:
                    cell.source = setup
            folder.mkdir(exist_ok=True)
            nbformat.write(notebook, folder / source_notebook(assignment).name)
    notebooks = [source_notebook(a).name for a in assignments]

    executed = subprocess.run([python, "-c", EXECUTE, *notebooks], cwd=filled, env=environ,
                              capture_output=True, text=True, timeout=3000)
    assert executed.returncode == 0, executed.stderr[-3000:]
    results = json.loads(executed.stdout)
    said = ["".join(o.get("text", "") for o in results[name][course_site.GRADER_CELL]) for name in notebooks]
    assert said[0] == f"Installed the grader {VERSION}; torch {torch_before} as before.\n", said[0]
    assert all(line == f"Using the grader {VERSION}.\n" for line in said[1:]), said
    installed = subprocess.run([python, "-c", "import autograder, torch; print(autograder.__file__, torch.__version__)"],
                               env=environ, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert Path(installed[0]).is_relative_to(venv) and installed[1] == torch_before
    for name in notebooks:
        for cell in nbformat.read(filled / name, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and cell.cell_type == "code":
                values = [o["data"]["text/plain"] for o in cell.outputs if o.output_type == "execute_result"]
                assert values and float(values[0]) == meta["points"], (name, meta["grade_id"], cell.outputs)

    graded = subprocess.run([python, "-m", "autograder", *notebooks], cwd=filled, env=environ,
                            capture_output=True, text=True, timeout=3000)
    assert graded.returncode == 0, graded.stdout[-4000:] + graded.stderr[-3000:]
    totals = re.findall(r"^Total: (\S+) / (\S+) points$", graded.stdout, re.M)
    assert len(totals) == len(notebooks) and all(a == b for a, b in totals), graded.stdout
    assert "FAIL" not in graded.stdout

    graded = subprocess.run([str(venv / "bin" / "gd2adam-grade"), *notebooks], cwd=blank, env=environ,
                            capture_output=True, text=True, timeout=3000)
    assert graded.returncode == 1, graded.stdout[-4000:] + graded.stderr[-3000:]
    totals = re.findall(r"^Total: (\S+) / (\S+) points$", graded.stdout, re.M)
    assert len(totals) == len(notebooks) and all(a == "0" for a, _ in totals), graded.stdout
    assert " ".join(graded.stdout.split()).count("replace `raise NotImplementedError()` with your code") >= 6
    assert "Traceback" not in graded.stdout + graded.stderr


def test_a_second_clone_grades_with_its_own_grader(tmp_path):
    """The environment's editable install points at this checkout; nbgrader run in another
    clone grades with that clone's grader, in the judge and in the sandbox alike (a sandbox
    that ran other code than its judge would stop grading), and gives the predicted grades."""
    found = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).is_relative_to(ROOT):
        pytest.skip(f"the environment's grader is not this checkout's ({found})")
    clone = clean_copy(tmp_path / "clone")
    # A mark of the clone's own grader in every report it writes.
    judge = clone / "autograder" / "judge.py"
    judge.write_text(judge.read_text().replace('VISIBLE_LABEL = "visible checks', 'VISIBLE_LABEL = "clone\'s checks'))
    assignment = "01-gradient-descent"
    chosen = [s for s in SUBMISSIONS if s.assignment == assignment][:3]
    run(["nbgrader", "generate_assignment", assignment, "--force"], cwd=clone)
    for submission in chosen:
        submission.write(clone / "submitted" / submission.name / assignment / source_notebook(assignment).name)
    result = run(["nbgrader", "autograde", assignment], cwd=clone, timeout=1200)
    assert "SandboxUnavailable" not in result.stdout + result.stderr

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{clone / 'gradebook.db'}") as gradebook:
        for submission in chosen:
            graded = gradebook.find_submission_notebook(source_notebook(assignment).stem, assignment,
                                                        submission.name)
            scores = {grade.name: grade.score for grade in graded.grades if grade.cell_type == "code"}
            assert scores == pytest.approx(submission.scores), submission.name
            autograded = (clone / "autograded" / submission.name / assignment
                          / source_notebook(assignment).name).read_text()
            assert "clone's checks" in autograded, "the reports are not the clone's grader's"
