"""The published book as learners meet it: served over HTTP and opened in headless
Chromium, every page of the table of contents loads without a console error or a failed
request, its equations are typeset by MathJax, its images load, it fits a phone's width,
and its internal links and anchors resolve; every figure has alt text and reads on the
theme's dark background too. Screenshots of every page (light, dark, phone width) land in
test-artifacts/site/ for a person to look at.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

from browser import Browser, StaticServer, chromium_path
from conftest import ROOT, chapter_pages, exercise_pages, page_source, toc_pages

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts" / "site"
PHONE, DESKTOP = 390, 1280
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\frac|\\eta|\\theta|\\nabla|\\lambda")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium here: `python3 tasks.py setup` installs Debian's chromium "
                    "when run as root; otherwise install it with your package manager")
    with Browser(executable) as running:
        yield running


@pytest.fixture(scope="module")
def server(book):
    with StaticServer(book) as running:
        yield running


@pytest.mark.parametrize("page", toc_pages())
def test_page_loads_cleanly_with_math_typeset_and_images_shown(browser, server, page):
    tab = browser.open(f"{server.url}/{page}.html", width=DESKTOP)
    try:
        tab.screenshot(ARTIFACTS / f"{page.replace('/', '-')}-{DESKTOP}.png")
        assert tab.problems() == []
        # Prose only: code and its printed output may spell TeX commands on purpose.
        text = tab.evaluate(
            "(() => { const m = document.querySelector('main').cloneNode(true);"
            " m.querySelectorAll('pre, code, .highlight, .cell_output').forEach(e => e.remove());"
            " return m.innerText; })()")
        raw = sorted(set(RAW_TEX.findall(text)))
        assert not raw, f"{page}: TeX left unrendered: {raw}"
        source = page_source(page).read_text()
        if "$" in source:
            assert tab.evaluate("document.querySelectorAll('main mjx-container').length") > 0
        broken = tab.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))")
        assert broken == [], f"{page}: images that did not load: {broken}"
    finally:
        tab.close()


@pytest.mark.parametrize("page", toc_pages())
def test_page_reads_in_dark_mode(browser, server, page):
    """The theme's dark mode, switched on as pydata-sphinx-theme does, leaves every figure
    shown as it is (opaque, not inverted): the figures carry their own light background."""
    tab = browser.open(f"{server.url}/{page}.html", width=DESKTOP, dark=True)
    try:
        tab.evaluate('document.documentElement.dataset.theme = "dark"')
        tab.browser.pump(0.3)
        tab.screenshot(ARTIFACTS / f"{page.replace('/', '-')}-{DESKTOP}-dark.png")
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = map(int, re.findall(r"\d+", background)[:3])
        assert red + green + blue < 3 * 80, f"{page}: the page is not dark ({background})"
        shown = tab.evaluate(
            "Array.from(document.querySelectorAll('article img')).map(i => {"
            " const s = getComputedStyle(i); return [i.getAttribute('src'), s.opacity, s.filter]; })")
        for src, opacity, css_filter in shown:
            assert float(opacity) == 1 and "invert" not in css_filter, f"{page}: {src}"
    finally:
        tab.close()


@pytest.mark.parametrize("page", toc_pages())
def test_page_fits_a_phone_screen(browser, server, page):
    tab = browser.open(f"{server.url}/{page}.html", width=PHONE, height=844)
    try:
        tab.screenshot(ARTIFACTS / f"{page.replace('/', '-')}-{PHONE}.png")
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{page} is {overflow}px wider than a {PHONE}px screen"
    finally:
        tab.close()


class _ArticleImages(HTMLParser):
    """The ``<img>`` tags inside the page's ``<article>`` (its content, not the theme's
    header and navigation), as attribute dicts."""

    def __init__(self):
        super().__init__()
        self.depth, self.images = 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.depth += 1
        elif tag == "img" and self.depth:
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag == "article":
            self.depth -= 1


def article_images(book, page) -> list[dict]:
    parser = _ArticleImages()
    parser.feed((book / f"{page}.html").read_text())
    return parser.images


@pytest.mark.parametrize("page", toc_pages())
def test_every_figure_has_alt_text(book, page):
    missing = [img.get("src") for img in article_images(book, page)
               if not (img.get("alt") or "").strip()]
    assert missing == [], f"{page}: images without alt text: {missing}"


@pytest.mark.parametrize("page", chapter_pages())
def test_figures_have_an_opaque_light_background(book, page):
    """A transparent figure would show its black labels on the dark theme's background;
    an opaque light one reads the same in both modes."""
    from PIL import Image

    images = article_images(book, page)
    assert images, f"{page} has no figures"
    for img in images:
        with Image.open((book / page).parent / img["src"]) as picture:
            rgba = picture.convert("RGBA")
        alpha = rgba.getchannel("A")
        assert alpha.getextrema()[0] == 255, f"{page}: {img['src']} is partly transparent"
        width, height = rgba.size
        border = [rgba.getpixel((x, y))[:3] for x in range(0, width, 7) for y in (0, height - 1)]
        border += [rgba.getpixel((x, y))[:3] for y in range(0, height, 7) for x in (0, width - 1)]
        luminance = sum(0.299 * r + 0.587 * g + 0.114 * b for r, g, b in border) / len(border)
        assert luminance > 200, f"{page}: {img['src']} has a dark background"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids, self.repeated = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            if attrs["id"] in self.ids:
                self.repeated.append(attrs["id"])
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(path):
    parser = _Links()
    parser.feed(path.read_text())
    return parser


def test_internal_links_and_anchors_resolve(book):
    pages = {path: parse(path) for path in book.rglob("*.html") if "_static" not in path.parts}
    broken = []
    for path, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(book)} -> {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(book)} -> {link} (no such anchor)")
    assert broken == []


@pytest.mark.parametrize("page", toc_pages())
def test_no_page_repeats_an_html_id(book, page):
    """An anchor must name one place (and assistive technology relies on unique ids)."""
    assert parse(book / f"{page}.html").repeated == []


def offered_notebook(book, page):
    """The path of the ``.ipynb`` that the page's download menu offers."""
    html_page = book / f"{page}.html"
    match = re.search(r'href="([^"]*_sources/[^"]*\.ipynb)"', html_page.read_text())
    assert match, f"{page} offers no .ipynb download"
    return (html_page.parent / match.group(1)).resolve()


