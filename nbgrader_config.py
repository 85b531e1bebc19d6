"""nbgrader configuration for the course (run nbgrader from the repository root).

The course's folders are nbgrader's folders: the reference solutions in solutions/ are
nbgrader's source step, and the learner notebooks in exercises/ are its release step.

Autograding never runs a submission's code in nbgrader's own process, nor in a kernel
shared with the tests: autograder.autograde.IsolatedExecute takes the place of
nbgrader's Execute, runs the learner's cells in a sandbox (bubblewrap) and grades each
test cell outside it, from the gradebook's copy.
"""

from autograder.autograde import GradebookMetadata, IsolatedExecute
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "gd2adam"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# A submission's nbgrader metadata is replaced by the gradebook's before nbgrader reads it
# (a learner's edited schema_version, say, would otherwise stop autograde for the class).
c.Autograde.sanitize_preprocessors = [
    ClearOutput, GradebookMetadata, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    IsolatedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]
# A cell of the submission may run this long; one observation of a check (a few hundred
# optimizer steps) this long. Both allow well over what a slow machine needs, and stop a
# submission that hangs. Results are cached in .autograder-cache/, so an interrupted run
# resumes; delete that folder to grade everything afresh.
c.IsolatedExecute.timeout = 120
c.IsolatedExecute.probe_timeout = 60

# What a learner's solution cell holds in the release.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# zip_collect: files downloaded from a learning-management system, named
# <student-id>_<anything>_<notebook>.ipynb or <student-id>_<notebook>.ipynb (notebook names
# in this course contain no underscores and do not end in -<digits>). A re-submission that
# the system renamed <notebook>-1.ipynb (Canvas does) is collected as <notebook>.ipynb.
# Adjust to your system's naming.
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[^/_]+)_(?:[^/]*_)?(?P<file_id>[^/_]+?)(?:-\d+)?\.ipynb$"
)

# Feedback shows each check's report, never the source of the hidden tests.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
