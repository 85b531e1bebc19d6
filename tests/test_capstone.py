"""The capstone chapter's recipe for dropping a learner's optimizers into the page works
as the page tells it: the exercises' classes, pasted with the chapter's own lines into a
cell below the one it names, reproduce torch.optim in the chapter's check."""

from __future__ import annotations

import re
import textwrap

import nbformat
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
CHAPTER = ROOT / "book" / "07-capstone.md"
#: The cell the chapter tells learners to put their classes below, and the cell of its check.
BELOW = 'OPTIMIZERS["Adagrad"] = lambda params, lr: PlainAdagrad(params, lr=lr)'
CHECK = "drop_in_gaps = {"


def exercise_classes() -> list[str]:
    """The optimizer classes of the exercises as a learner who reaches the capstone has
    them: the solution cells of every ``*-optimizer`` part of the chapters before it (the
    chapters after it teach optimizers the capstone does not race)."""
    return [source for grade_id, source in solution_cells() if grade_id.endswith("-optimizer-code")]


def solution_cells() -> list[tuple[str, str]]:
    """Every solution cell of the exercises before the capstone, as (grade_id, source)."""
    cells = []
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        if path.parent.name[:2] >= CHAPTER.name[:2]:
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                cells.append((meta["grade_id"], cell.source))
    return cells


def helpers_of_the_classes() -> list[str]:
    """The exercises' functions that their optimizer classes call (FastAdam calls
    adam_step_), which the recipe therefore has learners paste too."""
    classes = "\n".join(exercise_classes())
    return [source for _, source in solution_cells()
            if (name := re.match(r"def (\w+)", source)) and re.search(rf"\b{name.group(1)}\(", classes)]


def recipe_lines(text: str) -> str:
    """The lines the chapter tells learners to paste after their classes."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", text, re.MULTILINE | re.DOTALL)
    (block,) = [body for indent, body in blocks if 'OPTIMIZERS["SGD"]' in body]
    return textwrap.dedent(block)


def test_the_recipe_names_every_class_the_exercises_define():
    text = CHAPTER.read_text()
    defined = {re.match(r"class (\w+)", cell).group(1) for cell in exercise_classes()}
    used = set(re.findall(r"(\w+)\(\s*params", recipe_lines(text)))
    assert defined == used, "the chapter's recipe and the exercises' classes disagree"
    for name in defined:
        assert f"`class {name}`" in text, f"the recipe does not mention {name}"
    for helper in helpers_of_the_classes():
        name = re.match(r"def (\w+)", helper).group(1)
        assert f"`def {name}`" in text, f"the recipe does not mention {name}, which a class calls"
    # the page's own code never calls a class by a bare name that a learner's pasted
    # class would shadow (it writes torch.optim.Adam in full), as the chapter says
    code = "\n".join(re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, re.M | re.S))
    bare = re.findall(r"(?<![\w.])(" + "|".join(defined) + r")\(", code)
    assert not bare, f"the chapter calls {bare} by a bare name"


def test_exercise_classes_dropped_in_as_the_chapter_says_reproduce_torch_optim():
    import jupytext
    from nbclient import NotebookClient

    text = CHAPTER.read_text()
    notebook = jupytext.reads(text, fmt="myst")
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    (below,) = [i for i in code if notebook.cells[i].source.rstrip().endswith(BELOW)]
    (check,) = [i for i in code if CHECK in notebook.cells[i].source]
    learner = "\n\n\n".join(helpers_of_the_classes() + exercise_classes() + [recipe_lines(text)])
    # every entry was replaced, and every one reproduces torch.optim
    verdict = textwrap.dedent("""\
        assert set(drop_in_gaps) == set(OPTIMIZERS), drop_in_gaps
        assert max(drop_in_gaps.values()) < CHECK_TOLERANCE, drop_in_gaps
        """)
    cells = notebook.cells[: below + 1] + [nbformat.v4.new_code_cell(learner)]
    cells += notebook.cells[below + 1 : check + 1] + [nbformat.v4.new_code_cell(verdict)]
    notebook.cells = cells
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", output.get("text")
