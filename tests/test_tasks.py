"""The book build's own change tracking (``tasks.book_command``): what Sphinx and the
execution cache cannot see is still rebuilt.

A chapter's cached outputs are keyed by its code alone, so a change to a helper module it
imports must make it run again; a change to the bibliography or to the book's Sphinx
extension must rewrite every page."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

import tasks

PAGES = {
    "uses-helper.md": "```{code-cell}\nimport helper\nhelper.draw()\n```\n",
    "uses-other.md": "```{code-cell}\nfrom other import thing\n```\n",
    "plain.md": "```{code-cell}\nprint('helper')  # mentions the name, imports nothing\n```\n",
}


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course folder with three chapters, two helper modules, a bibliography and an
    execution cache holding a record of every chapter, as after a successful build."""
    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "references.bib").write_text("@misc{a, title={A}}\n")
    (book / "helper.py").write_text("def draw(): pass\n")
    (book / "other.py").write_text("thing = 1\n")
    (book / "_ext").mkdir()
    (book / "_ext" / "helper.py").write_text("def setup(app): pass\n")  # named like a chapter's helper
    for name, text in PAGES.items():
        (book / name).write_text(text)
    monkeypatch.setattr(tasks, "ROOT", tmp_path)
    monkeypatch.setattr(tasks, "BUILD_INPUTS_STAMP", tmp_path / "_build" / ".inputs.json")
    monkeypatch.setattr(tasks, "EXECUTION_CACHE", tmp_path / "_build" / ".jupyter_cache")
    cache = get_cache(tasks.EXECUTION_CACHE)
    for name, text in PAGES.items():
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# {name}\n{text}")])
        cache.cache_notebook_bundle(CacheBundleIn(notebook, str(book / name)), check_validity=False)
    tasks.book_built()
    return tmp_path


def cached_pages(course: Path) -> set[str]:
    return {Path(r.uri).name for r in get_cache(tasks.EXECUTION_CACHE).list_cache_records()}


def test_nothing_changed_means_an_incremental_build_from_the_cache(course):
    assert "--all" not in tasks.book_command()
    assert cached_pages(course) == set(PAGES)


def test_the_first_build_rewrites_every_page(course):
    tasks.BUILD_INPUTS_STAMP.unlink()
    assert "--all" in tasks.book_command()


def test_a_changed_helper_module_runs_again_exactly_the_chapters_that_import_it(course):
    (course / "book" / "helper.py").write_text("def draw(): print('new')\n")
    assert "--all" in tasks.book_command()
    assert cached_pages(course) == {"uses-other.md", "plain.md"}
    tasks.book_built()
    assert "--all" not in tasks.book_command()
    assert cached_pages(course) == {"uses-other.md", "plain.md"}


def test_a_failed_build_is_not_recorded_so_the_next_one_still_knows(course):
    (course / "book" / "other.py").write_text("thing = 2\n")
    tasks.book_command()  # the build that follows fails: book_built is not called
    assert "--all" in tasks.book_command()
    assert cached_pages(course) == {"uses-helper.md", "plain.md"}


def test_a_new_helper_module_counts_as_a_change(course):
    (course / "book" / "extra.py").write_text("")
    assert "--all" in tasks.book_command()
    assert cached_pages(course) == set(PAGES)


def test_a_changed_bibliography_rewrites_every_page_but_executes_nothing_again(course):
    (course / "references.bib").write_text("@misc{b, title={B}}\n")
    assert "--all" in tasks.book_command()
    assert cached_pages(course) == set(PAGES)


def test_a_changed_extension_rewrites_every_page_but_executes_nothing_again(course):
    (course / "book" / "_ext" / "helper.py").write_text("def setup(app): return {}\n")
    assert "--all" in tasks.book_command()
    assert cached_pages(course) == set(PAGES)


def test_setup_installs_postgresql_where_it_is_missing(monkeypatch):
    """The gradebook tests need a PostgreSQL server: setup installs Debian's package like
    bubblewrap, and names it where it cannot."""
    monkeypatch.setattr(tasks.shutil, "which", lambda name: None if name in ("pg_ctlcluster", "initdb")
                        else f"/usr/bin/{name}")
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 1000)
    notes = []
    monkeypatch.setattr(tasks, "log", notes.append)
    tasks.ensure_system_packages()
    assert notes == ["note: install postgresql with your package manager (the gradebook tests start a "
                     "PostgreSQL server of their own; without it they are skipped)"]
