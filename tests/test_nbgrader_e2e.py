"""The instructor's path, end to end, with plain nbgrader in a scratch course folder:
generate_assignment, zip_collect, autograde, generate_feedback, export.

Each assignment's class is graded by one such run, and each submission's predicted
scores and feedback are checked in the gradebook, the feedback HTML and the exported
CSV. In every run the class is the reference, the blank release and the first realistic
mistake; a release's run (``--release``) grades every submission in
submissions.SUBMISSIONS. tests/test_checks.py grades every one of them through the
judge and the sandbox in every run.
"""

from __future__ import annotations

import csv
import html
import json
import shutil

import pytest

from conftest import ROOT, once, run
from submissions import SUBMISSIONS, mentions, source_notebook

pytestmark = pytest.mark.slow


def student_id(submission) -> str:
    return f"{submission.assignment[:2]}-{submission.name}"


def in_every_run(submission) -> bool:
    """Whether ``submission`` is in its assignment's class in every run, not only a release's."""
    of_assignment = [s for s in SUBMISSIONS if s.assignment == submission.assignment]
    mistakes = [s for s in of_assignment if s.name not in ("reference", "blank")]
    return submission.name in ("reference", "blank") or submission is mistakes[0]


@pytest.fixture
def graded_course(tmp_path_factory, worker_id, request):
    """A course folder where the class of an assignment (see the module) has been
    collected, autograded and given feedback, and the grades exported (once per
    assignment and run)."""
    everyone = request.config.getoption("release")

    def course_for(assignment):
        course, _ = once(tmp_path_factory, worker_id, f"course-{assignment}",
                         lambda folder: grade_class(assignment, folder, everyone))
        return course

    return course_for


def grade_class(assignment, course, everyone=True):
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    run(["nbgrader", "generate_assignment", assignment], cwd=course)
    archive = course / "downloaded" / assignment / "archive"
    notebook = source_notebook(assignment).name
    for submission in SUBMISSIONS:
        if submission.assignment == assignment and (everyone or in_every_run(submission)):
            submission.write(archive / f"{student_id(submission)}_attempt_{notebook}")
    run(["nbgrader", "zip_collect", assignment], cwd=course)
    run(["nbgrader", "autograde", assignment], cwd=course, timeout=1200)
    run(["nbgrader", "generate_feedback", assignment], cwd=course)
    run(["nbgrader", "export"], cwd=course)
    return {}


def gradebook_scores(course, submission) -> dict[str, float]:
    from nbgrader.api import Gradebook

    notebook = source_notebook(submission.assignment).stem
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        graded = gradebook.find_submission_notebook(notebook, submission.assignment,
                                                    student_id(submission))
        return {grade.name: grade.score for grade in graded.grades if grade.cell_type == "code"}


class Assignment:
    """One assignment's class, through the instructor's path. A test class per assignment
    (made below) lets xdist grade the assignments on different workers."""

    def test_autograde_records_the_predicted_score_for_each_cell(self, submission, graded_course):
        course = graded_course(submission.assignment)
        assert gradebook_scores(course, submission) == pytest.approx(submission.scores)

    def test_feedback_names_the_mistake(self, submission, graded_course):
        course = graded_course(submission.assignment)
        notebook = source_notebook(submission.assignment).stem
        page = course / "feedback" / student_id(submission) / submission.assignment / f"{notebook}.html"
        text = html.unescape(page.read_text())
        for fragment in submission.messages:
            assert mentions(text, fragment), fragment
        assert "BEGIN HIDDEN TESTS" not in text

    def test_export_lists_the_submission_with_its_total(self, submission, graded_course):
        course = graded_course(submission.assignment)
        with open(course / "grades.csv", newline="") as handle:
            rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(handle)}
        row = rows[(submission.assignment, student_id(submission))]
        reference = next(s for s in SUBMISSIONS
                         if s.assignment == submission.assignment and s.name == "reference")
        assert float(row["score"]) == pytest.approx(submission.total)
        assert float(row["max_score"]) == pytest.approx(reference.total)


for _assignment in sorted({s.assignment for s in SUBMISSIONS}):
    _class = f"TestAssignment{_assignment[:2]}"
    globals()[_class] = type(_class, (Assignment,), {"pytestmark": [pytest.mark.parametrize("submission", [
        s if in_every_run(s) else pytest.param(s, marks=pytest.mark.release)
        for s in SUBMISSIONS if s.assignment == _assignment], ids=lambda s: s.name)]})


def test_feedback_labels_each_test_cells_visible_and_hidden_reports(graded_course):
    from autograder.judge import HIDDEN_LABEL, VISIBLE_LABEL

    assignment = "01-gradient-descent"
    course = graded_course(assignment)
    reference = next(s for s in SUBMISSIONS if s.assignment == assignment and s.name == "reference")
    notebook = source_notebook(assignment)
    page = course / "feedback" / student_id(reference) / assignment / f"{notebook.stem}.html"
    text = html.unescape(page.read_text())
    tests = sum(1 for cell in json.loads(notebook.read_text())["cells"]
                if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("grade"))
    assert text.count(f"points ({VISIBLE_LABEL})") == tests
    assert text.count(f"points ({HIDDEN_LABEL})") == tests
