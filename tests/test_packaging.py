"""The grader as a package learners install anywhere: what it carries, what it needs, and
the setup cell that installs it where it is missing."""

from __future__ import annotations

import json
import re
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

import tasks
from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import course_site  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted((ROOT / "exercises").glob("*/*.ipynb"))


def pins() -> dict[str, str]:
    """requirements.txt's pinned versions, by normalised name."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_the_package_carries_the_releases_test_cells_as_generated_now(tmp_path):
    tasks.package_releases(ROOT / "exercises", tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(tasks.PACKAGED_RELEASES)
                       for p in tasks.PACKAGED_RELEASES.rglob("*") if p.is_file())
    assert generated == committed, "autograder/releases/ is stale: run `python3 tasks.py release`"
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (tasks.PACKAGED_RELEASES / relative).read_bytes(), (
            f"autograder/releases/{relative} is stale: run `python3 tasks.py release` and commit it")


def test_the_packaged_releases_hold_every_test_cell_and_no_hidden_test():
    for release in sorted((ROOT / "exercises").glob("*/*.ipynb")):
        packaged = json.loads((tasks.PACKAGED_RELEASES / release.parent.name / release.name).read_text())
        tests = [c for c in json.loads(release.read_text())["cells"]
                 if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
        assert tests and all(cell in packaged["cells"] for cell in tests), release.name
        assert "HIDDEN TESTS" not in json.dumps(packaged)


def test_the_package_declares_what_the_grader_and_the_notebooks_import():
    declared = {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
    assert {"torch", "numpy", "matplotlib", "pytest", "nbformat", "ipykernel"} <= set(declared)
    pinned = pins()
    for name, requirement in declared.items():
        # The tested environment is one the ranges allow.
        assert requirement.specifier.contains(pinned[name], prereleases=True), (name, pinned[name])
    # A range, never a pin: installed next to Colab's torch, the grader must keep it.
    assert not any(s.operator == "==" for s in declared["torch"].specifier)
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["autograder"]
    assert "releases/*/*.ipynb" in package_data


def setup_cell(path) -> dict:
    notebook = json.loads(path.read_text())
    return next(c for c in notebook["cells"] if c["cell_type"] == "code")


def test_every_notebook_starts_with_the_same_current_setup_cell():
    cells = {path: setup_cell(path) for path in NOTEBOOKS}
    sources = {"".join(cell["source"]) for cell in cells.values()}
    assert len(sources) == 1, "the notebooks' setup cells differ: run `python3 tasks.py release`"
    (source,) = sources
    named = re.search(r'^GRADER_SOURCE = "(?:git\+(.*)@v[^"]*)?"$', source, re.M)
    assert named, source
    expected = course_site.grader_setup_cell(named.group(1) or "", PYPROJECT["project"]["version"])
    assert source == expected, "the setup cell is not the current one: run `python3 tasks.py release`"
    for path, cell in cells.items():
        assert cell["metadata"]["nbgrader"]["grade_id"] == course_site.GRADER_CELL, path
        assert cell["metadata"]["nbgrader"]["locked"] and not cell["metadata"]["nbgrader"]["grade"]


def test_the_setup_cell_installs_from_the_repository_the_launch_buttons_open():
    url = course_site.launch_settings({"repository_url": ""}, {"COURSE_REPOSITORY_URL": "https://github.com/a/b/"})
    source = course_site.grader_setup_cell(url["repository_url"], "1.2.3")
    assert 'GRADER_SOURCE = "git+https://github.com/a/b@v1.2.3"' in source
    assert 'GRADER_VERSION = "1.2.3"' in source


@pytest.mark.parametrize("missing_url", [False, True])
def test_the_setup_cell_says_one_line_when_the_grader_is_there_or_cannot_be_had(tmp_path, missing_url):
    """In the course environment it finds the grader; where the grader is missing and the
    notebook names no repository, it stops with one sentence saying what to do."""
    import subprocess

    script = tmp_path / "cell.py"
    script.write_text(course_site.grader_setup_cell("", PYPROJECT["project"]["version"]))
    if missing_url:
        # A Python with no grader on its path: the standard library only.
        command = [sys.executable, "-I", "-S", str(script)]
    else:
        command = [sys.executable, str(script)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    if missing_url:
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "RuntimeError: The course's grader is not installed, and this notebook does not say where "
            "it comes from: pip install \"gd2adam-autograder @ git+<the course's repository>\"")
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"Using the grader {PYPROJECT['project']['version']}.\n"
