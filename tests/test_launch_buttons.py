"""The launch buttons that the published book shows, without building it: the Sphinx
configuration that ``_config.yml`` gives, completed from the build environment by
``book/_ext/course_site.py``, fed to the theme's own code that makes the buttons."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sphinx_book_theme.header_buttons import update_context_with_repository_info
from sphinx_book_theme.header_buttons.launch import add_launch_buttons

from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import course_site  # noqa: E402

GITHUB = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "someone/gd2adam",
          "GITHUB_REF_NAME": "main"}
CHAPTER, EXERCISE = "book/01-gradient-descent", "exercises/01-gradient-descent/gradient-descent"


def book_theme_options() -> dict:
    """``html_theme_options`` as Jupyter Book builds it from ``_config.yml``."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(user_yaml=ROOT / "_config.yml",
                                 cli_config={"latex_individualpages": False}, sourcedir=ROOT)
    return config["html_theme_options"]


class _Config(SimpleNamespace):
    def __getitem__(self, key):
        return getattr(self, key)


def launch_buttons(tmp_path: Path, environ: dict, page: str) -> dict[str, str]:
    """The theme's launch buttons for ``page`` (text -> URL) under ``environ``."""
    options = course_site.launch_settings(book_theme_options(), environ)
    source = next(p for p in (ROOT / f"{page}.md", ROOT / f"{page}.ipynb") if p.exists())
    outdir = tmp_path / "html"
    executed = tmp_path / "jupyter_execute" / f"{page}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.write_text("{}")  # the theme copies a MyST page's executed notebook
    app = SimpleNamespace(
        builder=None, outdir=str(outdir),
        config=_Config(html_theme_options=options, html_context={}),
        env=SimpleNamespace(doc2path=lambda name: str(source),
                            metadata={page: {"kernelspec": {"name": "python3"}}}))
    update_context_with_repository_info(app)
    context = dict(app.config.html_context, pagename=page, header_buttons=[],
                   sourcename=source.relative_to(ROOT).as_posix(),
                   page_source_suffix=source.suffix)
    add_launch_buttons(app, page, "page.html", context, None)
    course_site.drop_colab_for_text_notebooks(app, page, "page.html", context, None)
    groups = [g for g in context["header_buttons"] if g.get("label") == "launch-buttons"]
    return {b["text"]: b["url"] for group in groups for b in group["buttons"]}


def test_config_names_no_repository_of_its_own():
    """Jupyter Book's default repository is its own; the course's must come from where
    it is published, or the buttons would open someone else's notebooks."""
    options = book_theme_options()
    assert options["repository_url"] == ""
    buttons = options["launch_buttons"]
    assert buttons["binderhub_url"] and buttons["colab_url"]
    assert buttons["notebook_interface"] == "jupyterlab"


def test_a_local_build_has_no_launch_buttons(tmp_path):
    assert launch_buttons(tmp_path, {}, CHAPTER) == {}
    assert launch_buttons(tmp_path, {}, EXERCISE) == {}


def test_binder_opens_the_chapter_and_colab_only_notebook_files(tmp_path):
    chapter = launch_buttons(tmp_path, GITHUB, CHAPTER)
    assert chapter == {"Binder": "https://mybinder.org/v2/gh/someone/gd2adam/main"
                                 "?urlpath=lab/tree/book/01-gradient-descent.md"}
    exercise = launch_buttons(tmp_path, GITHUB, EXERCISE)
    assert exercise["Colab"] == ("https://colab.research.google.com/github/someone/gd2adam/"
                                 f"blob/main/{EXERCISE}.ipynb")
    assert exercise["Binder"].endswith(f"?urlpath=lab/tree/{EXERCISE}.ipynb")


