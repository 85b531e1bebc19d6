"""What reaches submitted/ is checked before it is graded or collected: only the
assignment's notebooks, no links, nothing else; and a graded result is only ever served
back to the learner it belongs to."""

from __future__ import annotations

import logging
import os

import nbformat
import pytest

from autograder.autograde import cache_key
from autograder.intake import CheckedCollect, SubmissionRefused, check_folder
from autograder.judge import TrustedTest

NOTEBOOKS = {"gradient-descent.ipynb"}


@pytest.fixture
def folder(tmp_path):
    submission = tmp_path / "submitted" / "ada" / "01-gradient-descent"
    submission.mkdir(parents=True)
    (submission / "gradient-descent.ipynb").write_text("{}")
    (submission / "timestamp.txt").write_text("2026-12-01 10:00:00")
    return submission


def test_the_notebooks_with_nbgraders_timestamp_and_caches_pass(folder):
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "gradient-descent-checkpoint.ipynb").write_text("{}")
    check_folder(folder, NOTEBOOKS)


@pytest.mark.parametrize("plant, reason", [
    (lambda f: (f / "gradebook.db").symlink_to(f.parents[2] / "gradebook.db"), "gradebook.db is a symbolic link"),
    (lambda f: ((f / "gradient-descent.ipynb").unlink(), (f / "gradient-descent.ipynb").symlink_to("/etc/hostname")),
     "gradient-descent.ipynb is a symbolic link"),
    (lambda f: (f / ".ipynb_checkpoints").symlink_to(f.parents[1]), ".ipynb_checkpoints is a symbolic link"),
    (lambda f: ((f / "__pycache__").mkdir(), (f / "__pycache__" / "x.pyc").symlink_to("/etc/hostname")),
     "__pycache__/x.pyc is a symbolic link"),
    (lambda f: ((f / "matplotlib").mkdir(), (f / "matplotlib" / "__init__.py").write_text("")),
     "matplotlib/ is a folder"),
    (lambda f: (f / "sitecustomize.py").write_text("import os"), "sitecustomize.py is not one of the assignment's"),
    (lambda f: (f / "other.ipynb").write_text("{}"), "other.ipynb is not one of the assignment's"),
    (lambda f: os.mkfifo(f / "pipe"), "pipe is not a plain file"),
], ids=["link-to-gradebook", "notebook-is-a-link", "link-in-place-of-a-cache", "link-inside-a-cache",
        "shadowing-package", "extra-module", "extra-notebook", "fifo"])
def test_anything_else_is_refused_with_its_reason(folder, plant, reason):
    plant(folder)
    with pytest.raises(SubmissionRefused, match=reason):
        check_folder(folder, NOTEBOOKS)


def test_a_student_folder_that_is_a_link_is_refused(folder):
    other = folder.parents[1] / "mallory"
    other.symlink_to(folder.parent)
    with pytest.raises(SubmissionRefused, match="mallory is a symbolic link"):
        check_folder(other / folder.name, NOTEBOOKS)
    check_folder(other / folder.name, NOTEBOOKS, student_folder=False)


def test_collect_refuses_a_submission_with_links_and_collects_the_others(tmp_path, monkeypatch, caplog):
    from nbgrader.coursedir import CourseDirectory

    monkeypatch.setattr("autograder.intake.assignment_notebooks", lambda db_url, assignment: NOTEBOOKS)
    inbound = tmp_path / "inbound"
    honest, linked = inbound / "ada+01-gradient-descent+1", inbound / "mallory+01-gradient-descent+1"
    for submission in (honest, linked):
        submission.mkdir(parents=True)
        (submission / "gradient-descent.ipynb").write_text('{"cells": []}')
    (tmp_path / "gradebook.db").write_text("secret")
    (linked / "gradebook.db").symlink_to(tmp_path / "gradebook.db")
    directory = CourseDirectory(root=str(tmp_path), assignment_id="01-gradient-descent")
    collect = CheckedCollect(coursedir=directory, log=logging.getLogger("collect"))
    with caplog.at_level(logging.ERROR, "collect"):
        for submission in (honest, linked):
            collect.do_copy(str(submission), str(tmp_path / "submitted" / submission.name.split("+")[0]))
    assert (tmp_path / "submitted" / "ada" / "gradient-descent.ipynb").exists()
    assert not (tmp_path / "submitted" / "mallory").exists()
    assert "mallory+01-gradient-descent+1: gradebook.db is a symbolic link" in caplog.text


