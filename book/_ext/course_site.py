"""Sphinx extension for the course's site: the few things Jupyter Book 1 leaves undone.

- MathJax is served by the site itself (from the ``django-static-mathjax`` package's
  copy of MathJax 3), so equations render without a CDN: offline, behind a firewall, and
  in the test suite's browser.
- An inline script registered twice by sphinx-thebe is emitted once; twice, the second
  copy redeclares a ``const`` and the browser logs an error on every page.
- ``static/course_site.css`` lets the conventions page's table use the page's width, and
  the algorithm boxes' formulas fit a phone's width.
- ``static/explorable.js`` draws the chapters' explorable figures (sliders over curves the
  chapter computed at build time, written into the page as JSON by ``chapter.explorable``)
  as SVG, in the browser, with no kernel and nothing fetched from elsewhere.
- Every chapter offers its notebook as ``.ipynb`` (executed, with its outputs, also when
  it came from the execution cache) in the theme's download menu, not only the MyST
  source.
- The launch buttons (Binder, Colab, JupyterHub) get the repository they open from the
  build environment when ``_config.yml`` names none: the book is published from whatever
  repository builds it. Colab can open only ``.ipynb`` files from GitHub, so pages written
  as MyST markdown (the chapters) offer no Colab button.
- :func:`grader_setup_cell` is the first code cell of every exercise notebook, which
  installs the grader from that same repository where it is missing (Colab, say);
  ``python3 tasks.py release`` writes it into the notebooks. Colab opens those very
  files from the repository, so the Colab button is offered only when each of them
  installs the grader from the repository the buttons open (:func:`colab_cannot_grade`):
  elsewhere a learner there would have no grader.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

MATHJAX_SCRIPT = "mathjax/tex-mml-chtml.js"
STYLESHEET = "course_site.css"
EXPLORABLE_SCRIPT = "explorable.js"
#: The launch_buttons keys that each make a button.
LAUNCH_PROVIDERS = ("binderhub_url", "colab_url", "jupyterhub_url")


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


def with_cached_outputs(app, path: Path) -> bytes:
    """The executed notebook at ``path``, with its outputs.

    When a chapter comes from the execution cache, myst-nb writes the notebook it read,
    not the one it merged with the cached outputs; the outputs are merged here instead.
    """
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if not code or any(cell.get("outputs") for cell in code):
        return path.read_bytes()
    cache_path = app.config.nb_execution_cache_path or str(Path(app.outdir).parent / ".jupyter_cache")
    try:
        _, merged = get_cache(cache_path).merge_match_into_notebook(notebook)
    except KeyError:  # not in the cache: it really has no outputs
        return path.read_bytes()
    return nbformat.writes(merged).encode("utf-8")


def copy_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for pagename in app.env.found_docs:
        notebook = executed_notebook(app, pagename)
        # A page written as .ipynb (an exercise) is offered as itself: Sphinx copies it.
        if notebook.exists() and Path(app.env.doc2path(pagename)).suffix != ".ipynb":
            target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(with_cached_outputs(app, notebook))


def launch_settings(theme_options: Mapping, environ: Mapping[str, str]) -> dict:
    """The theme options that place the launch buttons, filled in from the environment.

    An explicit ``repository.url`` in ``_config.yml`` wins. Otherwise the repository is
    ``COURSE_REPOSITORY_URL``, or the one GitHub Actions builds (``GITHUB_SERVER_URL``
    and ``GITHUB_REPOSITORY``), on the branch ``COURSE_REPOSITORY_BRANCH``, else
    ``GITHUB_REF_NAME``, else ``main``. ``COURSE_JUPYTERHUB_URL`` sets the JupyterHub
    button's hub. Returns the updated options (a new dict).
    """
    options = dict(theme_options)
    if not options.get("repository_url"):
        url = environ.get("COURSE_REPOSITORY_URL", "")
        if not url and environ.get("GITHUB_REPOSITORY"):
            server = environ.get("GITHUB_SERVER_URL", "https://github.com")
            url = f"{server.rstrip('/')}/{environ['GITHUB_REPOSITORY']}"
        options["repository_url"] = url.rstrip("/")
        branch = environ.get("COURSE_REPOSITORY_BRANCH") or environ.get("GITHUB_REF_NAME")
        if branch:
            options["repository_branch"] = branch
    options["repository_branch"] = options.get("repository_branch") or "main"
    buttons = dict(options.get("launch_buttons") or {})
    if environ.get("COURSE_JUPYTERHUB_URL"):
        buttons["jupyterhub_url"] = environ["COURSE_JUPYTERHUB_URL"]
    if not options["repository_url"]:
        # Nothing to launch from: no buttons (the theme would fail to build their links).
        buttons = {k: v for k, v in buttons.items() if k not in LAUNCH_PROVIDERS}
    options["launch_buttons"] = buttons
    return options


#: The grade_id of the exercise notebooks' first code cell, :func:`grader_setup_cell`.
GRADER_CELL = "grader-setup"
#: The grader's distribution name (pyproject.toml).
GRADER_DISTRIBUTION = "gd2adam-autograder"


def grader_source(repository_url: str, version: str) -> str:
    """Where pip gets the grader of release ``version``: the repository's tag ``v<version>``."""
    return f"git+{repository_url}@v{version}" if repository_url else ""


