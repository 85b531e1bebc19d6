#!/usr/bin/env python3
"""The course's commands. Needs only Python 3.11; everything else it installs itself.

    python3 tasks.py book      build the HTML book into _build/html (sets up .venv first)
    python3 tasks.py test      run the whole test suite (sets up .venv first)
    python3 tasks.py setup     create or refresh the environment in .venv
    python3 tasks.py release   regenerate exercises/ (and the grader's copy of its test cells) from solutions/
    python3 tasks.py lock      re-pin requirements.txt from requirements.in
    python3 tasks.py bench     measure the benchmarks side by side and print their table

Extra arguments after ``test`` go to pytest (``python3 tasks.py test -k gd_step``), and
after ``bench`` to bench.py (``python3 tasks.py bench --only adam``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".course-requirements.sha256"
PYTHON_VERSION = (3, 11)
#: The book build: Sphinx warnings are errors, and nitpicky reference checking is on.
BOOK_BUILD = ["jupyter-book", "build", str(ROOT), "--builder", "html", "-W", "-n", "--keep-going"]
HTML = ROOT / "_build" / "html"
#: The release's graded code cells, shipped in the grader package so that it grades
#: notebooks wherever it is installed (autograder/notebook.py reads them).
PACKAGED_RELEASES = ROOT / "autograder" / "releases"


def log(message: str) -> None:
    print(f"[tasks] {message}", flush=True)


def run(command: list[str], **kwargs) -> None:
    log(" ".join(str(c) for c in command))
    result = subprocess.run(command, **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


#: System programs the course uses, by Debian package: (commands, package, what for).
SYSTEM_PACKAGES = [
    (("bwrap",), "bubblewrap", "the grader runs learners' code in a bubblewrap sandbox; without it, it refuses to grade"),
    (("chromium", "chromium-browser", "google-chrome"), "chromium", "the site tests drive a real browser; without it they are skipped"),
    # Debian's postgresql-common puts pg_ctlcluster on PATH; elsewhere initdb is there.
    (("pg_ctlcluster", "initdb"), "postgresql",
     "the gradebook tests start a PostgreSQL server of their own; without it they are skipped"),
]


def ensure_system_packages() -> None:
    """Install the Debian packages the course needs, when we can (root on Debian)."""
    missing = [(package, why) for commands, package, why in SYSTEM_PACKAGES
               if not any(shutil.which(name) for name in commands)]
    if not missing:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        names = [package for package, _ in missing]
        log(f"installing Debian's {', '.join(names)}")
        environ = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=environ)
        run(["apt-get", "install", "-y", "-qq", *names], env=environ)
    else:
        for package, why in missing:
            log(f"note: install {package} with your package manager ({why})")


def setup() -> None:
    """Create .venv with the pinned environment, or bring it up to date."""
    ensure_system_packages()
    if sys.version_info[:2] != PYTHON_VERSION:
        sys.exit(
            f"The course environment is pinned for Python {PYTHON_VERSION[0]}.{PYTHON_VERSION[1]}; "
            f"this is {sys.version.split()[0]}. Run this script with python3.11."
        )
    wanted = requirements_digest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        log(f"creating the environment in {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check"]
    run(pip + ["install", "--upgrade", "pip"])
    run(pip + ["install", "-r", str(ROOT / "requirements.txt")])
    run(pip + ["install", "--no-deps", "--editable", str(ROOT)])
    STAMP.write_text(wanted)
    log("environment ready")


def tool(name: str) -> str:
    return str(BIN / name)


def venv_environ() -> dict[str, str]:
    """The environment of an activated .venv (nbgrader runs helper programs from PATH)."""
    environ = dict(os.environ, VIRTUAL_ENV=str(VENV))
    environ["PATH"] = os.pathsep.join([str(BIN), environ.get("PATH", "")])
    return environ


#: What the last successful build saw of the inputs Sphinx's own change tracking misses
#: (see :func:`book_command`): a digest of each, by path.
BUILD_INPUTS_STAMP = ROOT / "_build" / ".inputs.json"
EXECUTION_CACHE = ROOT / "_build" / ".jupyter_cache"


def build_inputs() -> dict[str, str]:
    """The bibliography, the helper modules the chapters import (``book/*.py``) and the
    book's own Sphinx extension (``book/_ext/*.py``)."""
    paths = [ROOT / "references.bib", *sorted((ROOT / "book").glob("*.py")),
             *sorted((ROOT / "book" / "_ext").glob("*.py"))]
    return {p.relative_to(ROOT).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in paths}


def changed_build_inputs() -> set[str]:
    """The inputs that differ from the last successful build (all of them before the
    first)."""
    now = build_inputs()
    try:
        before = json.loads(BUILD_INPUTS_STAMP.read_text())
    except (OSError, ValueError):
        before = {}
    return {path for path in now.keys() | before.keys() if now.get(path) != before.get(path)}


def chapters_importing(modules: set[str]) -> list[Path]:
    """The chapters whose code imports one of ``modules`` (module names)."""
    pattern = re.compile(r"^\s*(?:import|from)\s+(%s)\b" % "|".join(map(re.escape, sorted(modules))),
                         re.MULTILINE)
    return [page for page in sorted((ROOT / "book").glob("*.md")) if pattern.search(page.read_text())]


#: Run with the environment's Python: drops the execution cache's records of some pages.
_FORGET_EXECUTIONS = """
import sys
from pathlib import Path
from jupyter_cache import get_cache
cache = get_cache(sys.argv[1])
stale = {Path(p).resolve() for p in sys.argv[2:]}
for record in cache.list_cache_records():
    if record.uri and Path(record.uri).resolve() in stale:
        cache.remove_cache(record.pk)
        print("re-executing", record.uri)
"""


def book_command() -> list[str]:
    """The book build, after making the execution cache forget what it cannot know is stale.

    Three inputs escape the usual tracking. A chapter's cached outputs are keyed by its own
    code, so a change to a helper module it imports (``book/plotting.py``,
    ``book/fast_adam.py``) would leave stale figures and numbers: those chapters' records
    are dropped from the cache, so they run again. And Sphinx rewrites only the pages whose
    sources changed, so after a change to ``references.bib`` the others would keep citation
    links numbered for the old bibliography, and after a change to the book's extension
    (``book/_ext/course_site.py``) pages made by the old one. Any of these rewrites every
    page (``--all``; cached execution still applies to the chapters that did not change)."""
    command = [tool(BOOK_BUILD[0]), *BOOK_BUILD[1:]]
    changed = changed_build_inputs()
    modules = {Path(path).stem for path in changed if Path(path).parent == Path("book") and path.endswith(".py")}
    stale = chapters_importing(modules) if modules else []
    if stale and EXECUTION_CACHE.exists():
        log("the chapters importing " + ", ".join(sorted(modules)) + " will run again")
        subprocess.run([str(PYTHON), "-c", _FORGET_EXECUTIONS, str(EXECUTION_CACHE), *map(str, stale)],
                       check=True)
    if changed:
        command.append("--all")
    return command


def book_built() -> None:
    """Record what a successful build saw."""
    BUILD_INPUTS_STAMP.parent.mkdir(parents=True, exist_ok=True)
    BUILD_INPUTS_STAMP.write_text(json.dumps(build_inputs(), indent=1, sort_keys=True))


def book() -> None:
    """Build the HTML book into _build/html, executing chapters (cached)."""
    setup()
    run(book_command(), cwd=ROOT, env=venv_environ())
    book_built()
    log(f"the book is in {HTML / 'index.html'}")


def test(args: list[str]) -> None:
    """Run the whole test suite."""
    setup()
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=venv_environ())
    sys.exit(result.returncode)


def bench(args: list[str]) -> None:
    """Run the benchmarks of bench.py and print one table of ratios."""
    setup()
    result = subprocess.run([str(PYTHON), str(ROOT / "bench.py"), *args], cwd=ROOT, env=venv_environ())
    sys.exit(result.returncode)


def assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


def generate_release(destination: Path, names: list[str] | None = None) -> None:
    """Run ``nbgrader generate_assignment`` in a scratch copy of the course and put the
    release of each assignment in ``destination/<assignment>/``.

    Working in a scratch copy keeps the instructor's gradebook.db out of it.
    """
    nbgrader = tool("nbgrader") if (BIN / "nbgrader").exists() else "nbgrader"
    with tempfile.TemporaryDirectory() as scratch:
        course = Path(scratch)
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions", course / "solutions",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for name in names or assignments():
            subprocess.run(
                [nbgrader, "generate_assignment", name, "--force", "--log-level=WARN"],
                cwd=course, check=True, env=venv_environ(),
            )
            target = destination / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(course / "exercises" / name, target)


def package_releases(releases: Path, destination: Path) -> None:
    """Write to ``destination/<assignment>/`` each release notebook of ``releases`` cut down
    to its nbgrader code cells: the test cells the grader restores and grades, and the
    cells around them that say where a deleted one belongs. Hidden tests are never in a
    release, so never in the package."""
    if destination.exists():
        shutil.rmtree(destination)
    for path in sorted(releases.glob("*/*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        notebook["cells"] = [cell for cell in notebook["cells"]
                             if cell["cell_type"] == "code" and "nbgrader" in cell["metadata"]]
        target = destination / path.parent.name / path.name
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def course_site():
    """The book's Sphinx extension, which says where the launch buttons (and the notebooks'
    grader) come from; it needs nothing but the standard library."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import course_site

    return course_site


def grader_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def grader_repository(notebooks: list[Path]) -> str:
    """The repository the notebooks' setup cell installs the grader from: the one the launch
    buttons open (``_config.yml``'s ``repository.url``, else the build environment's), or,
    when neither names one, the one the notebooks already name."""
    url = subprocess.run([str(PYTHON), "-c", "import yaml; print(yaml.safe_load(open('_config.yml'))"
                          "['repository']['url'] or '')"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    url = course_site().launch_settings({"repository_url": url}, os.environ)["repository_url"]
    if url:
        return url
    pattern = re.compile(r'^GRADER_SOURCE = "git\+(.*)@v[^"@]*"$', re.M)
    named = {m.group(1) for path in notebooks for m in pattern.finditer(path.read_text(encoding="utf-8"))}
    return named.pop() if len(named) == 1 else ""


def write_grader_cells(notebooks: list[Path], repository_url: str, version: str) -> None:
    """Make the first code cell of each notebook the grader's setup cell, the same in all of
    them (book/_ext/course_site.py writes it), placed before the notebook's other code."""
    site = course_site()
    source = site.grader_setup_cell(repository_url, version)
    for path in notebooks:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in notebook["cells"]
                 if c["metadata"].get("nbgrader", {}).get("grade_id") != site.GRADER_CELL]
        first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        cells.insert(first_code, {
            "cell_type": "code", "execution_count": None, "id": site.GRADER_CELL,
            "metadata": {"nbgrader": {"grade": False, "grade_id": site.GRADER_CELL, "locked": True,
                                      "schema_version": 3, "solution": False, "task": False}},
            "outputs": [], "source": source.splitlines(keepends=True),
        })
        notebook["cells"] = cells
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def release() -> None:
    """Write the grader's setup cell into solutions/, regenerate exercises/ from them, and
    the package's copy of its test cells (commit the result)."""
    setup()
    sources = sorted((ROOT / "solutions").glob("*/*.ipynb"))
    write_grader_cells(sources, grader_repository(sources), grader_version())
    generate_release(ROOT / "exercises")
    package_releases(ROOT / "exercises", PACKAGED_RELEASES)
    log("exercises/ and autograder/releases/ regenerated from solutions/; review and commit them")


def lock() -> None:
    """Re-pin requirements.txt from requirements.in in a throwaway environment."""
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
        run([python, "-m", "pip", "install", "-r", str(ROOT / "requirements.in")])
        frozen = subprocess.run([python, "-m", "pip", "freeze"], check=True,
                                capture_output=True, text=True).stdout
    # The CPU build reports itself as torch==X+cpu; pin the public version it satisfies.
    lines = [line.split("+")[0] if line.startswith("torch==") else line
             for line in frozen.splitlines()]
    header = ("# The pinned course environment (Python 3.11), generated from requirements.in by\n"
              "# `python3 tasks.py lock`. Do not edit by hand.\n")
    (ROOT / "requirements.txt").write_text(header + "\n".join(lines) + "\n")
    log("requirements.txt re-pinned")


def main(argv: list[str]) -> None:
    commands = {"setup": setup, "book": book, "release": release, "lock": lock}
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    name, rest = argv[0], argv[1:]
    if name == "test":
        test(rest)
    elif name == "bench":
        bench(rest)
    elif name in commands and not rest:
        commands[name]()
    else:
        sys.exit(f"unknown command {' '.join(argv)!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
