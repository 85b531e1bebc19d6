"""No notebook can hold the grader: every exchange with the sandbox has a deadline, a
notebook has a time budget and a number of cells, and what it sends back is capped.
Each past-the-bound case costs that notebook (or that cell) alone, with the reason."""

from __future__ import annotations

import time

import nbformat
import pytest

from autograder.judge import MAX_CELL_OUTPUT, MAX_CELL_SOURCE, Judge, TrustedTest, sanitize_outputs
from autograder.sandbox import Sandbox, SandboxFailure

STEP_TEST = TrustedTest('score = grade("gd-step", gd_step, points=3)\nscore', 3.0)

#: Learner code that reaches the worker's own functions (it runs in the worker's process).
WORKER = """
import sys
worker = vars(sys.modules["autograder.worker"])
"""


def test_a_worker_that_stops_reading_costs_one_request():
    with Sandbox() as box:
        box.request({"op": "exec", "code": WORKER + "import time\n"
                     "worker['read_exactly'] = lambda fd, n: time.sleep(3600)"}, 60)
        start = time.monotonic()
        with pytest.raises(SandboxFailure, match="time limit of 3 s") as failure:
            box.request({"op": "exec", "code": "#" * 4_000_000}, 3)
        assert failure.value.timed_out and time.monotonic() - start < 10
        assert not box.alive


def test_an_answer_nested_past_any_parser_breaks_the_protocol():
    code = WORKER + """
import os, struct
def nested(fd, message):
    body = b'{"seq":%d,"op":"done","outputs":' % message["seq"] + b"[" * 50000 + b"]" * 50000 + b"}"
    os.write(fd, struct.pack(">I", len(body)) + body)
worker["write_message"] = nested
"""
    with Sandbox() as box:
        with pytest.raises(SandboxFailure, match="protocol"):
            box.request({"op": "exec", "code": code}, 60)


def notebook(*cells):
    made = []
    for cell in cells:
        if isinstance(cell, tuple):
            test = nbformat.v4.new_code_cell(cell[1].source)
            test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": cell[0], "points": 3}
            made.append(test)
        elif cell.startswith("#md "):
            made.append(nbformat.v4.new_markdown_cell(cell[4:]))
        else:
            made.append(nbformat.v4.new_code_cell(cell))
    return nbformat.v4.new_notebook(cells=made)


STEP = "import torch\ndef gd_step(params, grads, lr):\n    with torch.no_grad():\n" \
       "        for p, g in zip(params, grads):\n            p.sub_(g, alpha=lr)\n"


def text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)


def score(cell) -> float:
    return float(cell.outputs[-1]["data"]["text/plain"])


def test_a_notebook_past_its_time_budget_scores_zero_after_it():
    book = notebook(STEP, "import time\ntime.sleep(120)", ("gd-step-tests", STEP_TEST))
    start = time.monotonic()
    Judge({"gd-step-tests": STEP_TEST}, timeout=60, budget=12).run(book)
    assert time.monotonic() - start < 30
    assert "time budget of 12 s" in text(book.cells[1])
    assert "Not graded: the notebook used up its time budget of 12 s." in text(book.cells[2])
    assert score(book.cells[2]) == 0.0


def test_cells_past_the_limit_do_not_run_and_the_tests_after_them_score_zero():
    cells = [STEP] + ["x = 1"] * 5
    book = notebook(*cells, ("gd-step-tests", STEP_TEST), "#md " + "x" * (MAX_CELL_SOURCE + 1))
    Judge({"gd-step-tests": STEP_TEST}, max_cells=4).run(book)
    assert not text(book.cells[3]) and "Not run: the notebook has more than 4 cells to run." in text(book.cells[4])
    assert "Not graded: the notebook has more than 4 cells to run." in text(book.cells[6])
    assert score(book.cells[6]) == 0.0
    assert len(book.cells[7].source) < 100


def test_within_the_limits_the_same_notebook_earns_its_points():
    book = notebook(STEP, "x = 1", ("gd-step-tests", STEP_TEST), "#md a short note")
    Judge({"gd-step-tests": STEP_TEST}, max_cells=4).run(book)
    assert score(book.cells[2]) == 3.0 and book.cells[3].source == "a short note"


def test_a_cell_keeps_a_bounded_share_of_its_outputs():
    image = "A" * 1_900_000
    kept = sanitize_outputs([{"output_type": "display_data", "data": {"image/png": image}}] * 48)
    assert sum(len(o.get("text", "")) + sum(map(len, o.get("data", {}).values())) for o in kept) <= MAX_CELL_OUTPUT + 200
    assert "were not kept" in kept[-1]["text"]


def test_long_markdown_and_attachments_are_cut_to_a_note():
    from autograder.judge import cut_long_text_cells

    book = notebook("#md short", "#md " + "x" * (MAX_CELL_SOURCE + 1), "#md ![a](attachment:a.png)")
    book.cells[2]["attachments"] = {"a.png": {"image/png": "A" * MAX_CELL_SOURCE}}
    cut_long_text_cells(book)
    assert book.cells[0].source == "short"
    assert all("was cut" in c.source and "attachments" not in c for c in book.cells[1:])