def grader_setup_cell(repository_url: str, version: str) -> str:
    """The source of the cell that makes the grader importable, the same in every notebook.

    Where the grader is installed (the course environment, a JupyterHub with it) it says
    which version it found. Elsewhere it installs release ``version`` from the course's
    repository, the one the launch buttons open, holding torch at the version already
    installed, so that pip fails rather than replace Colab's torch. One line of output.
    """
    return f'''# The grader that the test cells call. The course environment has it; anywhere else
# (Colab, your own Python) this cell installs it, without changing your torch.
GRADER_VERSION = "{version}"
GRADER_SOURCE = "{grader_source(repository_url, version)}"

import importlib.metadata, importlib.util, subprocess, sys, tempfile
if importlib.util.find_spec("autograder") is None:
    if not GRADER_SOURCE:
        raise RuntimeError("The course's grader is not installed, and this notebook does not say where "
                           "it comes from: pip install \\"{GRADER_DISTRIBUTION} @ git+<the course's repository>\\"")
    torch_before = importlib.util.find_spec("torch") and importlib.metadata.version("torch")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as pins:
        pins.write(f"torch=={{torch_before}}\\n" if torch_before else "")
        pins.flush()
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-color", "--constraint",
                              pins.name, f"{GRADER_DISTRIBUTION} @ {{GRADER_SOURCE}}"], capture_output=True, text=True)
    if pip.returncode:
        said = [line for line in (pip.stderr + pip.stdout).splitlines() if line.strip()] or ["no reason given"]
        said = [line for line in said if line.startswith("ERROR: ")] or said[-1:]
        raise RuntimeError(f"pip could not install the grader from {{GRADER_SOURCE}}: {{said[0].removeprefix('ERROR: ')}}")
    importlib.invalidate_caches()
    print(f"Installed the grader {{GRADER_VERSION}}; torch {{importlib.metadata.version('torch')}}"
          + (" as before." if torch_before else " was installed with it."))
else:
    try:
        found = importlib.metadata.version("{GRADER_DISTRIBUTION}")
    except importlib.metadata.PackageNotFoundError:
        found = "from " + importlib.util.find_spec("autograder").origin
    print(f"Using the grader {{found}}" + ("." if found == GRADER_VERSION else
          f"; this notebook comes with {{GRADER_VERSION}}, whose checks may differ."))'''


def place_launch_buttons(app, config) -> None:
    options = launch_settings(config.html_theme_options, os.environ)
    why = colab_cannot_grade(Path(app.srcdir), options["repository_url"])
    if why and options["launch_buttons"].get("colab_url"):
        from sphinx.util import logging

        options["launch_buttons"] = {k: v for k, v in options["launch_buttons"].items() if k != "colab_url"}
        logging.getLogger(__name__).info(f"no Colab buttons: {why}")
    config.html_theme_options = options


_GRADER_SOURCE = re.compile(r'^GRADER_SOURCE = "(.*)"$', re.M)


def colab_cannot_grade(root: Path, repository_url: str) -> str | None:
    """Why a learner who opens the exercise notebooks under ``root/exercises`` on Colab
    from ``repository_url`` would have no grader (None: each installs it from there)."""
    for path in sorted(root.glob("exercises/*/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        setup = next(("".join(c["source"]) for c in cells
                      if c["metadata"].get("nbgrader", {}).get("grade_id") == GRADER_CELL), "")
        named = _GRADER_SOURCE.search(setup)
        source = named.group(1) if named else ""
        if not repository_url or not source.startswith(f"git+{repository_url}@"):
            return (f"{path.relative_to(root)} installs the grader from {source or 'nowhere'}, not from "
                    f"{repository_url or 'a repository'}; write it into the notebooks with "
                    f"COURSE_REPOSITORY_URL={repository_url or '<url>'} python3 tasks.py release, and commit them "
                    "(README: Publishing the book)")
    return None


def drop_colab_for_text_notebooks(app, pagename, templatename, context, doctree) -> None:
    """Colab opens a GitHub file as notebook JSON: a MyST page's source is not one."""
    if context.get("page_source_suffix") == ".ipynb":
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            group["buttons"] = [b for b in group["buttons"] if b.get("text") != "Colab"]


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


def copy_static_files(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for name in (STYLESHEET, EXPLORABLE_SCRIPT):
        shutil.copyfile(Path(__file__).parent / "static" / name, Path(app.outdir) / "_static" / name)


def unique_box_ids(app, doctree):
    """sphinx-proof gives the body of every algorithm box the same id, ``proof-content``,
    so a page with two boxes repeats an id. Each body takes its box's: ``<box>-content``."""
    from docutils import nodes

    for section in doctree.findall(nodes.section):
        if "proof-content" in section["ids"] and section.parent is not None and section.parent["ids"]:
            section["ids"] = [f"{section.parent['ids'][0]}-content" if i == "proof-content" else i
                              for i in section["ids"]]


def setup(app):
    app.connect("doctree-read", unique_box_ids)
    app.connect("config-inited", place_launch_buttons)
    app.connect("build-finished", copy_static_files)
    app.add_css_file(STYLESHEET)
    app.add_js_file(EXPLORABLE_SCRIPT, defer="defer")
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", copy_notebooks)
    app.connect("html-page-context", offer_notebook, priority=100)
    # Early: a later handler may return a template name, which ends the event.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    # After the theme has made its launch buttons (priority 501).
    app.connect("html-page-context", drop_colab_for_text_notebooks, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
