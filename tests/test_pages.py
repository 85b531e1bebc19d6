"""What a reader of a chapter sees by default: the code that teaches. The code that proves
a claim sits in a collapsed check cell, the code that only puts numbers into the prose is
removed from the page, and a chapter's visible code stays within a budget (the rule is in
README.md, "Writing a chapter"). Read from the MyST sources: no build needed."""

from __future__ import annotations

import ast
import re

import jupytext
import pytest

from conftest import ROOT

CHAPTERS = sorted((ROOT / "book").glob("0*.md"))
PAGES = CHAPTERS + [ROOT / "book" / name for name in ("intro.md", "conventions.md", "convention-tests.md")]
#: The most lines of code a chapter may show before a reader clicks anything.
VISIBLE_LINES_BUDGET = 700
#: The tags that collapse a cell's code behind a toggle, and those that leave it off the page.
COLLAPSED = {"hide-input", "hide-cell"}
REMOVED = {"remove-input", "remove-cell"}
CHECK_PROMPT = "Show the check"
CHECK_CALL = re.compile(r"^(glue\w*|np\.testing\.\w+|torch\.testing\.\w+)$")


def code_cells(page):
    return [cell for cell in jupytext.read(page).cells if cell.cell_type == "code"]


def shown(cell) -> bool:
    """Whether the cell's code is on the page when it opens."""
    return not (set(cell.metadata.get("tags", [])) & (COLLAPSED | REMOVED))


def is_figure(cell) -> bool:
    mystnb = cell.metadata.get("mystnb", {})
    return "figure" in mystnb or "image" in mystnb


def is_check(cell) -> bool:
    return cell.metadata.get("mystnb", {}).get("code_prompt_show") == CHECK_PROMPT


def visible_lines(page) -> int:
    """Non-blank lines of code shown before any toggle is opened."""
    return sum(1 for cell in code_cells(page) if shown(cell)
               for line in cell.source.splitlines() if line.strip())


def _name(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def checking_lines(source: str) -> list[str]:
    """The lines of ``source`` that assert a claim or glue a number into the prose."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) or (
                isinstance(node, ast.Call) and CHECK_CALL.match(_name(node.func))):
            found.append(source.splitlines()[node.lineno - 1].strip())
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_visible_cell_asserts_or_glues(page):
    """A claim's proof and the formatting of quoted numbers are one click away (a check
    cell) or off the page (a removed cell), never among the lines a reader reads."""
    offending = [line for cell in code_cells(page) if shown(cell)
                 for line in checking_lines(cell.source)]
    assert not offending, f"{page.name} shows checks in teaching cells: {offending}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_a_cell_that_asserts_is_a_named_check(page):
    """A claim's proof is a check cell, collapsed: its toggle says "Show the check" and its
    first line, a ``# check:`` comment, says what it proves. (A figure's code, collapsed
    too, may check what it draws.)"""
    for cell in code_cells(page):
        asserts = [line for line in checking_lines(cell.source) if not line.startswith("glue")]
        if shown(cell) or set(cell.metadata.get("tags", [])) & REMOVED or is_figure(cell) or not asserts:
            continue
        first = cell.source.lstrip().splitlines()[0]
        assert is_check(cell) and first.startswith("# check: "), (
            f"{page.name}: a collapsed cell asserts but is not a named check: {first!r}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_check_cell_asserts_something(page):
    """A cell shown as a check proves something: it can fail."""
    for cell in code_cells(page):
        if is_check(cell):
            assert any(not line.startswith("glue") for line in checking_lines(cell.source)), (
                f"{page.name}: a check cell that asserts nothing: {cell.source[:80]!r}")


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_shows_at_most_its_budget_of_code(page):
    lines = visible_lines(page)
    assert lines <= VISIBLE_LINES_BUDGET, (
        f"{page.name} shows {lines} lines of code (the budget is {VISIBLE_LINES_BUDGET}): "
        "collapse checks and figure code, remove formatting")


def without_docstring(node) -> str:
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def test_no_helper_is_written_in_two_chapters():
    """What several chapters need is written once, in book/chapter.py: no function or
    class has the same code (its docstring aside) in two chapters."""
    written = {}
    for page in CHAPTERS:
        for cell in code_cells(page):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    key = (node.name, without_docstring(node))
                    written.setdefault(key, set()).add(page.name)
    twice = {name: sorted(pages) for (name, _), pages in written.items() if len(pages) > 1}
    assert not twice, f"written in more than one chapter: {twice}"