@pytest.mark.parametrize("page", chapter_pages() + exercise_pages())
def test_page_offers_its_notebook_as_ipynb(book, page):
    """The download menu offers the chapter or exercise as a Jupyter notebook, not only
    as its MyST source."""
    import nbformat

    notebook = nbformat.read(offered_notebook(book, page), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.get("outputs") is not None for cell in code)
    if page in chapter_pages():
        # executed, outputs and all, also when the chapter came from the execution cache
        assert any(cell.get("outputs") for cell in code), f"{page}'s notebook has no outputs"
    first = code[0].source.strip().splitlines()[0]
    assert first in page_source(page).read_text().replace("\\n", "\n").replace('\\"', '"')


@pytest.mark.parametrize("page", exercise_pages())
def test_exercise_page_offers_the_released_notebook_itself(book, page):
    """What a learner downloads from an exercise page is the release, byte for byte:
    unexecuted, with its YOUR CODE HERE cells, and never a solution."""
    assert offered_notebook(book, page).read_bytes() == page_source(page).read_bytes()


#: The explorable figures (book/_ext/static/explorable.js), by page: their HTML ids.
EXPLORABLES = {
    "book/02-momentum": ["explore-momentum"],
    "book/04-adam": ["explore-bias-correction"],
    "book/05-schedules": ["explore-schedules"],
}
#: What a figure looks like to a test: what its panels draw, what it says, its size.
_DRAWN = """(() => {
  const f = document.getElementById(%r);
  const panels = Array.from(f.querySelectorAll('svg.explorable-panel'));
  return {drawing: panels.map(s => s.innerHTML).join('|'),
          label: panels.map(s => s.getAttribute('aria-label')).join('|'),
          readout: (f.querySelector('.explorable-readout') || {}).textContent || '',
          marks: panels.reduce((n, s) => n + s.querySelectorAll('path.explorable-series, .explorable-cells rect, circle').length, 0),
          inputs: Array.from(f.querySelectorAll('input[type=range]')).map(i => [i.id, +i.value, +i.max]),
          width: f.getBoundingClientRect().width, overflow: f.scrollWidth - f.clientWidth,
          texts: [[getComputedStyle(panels[0].querySelector('text')).fill, background(panels[0])],
                  ...['figcaption', '.explorable-readout', 'label'].map(s => f.querySelector(s))
                     .filter(e => e).map(e => [getComputedStyle(e).color, background(e)])]};
  function background(e) {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && !c.endsWith(', 0)') && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  }
})()"""


def _contrast(foreground: str, background: str) -> float:
    """WCAG's contrast ratio of two CSS rgb() colours."""
    def luminance(css_color):
        channels = [float(c) / 255 for c in re.findall(r"[\d.]+", css_color)[:3]]
        red, green, blue = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                            for c in channels]
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("mode", ["light", "dark", "phone"])
@pytest.mark.parametrize("page,figure", [(p, f) for p, figures in EXPLORABLES.items() for f in figures])
def test_explorable_figure_redraws_when_a_control_moves(browser, server, page, figure, mode):
    """Each slider of an explorable figure changes what it draws and what it says, with no
    console error, on the light and the dark theme and on a phone's width; its labels,
    caption and readout contrast with what is behind them (WCAG's 4.5:1)."""
    width = PHONE if mode == "phone" else DESKTOP
    tab = browser.open(f"{server.url}/{page}.html", width=width, dark=mode == "dark")
    try:
        if mode == "dark":
            tab.evaluate('document.documentElement.dataset.theme = "dark"')
            tab.browser.pump(0.3)
        tab.evaluate(f"document.getElementById({figure!r}).scrollIntoView()")
        before = tab.evaluate(_DRAWN % figure)
        assert before["marks"] > 0 and before["inputs"], f"{figure} drew nothing: {before}"
        assert before["width"] <= width and before["overflow"] <= 1, f"{figure} is too wide: {before}"
        for foreground, background in before["texts"]:
            assert _contrast(foreground, background) >= 4.5, (
                f"{figure}: text {foreground} on {background} is hard to read")
        for control, value, top in before["inputs"]:
            moved = top if value != top else 0
            tab.evaluate(f"(() => {{ const i = document.getElementById({control!r}); i.value = {moved};"
                         " i.dispatchEvent(new Event('input', {bubbles: true})); })()")
            after = tab.evaluate(_DRAWN % figure)
            assert after["drawing"] != before["drawing"], f"{control} did not change {figure}"
            assert after["label"] != before["label"], f"{control} did not change what {figure} says"
            before = after
        tab.screenshot(ARTIFACTS / f"{figure}-{mode}.png")
        assert tab.problems() == []
    finally:
        tab.close()
