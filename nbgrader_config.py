"""nbgrader configuration for the course (run nbgrader from the repository root).

The course's folders are nbgrader's folders: the reference solutions in solutions/ are
nbgrader's source step, and the learner notebooks in exercises/ are its release step.

Autograding never runs a submission's code in nbgrader's own process, nor in a kernel
shared with the tests: autograder.autograde.IsolatedExecute takes the place of
nbgrader's Execute, runs the learner's cells in a sandbox (bubblewrap) and grades each
test cell outside it, from the gradebook's copy.
"""

from autograder.autograde import GradebookMetadata, IsolatedExecute
from autograder.intake import NAMED_REGEXP
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
# A whole notebook (an honest one takes well under a minute) may take this long and run this
# many cells; past either, its remaining test cells score zero, with the reason.
c.IsolatedExecute.notebook_timeout = 600
c.IsolatedExecute.max_cells = 200

# nbgrader collect refuses a submission that holds anything but the notebooks (a link to the
# gradebook, say), which nbgrader's own copy would follow.
c.ExchangeFactory.collect = "autograder.intake.CheckedCollect"

# What a learner's solution cell holds in the release.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# zip_collect: files downloaded from a learning-management system, named
# <student-id>_<anything>_<notebook>.ipynb or <student-id>_<notebook>.ipynb (notebook names
# in this course contain no underscores and do not end in -<digits>), where a student id is
# a letter or digit and up to 63 letters, digits, dots, @ and hyphens
# (autograder.intake.LEARNER_ID); a file named otherwise is not collected. A re-submission
# that the system renamed <notebook>-1.ipynb (Canvas does) is collected as <notebook>.ipynb.
# Archives are unpacked entry by entry: an entry whose name leaves the folder, or has a
# backslash or control character, is refused alone.
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = NAMED_REGEXP
c.ZipCollectApp.extractor_plugin = "autograder.intake.CheckedExtractor"

# Feedback shows each check's report, never the source of the hidden tests. The HTML of
# learners' markdown cells and outputs is sanitized (no script, no event handler, no
# javascript: link), in the feedback and in the formgrader alike.
c.HTMLExporter.sanitize_html = True
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
