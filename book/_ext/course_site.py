"""Sphinx extension for the course's site: the few things Jupyter Book 1 leaves undone.

- MathJax is served by the site itself (from the ``django-static-mathjax`` package's
  copy of MathJax 3), so equations render without a CDN: offline, behind a firewall, and
  in the test suite's browser.
- An inline script registered twice by sphinx-thebe is emitted once; twice, the second
  copy redeclares a ``const`` and the browser logs an error on every page.
- Every chapter offers its notebook as ``.ipynb`` (executed, with its outputs) in the
  theme's download menu, not only the MyST source.
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


def executed_notebook(app, pagename: str) -> Path:
    return Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"


def offer_notebook(app, pagename, templatename, context, doctree) -> None:
    """Point the theme's ".ipynb" download button at the chapter's executed notebook."""
    if context.get("page_source_suffix") == ".md" and executed_notebook(app, pagename).exists():
        context["ipynb_source"] = f"{pagename}.ipynb"


def copy_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for pagename in app.env.found_docs:
        notebook = executed_notebook(app, pagename)
        if notebook.exists():
            target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, target)


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
    app.connect("build-finished", copy_notebooks)
    app.connect("html-page-context", offer_notebook, priority=100)
    # Early: a later handler may return a template name, which ends the event.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