def test_a_result_is_kept_for_its_learner_alone():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    tests = {"gd-step-tests": TrustedTest("score = 1\nscore", 1.0)}
    ada = cache_key(tests, notebook, {}, ("ada", "01-gradient-descent", "gradient-descent"))
    assert ada == cache_key(tests, notebook, {}, ("ada", "01-gradient-descent", "gradient-descent"))
    assert ada != cache_key(tests, notebook, {}, ("bob", "01-gradient-descent", "gradient-descent"))
    assert ada != cache_key(tests, notebook, {}, ("ada", "02-momentum", "gradient-descent"))


@pytest.mark.parametrize("name, student", [
    ("ada_attempt_2026-12-01_gradient-descent.ipynb", "ada"),
    ("s.lovelace@uni.example_gradient-descent.ipynb", "s.lovelace@uni.example"),
    ("..\\_x_gradient-descent.ipynb", None), ("..._gradient-descent.ipynb", None),
    ("=HYPERLINK(1)_gradient-descent.ipynb", None), ("=1+2_gradient-descent.ipynb", None),
    ("ada\nbob_gradient-descent.ipynb", None), ("-x_gradient-descent.ipynb", None),
    ("ada_x_gradient\\descent.ipynb", None),
])
def test_a_learner_id_has_one_documented_form(name, student):
    import re

    from autograder.intake import NAMED_REGEXP

    match = re.fullmatch(NAMED_REGEXP, f"/downloaded/extracted/{name}")
    assert (match and match["student_id"]) == student


def test_a_student_folder_that_is_not_a_learner_id_is_refused(tmp_path):
    folder = tmp_path / "=1+2" / "01-gradient-descent"
    folder.mkdir(parents=True)
    (folder / "gradient-descent.ipynb").write_text("{}")
    with pytest.raises(SubmissionRefused, match="learner id '=1\\+2' is not of the form"):
        check_folder(folder, NOTEBOOKS)


def test_an_archive_is_extracted_entry_by_entry(tmp_path, caplog):
    import stat
    import zipfile

    from autograder.intake import CheckedExtractor

    archive, extracted = tmp_path / "archive", tmp_path / "extracted"
    archive.mkdir()
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("cy_gradient-descent.ipynb", "{}")
    with zipfile.ZipFile(archive / "download.zip", "w") as download:
        download.writestr("ada_attempt_gradient-descent.ipynb", "{}")
        download.writestr("bo\\b_x_gradient-descent.ipynb", "{}")
        download.writestr("../../escaped_gradient-descent.ipynb", "{}")
        download.writestr("/abs_gradient-descent.ipynb", "{}")
        download.writestr("nl\n_gradient-descent.ipynb", "{}")
        link = zipfile.ZipInfo("link_gradient-descent.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        download.writestr(link, "/etc/passwd")
        download.write(inner, "folder/inner.zip")
    with caplog.at_level(logging.ERROR):
        CheckedExtractor(log=logging.getLogger("extract")).extract(str(archive), str(extracted))
    found = sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*") if p.is_file())
    assert found == ["download/ada_attempt_gradient-descent.ipynb", "download/folder/inner/cy_gradient-descent.ipynb"]
    assert not list(tmp_path.glob("escaped*")) and not (tmp_path.parent / "escaped_gradient-descent.ipynb").exists()
    for reason in ("backslash or a control character", "leaves the archive's folder", "symbolic link"):
        assert reason in caplog.text
