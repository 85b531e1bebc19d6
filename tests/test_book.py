"""The book builds with Sphinx warnings as errors, every page of the table of contents
is there, each chapter offers its exercise notebook, and no solution reaches the HTML."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest

from conftest import ROOT, toc_pages
from test_assignments import SOURCES, leaked, secret_blocks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.chunks = []

    def handle_data(self, data):
        self.chunks.append(data)


def visible_text(page) -> str:
    parser = _Text()
    parser.feed(page.read_text())
    return html.unescape("".join(parser.chunks))


def test_every_page_in_the_table_of_contents_is_built(book):
    for name in toc_pages():
        assert (book / f"{name}.html").is_file(), name


def test_every_chapter_links_its_exercise_and_the_download_is_the_release(book):
    for source in SOURCES:
        assignment = source.parent.name
        chapter = book / "book" / f"{assignment}.html"
        page = chapter.read_text()
        link = re.search(r'href="([^"]*_downloads/[^"]*/' + re.escape(source.name) + ')"', page)
        assert link, f"{chapter.name} does not offer {source.name} for download"
        downloaded = (chapter.parent / link.group(1)).resolve()
        release = ROOT / "exercises" / assignment / source.name
        assert downloaded.read_bytes() == release.read_bytes()


def test_no_solution_or_hidden_test_reaches_the_site(book):
    """Neither the pages nor any file the site serves (sources, downloads) shows a line
    of a solution or of a hidden test."""
    texts = {}
    for path in book.rglob("*"):
        if path.suffix == ".html":
            texts[path] = visible_text(path)
        elif path.suffix == ".ipynb":
            notebook = json.loads(path.read_text())
            texts[path] = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
        elif path.suffix in (".md", ".txt", ".py"):
            texts[path] = path.read_text(errors="replace")
    for source in SOURCES:
        blocks = secret_blocks(source)
        for path, text in texts.items():
            found = leaked(text, blocks)
            assert not found, f"{path.relative_to(book)} gives away {source.name}: {found}"
    assert not list(book.rglob("*solutions*")), "a file from solutions/ was copied into the site"


def test_no_chapter_cell_failed_while_building(book):
    """A figure that fails to render leaves an error output without failing the build."""
    for executed in (ROOT / "_build" / "jupyter_execute").rglob("*.ipynb"):
        notebook = json.loads(executed.read_text())
        for cell in notebook["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{executed.name}: {output.get('ename')}"
                assert output.get("name") != "stderr", f"{executed.name} wrote to stderr"


def test_no_glue_or_math_left_unrendered(book):
    for name in toc_pages():
        text = (book / f"{name}.html").read_text()
        assert "{glue" not in text, f"{name}: an unresolved glue role"
