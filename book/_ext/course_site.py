"""Sphinx extension for the course's site: the few things Jupyter Book 1 leaves undone.

- MathJax is served by the site itself (from the ``django-static-mathjax`` package's
  copy of MathJax 3), so equations render without a CDN: offline, behind a firewall, and
  in the test suite's browser.
- An inline script registered twice by sphinx-thebe is emitted once; twice, the second
  copy redeclares a ``const`` and the browser logs an error on every page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_SCRIPT = "mathjax/tex-mml-chtml.js"


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax distribution

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    # Speech rule files (sre) are only loaded on demand by the accessibility explorer.
    shutil.copytree(mathjax_source(), Path(app.outdir) / "_static" / "mathjax",
                    ignore=shutil.ignore_patterns("sre"), dirs_exist_ok=True)


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # An inline script's filename is None or "", depending on who added it.
        key = (str(getattr(script, "filename", script) or ""), attributes.get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("build-finished", copy_mathjax)
    # Early: a later handler may return a template name, which ends the event.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
