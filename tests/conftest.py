"""Shared fixtures: paths, the course environment for subprocesses, and notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def course_environ() -> dict[str, str]:
    """This interpreter's environment, with its bin/ first on PATH (nbgrader needs it)."""
    bindir = str(Path(sys.executable).parent)
    environ = dict(os.environ, PYTHONUNBUFFERED="1")
    environ["PATH"] = os.pathsep.join([bindir, environ.get("PATH", "")])
    environ.pop("NBGRADER_EXECUTION", None)
    return environ


def run(command: list[str], cwd: Path, timeout: float = 600, check: bool = True):
    """Run a command of the course environment and return the completed process."""
    bindir = Path(sys.executable).parent
    program = bindir / command[0]
    if program.exists():
        command = [str(program), *command[1:]]
    result = subprocess.run(command, cwd=cwd, env=course_environ(), capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def once(tmp_path_factory, worker_id: str, name: str, build):
    """``build(folder)`` run once per test run, however many xdist workers ask for it:
    each of them gets ``(folder, result)``, with ``result`` what ``build`` returned (JSON-
    ready). ``folder`` is shared by all workers, so what ``build`` writes there can be
    read by every test.

    The first worker to ask builds under a lock and records the result; the others wait
    and read the record. (xdist groups do not keep such tests on one worker: pytest 9
    ignores the node ids xdist 3.8 rewrites to group tests.)
    """
    import json

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # one folder for all workers of a run
    folder, record = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not record.exists():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = {"ok": build(folder)}
            except Exception:  # recorded, so that every test that needs it fails at once
                import traceback

                result = {"error": traceback.format_exc()[-8000:]}
            record.write_text(json.dumps(result))
    result = json.loads(record.read_text())
    if "error" in result:
        pytest.fail(f"building {name} failed:\n{result['error']}", pytrace=False)
    return folder, result["ok"]


@pytest.fixture(scope="session")
def book(tmp_path_factory, worker_id):
    """The built site, built exactly as `python3 tasks.py book` builds it (cached
    execution, so quick when the book is up to date), once per test run: a second build
    would rewrite the site's files (the executed notebooks in _sources/ among them)
    while another worker's tests read them."""
    import tasks

    def build(folder) -> dict:
        result = run(tasks.book_command(), cwd=ROOT, timeout=1500, check=False)
        if result.returncode == 0:
            tasks.book_built()
        return {"returncode": result.returncode,
                "log": result.stdout[-6000:] + result.stderr[-6000:]}

    _, outcome = once(tmp_path_factory, worker_id, "book-build", build)
    assert outcome["returncode"] == 0, (
        "the book build failed (warnings are errors):\n" + outcome["log"]
    )
    return tasks.HTML


def toc_pages() -> list[str]:
    """The pages of the table of contents, as paths without suffix (``book/intro``)."""
    import re

    return re.findall(r"(?:root|file):\s*(\S+)", (ROOT / "_toc.yml").read_text())


def chapter_pages() -> list[str]:
    """The chapters in the table of contents (``book/NN-topic``)."""
    import re

    return [page for page in toc_pages() if re.fullmatch(r"book/\d\d-[a-z0-9-]+", page)]


def exercise_pages() -> list[str]:
    """The exercise pages in the table of contents (the released notebooks)."""
    return [page for page in toc_pages() if page.startswith("exercises/")]


def page_source(page: str) -> Path:
    """The file a page of the table of contents is built from (.md or .ipynb)."""
    (source,) = [p for p in (ROOT / f"{page}.md", ROOT / f"{page}.ipynb") if p.exists()]
    return source
