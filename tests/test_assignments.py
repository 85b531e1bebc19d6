"""The assignments hold together: sources validate, the committed release is exactly
what nbgrader generates, nothing of the solutions or hidden tests leaks into it, and the
notebooks follow the course's conventions."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

import tasks
from autograder import known_parts
from conftest import ROOT, run
from submissions import grade_id
from test_checks import GRADE_CALL

ASSIGNMENTS = tasks.assignments()
SOURCES = sorted((ROOT / "solutions").glob("*/*.ipynb"))
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.DOTALL)


def nbgrader_cells(path):
    notebook = nbformat.read(path, as_version=4)
    return [(cell, cell.metadata.get("nbgrader", {})) for cell in notebook.cells]


def secret_lines(path) -> set[str]:
    """Lines of solution and hidden-test regions that appear nowhere else in the source."""
    secret, public = set(), set()
    for cell, _ in nbgrader_cells(path):
        regions = SOLUTION.findall(cell.source) + HIDDEN.findall(cell.source)
        hidden = {line.strip() for region in regions for line in region.splitlines()}
        outside = SOLUTION.sub("", HIDDEN.sub("", cell.source))
        public |= {line.strip() for line in outside.splitlines()}
        secret |= hidden
    return {line for line in secret - public if len(line) > 3}


def secret_blocks(path) -> list[list[str]]:
    """What would give an answer away: each hidden-test line on its own, and each solution
    region as its (stripped, non-blank) lines. See :func:`leaked`."""
    blocks = []
    for cell, _ in nbgrader_cells(path):
        for region in HIDDEN.findall(cell.source):
            blocks += [[line.strip()] for line in region.splitlines() if line.strip()]
        for region in SOLUTION.findall(cell.source):
            blocks.append([line.strip() for line in region.splitlines() if line.strip()])
    return blocks


def leaked(text: str, blocks: list[list[str]], run: int = 3) -> list[str]:
    """The blocks that ``text`` gives away: a hidden-test line anywhere, or ``run``
    consecutive lines of a solution region (all of it, if shorter). Generic lines that
    any gradient-descent code shares (`with torch.no_grad():`) do not count alone, nor
    do runs of short boilerplate."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = []
    for block in blocks:
        width = min(run, len(block))
        # A run of short boilerplate (`optimizer.zero_grad()`, `loss.backward()`,
        # `optimizer.step()`) is every PyTorch loop, not an answer: windows shorter than
        # 60 characters in all do not count.
        windows = {tuple(block[i:i + width]) for i in range(len(block) - width + 1)
                   if sum(map(len, block[i:i + width])) >= 60 or len(block) == 1}
        if any(tuple(lines[i:i + width]) in windows for i in range(len(lines) - width + 1)):
            found.append(" / ".join(block[:width]))
    return found


def test_there_is_at_least_one_assignment():
    assert ASSIGNMENTS and SOURCES


@pytest.mark.slow
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_source_notebook_passes_nbgrader_validate(path):
    result = run(["nbgrader", "validate", str(path)], cwd=ROOT, check=False)
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout + result.stderr
    assert "Partial credit" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_fails_nbgrader_validate(assignment):
    (path,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
    result = run(["nbgrader", "validate", str(path)], cwd=ROOT, check=False)
    assert "VALIDATION FAILED" in result.stdout, result.stdout + result.stderr
    # Each test cell is explained by the grader's report, never by nbgrader's "Partial
    # credit; passed some but not all of the tests" for a score of zero.
    assert "Partial credit" not in result.stdout
    tests = [cell for cell, meta in nbgrader_cells(path) if meta.get("grade") and cell.cell_type == "code"]
    assert result.stdout.count("This test cell earned 0 of its") == len(tests), result.stdout
    assert " ".join(result.stdout.split()).count("replace `raise NotImplementedError()` with your code") \
        >= len(tests), result.stdout


def test_committed_release_is_what_nbgrader_generates_now(tmp_path):
    tasks.generate_release(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT / "exercises")
                       for p in (ROOT / "exercises").rglob("*") if p.is_file())
    assert generated == committed, "exercises/ is stale: run `python3 tasks.py release`"
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (ROOT / "exercises" / relative).read_bytes(), (
            f"exercises/{relative} is stale: run `python3 tasks.py release` and commit it"
        )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_no_solution_or_hidden_test_line_leaks_into_the_release(path):
    secrets = secret_lines(path)
    assert secrets, "the source has no solution regions"
    release = ROOT / "exercises" / path.parent.name / path.name
    released = {line.strip() for cell, _ in nbgrader_cells(release) for line in cell.source.splitlines()}
    assert not secrets & released
    text = release.read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_source_notebooks_carry_no_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_cells_follow_the_naming_and_points_conventions(path):
    assert re.fullmatch(r"\d\d-[a-z0-9-]+", path.parent.name)
    assert re.fullmatch(r"[a-z0-9-]+\.ipynb", path.name), "notebook names use hyphens, not underscores"
    ids = [meta.get("grade_id") for _, meta in nbgrader_cells(path) if meta]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    solutions = {meta["grade_id"] for _, meta in nbgrader_cells(path) if meta.get("solution")}
    for cell, meta in nbgrader_cells(path):
        if not (meta.get("grade") and not meta.get("solution")):
            continue
        part = meta["grade_id"].removesuffix("-tests")
        assert meta["grade_id"] == f"{part}-tests"
        assert f"{part}-code" in solutions, f"{part}-tests has no {part}-code cell"
        assert part in known_parts()
        calls = list(GRADE_CALL.finditer(cell.source))
        assert calls, f"{meta['grade_id']} does not call grade()"
        for call in calls:
            assert call["part"] == part
            assert float(call["points"]) == meta["points"], (
                f"{meta['grade_id']}: grade(..., points={call['points']}) but the cell is worth "
                f"{meta['points']}"
            )
        assert HIDDEN.search(cell.source), f"{meta['grade_id']} has no hidden tests"
        assert cell.source.rstrip().endswith("score"), "the cell's value must be its score"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_notebook_selects_cuda_when_available(path):
    text = path.read_text()
    assert 'device = \\"cuda\\" if torch.cuda.is_available() else \\"cpu\\"' in text