def test_jupyterhub_pulls_the_repository_with_nbgitpuller(tmp_path):
    environ = dict(GITHUB, GITHUB_REF_NAME="spring-2026",
                   COURSE_JUPYTERHUB_URL="https://hub.example.edu/")
    url = urlsplit(launch_buttons(tmp_path, environ, EXERCISE)["JupyterHub"])
    assert (url.scheme, url.netloc, url.path) == ("https", "hub.example.edu",
                                                  "/hub/user-redirect/git-pull")
    assert parse_qs(url.query) == {"repo": ["https://github.com/someone/gd2adam"],
                                   "branch": ["spring-2026"],
                                   "urlpath": [f"lab/tree/gd2adam/{EXERCISE}.ipynb"]}


@pytest.mark.parametrize("environ, url, branch", [
    ({"COURSE_REPOSITORY_URL": "https://github.com/a/b/", "COURSE_REPOSITORY_BRANCH": "dev"},
     "https://github.com/a/b", "dev"),
    (dict(GITHUB, COURSE_REPOSITORY_URL="https://github.com/a/b"), "https://github.com/a/b", "main"),
    ({"GITHUB_SERVER_URL": "https://ghe.example.com", "GITHUB_REPOSITORY": "x/y"},
     "https://ghe.example.com/x/y", "main"),
])
def test_the_repository_comes_from_the_environment(environ, url, branch):
    options = course_site.launch_settings({"repository_url": "", "launch_buttons": {}}, environ)
    assert (options["repository_url"], options["repository_branch"]) == (url, branch)


def test_a_repository_named_in_the_config_wins():
    options = course_site.launch_settings(
        {"repository_url": "https://github.com/course/book", "repository_branch": "main",
         "launch_buttons": {"binderhub_url": "https://mybinder.org"}}, GITHUB)
    assert options["repository_url"] == "https://github.com/course/book"
    assert options["launch_buttons"] == {"binderhub_url": "https://mybinder.org"}



def notebook_installing_from(release: Path, target: Path, source: str) -> None:
    """A copy of ``release`` at ``target`` whose setup cell installs the grader from ``source``."""
    notebook = json.loads(release.read_text(encoding="utf-8"))
    cell = next(c for c in notebook["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == course_site.GRADER_CELL)
    cell["source"] = [f'GRADER_SOURCE = "{source}"\n' if line.startswith("GRADER_SOURCE = ") else line
                      for line in cell["source"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook), encoding="utf-8")



def test_colab_is_offered_only_where_the_notebooks_install_the_grader_from_that_repository(tmp_path):
    """Colab opens the committed exercise notebooks: a site must not offer it for notebooks
    whose setup cell installs the grader from nowhere or from another repository."""
    url = "https://github.com/someone/gd2adam"
    release = sorted((ROOT / "exercises").glob("*/*.ipynb"))[0]
    copy = tmp_path / "exercises" / release.parent.name / release.name
    for wrong in ("", course_site.grader_source("https://github.com/another/course", "0.1.0")):
        notebook_installing_from(release, copy, wrong)
        why = course_site.colab_cannot_grade(tmp_path, url)
        assert why and f"COURSE_REPOSITORY_URL={url} python3 tasks.py release" in why
    notebook_installing_from(release, copy, course_site.grader_source(url, "0.1.0"))
    assert course_site.colab_cannot_grade(tmp_path, url) is None
    assert course_site.colab_cannot_grade(tmp_path, "")  # no repository: nothing to open


def test_the_build_drops_the_colab_button_for_notebooks_that_cannot_grade(tmp_path, monkeypatch):
    for key, value in GITHUB.items():
        monkeypatch.setenv(key, value)
    release = sorted((ROOT / "exercises").glob("*/*.ipynb"))[0]
    config = SimpleNamespace(html_theme_options=book_theme_options())
    app = SimpleNamespace(srcdir=str(tmp_path))
    for source, colab in (("", False), (course_site.grader_source("https://github.com/someone/gd2adam", "0.1.0"), True)):
        notebook_installing_from(release, tmp_path / "exercises" / release.parent.name / release.name, source)
        config.html_theme_options = book_theme_options()
        course_site.place_launch_buttons(app, config)
        buttons = config.html_theme_options["launch_buttons"]
        assert bool(buttons.get("colab_url")) is colab and buttons.get("binderhub_url")
