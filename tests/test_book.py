"""The book builds with Sphinx warnings as errors, every page of the table of contents
is there, each chapter offers its exercise notebook, and no solution reaches the HTML.
Every optimizer taught is a numbered algorithm box cited from its chapter, the papers
taught are in the bibliography, and the conventions table links each row to the section
that teaches it and the test that pins it down."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest

from conftest import ROOT, chapter_pages, toc_pages
from test_assignments import SOURCES, leaked, secret_blocks

pytestmark = pytest.mark.slow


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


#: The algorithm boxes ({prf:algorithm}) each chapter must show, by label.
ALGORITHMS = {
    "book/01-gradient-descent": ["alg-gd"],
    "book/02-momentum": ["alg-momentum", "alg-nesterov"],
    "book/03-rmsprop": ["alg-adagrad", "alg-rmsprop"],
    "book/04-adam": ["alg-adam", "alg-adamw", "alg-amsgrad"],
    "book/05-schedules": ["alg-cosine"],
    "book/06-fast-adam": ["alg-flat-adam"],
    "book/08-beyond-adam": ["alg-radam", "alg-nadam", "alg-adamax", "alg-adafactor", "alg-lion", "alg-muon"],
    "book/09-adam-in-practice": ["alg-clip-norm", "alg-master-adam", "alg-wsd"],
}


def test_each_optimizer_is_a_numbered_algorithm_cited_from_its_chapter(book):
    numbers = []
    for page, labels in ALGORITHMS.items():
        text = (book / f"{page}.html").read_text()
        for label in labels:
            box = re.search(r'<div class="[^"]*\balgorithm\b[^"]*" id="' + label + r'">(.*?)</p>',
                            text, re.S)
            assert box, f"{page} has no algorithm box {label}"
            number = re.search(r"Algorithm (\d+(?:\.\d+)*)", box.group(1))
            assert number, f"{label} is not numbered"
            numbers.append(number.group(1))
            assert f'href="#{label}"' in text, f"{page} never cites {label} with prf:ref"
    assert len(set(numbers)) == len(numbers), f"algorithm numbers repeat: {numbers}"


#: The papers the course teaches: bibliography key, a surname and the title.
PAPERS_TAUGHT = {
    "kingma2015adam": ("Kingma", "Adam: A Method for Stochastic Optimization"),
    "reddi2018convergence": ("Reddi", "On the Convergence of Adam and Beyond"),
    "loshchilov2017sgdr": ("Loshchilov", "SGDR: Stochastic Gradient Descent with Warm Restarts"),
    "loshchilov2019decoupled": ("Hutter", "Decoupled Weight Decay Regularization"),
    "polyak1964some": ("Polyak", "Some Methods of Speeding up the Convergence of Iteration Methods"),
    "sutskever2013importance": ("Sutskever", "On the Importance of Initialization and Momentum "
                                "in Deep Learning"),
    "tieleman2012rmsprop": ("Tieleman", "Divide the Gradient by a Running Average of Its "
                            "Recent Magnitude"),
    "duchi2011adaptive": ("Duchi", "Adaptive Subgradient Methods for Online Learning and "
                          "Stochastic Optimization"),
    "nesterov1983method": ("Nesterov", "A Method of Solving a Convex Programming Problem"),
    "liu2020variance": ("Liu", "On the Variance of the Adaptive Learning Rate and Beyond"),
    "dozat2016incorporating": ("Dozat", "Incorporating Nesterov Momentum into Adam"),
    "shazeer2018adafactor": ("Shazeer", "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost"),
    "chen2023symbolic": ("Chen", "Symbolic Discovery of Optimization Algorithms"),
    "jordan2024muon": ("Jordan", "Muon: An Optimizer for Hidden Layers in Neural Networks"),
}


def squashed(text: str) -> str:
    return " ".join(text.replace("{", "").replace("}", "").split()).casefold()


def test_the_bibliography_lists_every_paper_taught_and_only_cited_works(book):
    from pybtex.database import parse_file

    entries = parse_file(str(ROOT / "references.bib")).entries
    page = squashed(visible_text(book / "book" / "references.html"))
    for key, (surname, title) in PAPERS_TAUGHT.items():
        assert key in entries, f"references.bib lacks {key}"
        assert squashed(title) in squashed(entries[key].fields["title"]), key
        assert surname.casefold() in page and squashed(title) in page, f"{key} is not listed"
    listed = re.findall(r'role="doc-biblioentry"', (book / "book" / "references.html").read_text())
    assert len(listed) == len(entries), "a work in references.bib is cited nowhere"


def test_every_chapter_cites_into_the_bibliography(book):
    for page in chapter_pages():
        text = (book / f"{page}.html").read_text()
        assert re.search(r'href="references\.html#id\d+"', text), f"{page} cites nothing"


#: The conventions the table must line up, as the first cell of each row begins.
CONVENTIONS = ["Momentum form", "Dampening", "Where", "or", "AdamW", "AMSGrad",
               "Counting steps", "Past"]


def test_conventions_table_links_each_row_to_its_section_and_its_test(book):
    text = (book / "book" / "conventions.html").read_text()
    (body,) = re.findall(r"<tbody>(.*?)</tbody>", text, re.S)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    assert len(rows) == len(CONVENTIONS)
    tests_page = (book / "book" / "convention-tests.html").read_text()
    for row, name in zip(rows, CONVENTIONS):
        first_cell = html.unescape(re.sub(r"<[^>]+>", "", row.split("</td>")[0]))
        assert name in first_cell, f"expected the row on {name}, found {first_cell!r}"
        sections = re.findall(r'href="(0\d-[a-z0-9-]+\.html#sec-[a-z0-9-]+)"', row)
        assert sections, f"the row on {name} links no chapter section"
        tests = re.findall(r'href="convention-tests\.html#(test-[a-z0-9-]+)"', row)
        assert tests, f"the row on {name} links no test"
        for anchor in tests:
            shown = re.search(r'id="' + anchor + r'">(.*?)</section>', tests_page, re.S)
            assert shown and "def test_" in html.unescape(re.sub(r"<[^>]+>", "", shown.group(1)))
