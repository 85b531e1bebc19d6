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


def shared_folder(tmp_path_factory, worker_id: str) -> Path:
    """A folder that every xdist worker of this test run shares."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def once_in(shared: Path, name: str, build):
    """``build(folder)``, run once per test run however many processes ask for it: each
    gets ``(folder, result)``, with ``result`` what ``build`` returned (JSON-ready) and
    ``folder``, inside ``shared``, where it could write what others read.

    The first to ask builds under a lock and records the result; the others wait and
    read the record. (xdist groups do not keep such tests on one worker: pytest 9
    ignores the node ids xdist 3.8 rewrites to group tests.)
    """
    import json

    from filelock import FileLock

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


def once(tmp_path_factory, worker_id: str, name: str, build):
    """:func:`once_in` the test run's shared folder."""
    return once_in(shared_folder(tmp_path_factory, worker_id), name, build)


def build_book(shared: Path) -> dict:
    """The book, built as `python3 tasks.py book` builds it, once per test run."""
    import tasks

    def build(folder) -> dict:
        result = run(tasks.book_command(), cwd=ROOT, timeout=1500, check=False)
        if result.returncode == 0:
            tasks.book_built()
        return {"returncode": result.returncode,
                "log": result.stdout[-6000:] + result.stderr[-6000:]}

    return once_in(shared, "book-build", build)[1]


_background: list[subprocess.Popen] = []


def pytest_addoption(parser):
    parser.addoption("--release", action="store_true",
                     help="also run the checks marked release (CI runs them: python3 tasks.py test --release -m release)")


def skip_release_checks(config, items) -> None:
    """Checks marked ``release`` run only with ``--release``, and say so when skipped."""
    if config.getoption("release"):
        return
    skip = pytest.mark.skip(reason="a release check: runs with python3 tasks.py test --release (CI runs it)")
    for item in items:
        if "release" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(session, config, items):
    """Release checks are skipped unless asked for (:func:`skip_release_checks`).

    When tests that need the book are selected, the book starts building at once, in
    the background, rather than when the first of them asks for it (a worker would wait
    for it idle). Whoever comes first builds; the others wait for its record."""
    skip_release_checks(config, items)
    if not any("book" in getattr(item, "fixturenames", ()) for item in items):
        return
    from filelock import FileLock

    factory = config._tmp_path_factory
    worker = getattr(config, "workerinput", {}).get("workerid", "master")
    shared = shared_folder(factory, worker)
    with FileLock(str(shared / "book-background.lock")):
        marker = shared / "book-background.started"
        if marker.exists():
            return
        marker.touch()
    code = "import sys; from pathlib import Path; import conftest; conftest.build_book(Path(sys.argv[1]))"
    _background.append(subprocess.Popen(
        [sys.executable, "-c", code, str(shared)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(course_environ(), PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))))


def pytest_sessionfinish(session, exitstatus):
    """The background build ends with the run (a run cut short does not leave it going)."""
    for process in _background:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            process.kill()
        process.wait()


@pytest.fixture(scope="session")
def book(tmp_path_factory, worker_id):
    """The built site, built exactly as `python3 tasks.py book` builds it (cached
    execution, so quick when the book is up to date), once per test run: a second build
    would rewrite the site's files (the executed notebooks in _sources/ among them)
    while another worker's tests read them."""
    import tasks

    outcome = build_book(shared_folder(tmp_path_factory, worker_id))
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
