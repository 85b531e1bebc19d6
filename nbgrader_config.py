"""nbgrader configuration for the course (run nbgrader from the repository root).

The course's folders are nbgrader's folders: the reference solutions in solutions/ are
nbgrader's source step, and the learner notebooks in exercises/ are its release step.
"""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "gd2adam"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# A test cell runs several hundred optimizer steps over a few seeds; allow well over the
# few seconds that takes on a slow machine, but stop a submission that hangs.
c.Execute.timeout = 120

# What a learner's solution cell holds in the release.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# zip_collect: files downloaded from a learning-management system, named
# <student-id>_<anything>_<notebook>.ipynb or <student-id>_<notebook>.ipynb (notebook names
# in this course contain no underscores). Adjust to your system's naming.
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[^/_]+)_(?:[^/]*_)?(?P<file_id>[^/_]+\.ipynb)$"
)

# Feedback shows each check's report, never the source of the hidden tests.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
