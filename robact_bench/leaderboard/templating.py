"""Jinja2 environments for the leaderboard pages, and the page's CSS and script as package files.

The templates (``templates/*.j2``) and the static files (``static/board.css``,
``static/board.js``) ship inside the package (``[tool.setuptools.package-data]``), so a wheel
renders the same pages as a checkout. HTML templates escape every value (Jinja2's autoescape);
Markdown templates escape every value for Markdown (:func:`md_escape`, applied to each
``{{ ... }}`` by the environment). A value marked :class:`markupsafe.Markup` is inserted as is:
only text produced by this package (a rendered section, the CSS, the script) is so marked.
"""

from __future__ import annotations

import html
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "md_code", "md_escape", "render_template", "static_text"]

PACKAGE = "robact_bench.leaderboard"


def md_escape(value: Any) -> str:
    """A value as Markdown text: one line, HTML-escaped, Markdown's active characters escaped.

    ``Markup`` passes unchanged (already rendered by this package); ``None`` is the empty string.
    """
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    out = html.escape(" ".join(str(value).split()), quote=False)
    for ch in ("\\", "`", "*", "|"):
        out = out.replace(ch, "\\" + ch)
    return out


def md_code(value: Any) -> Markup:
    """A Markdown code span (backslash escapes do not work inside one: ``|`` and backticks are replaced)."""
    return Markup("`" + html.escape(str(value).replace("`", "'").replace("|", "/"), quote=False) + "`")


@lru_cache(maxsize=2)
def _environment(markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=not markdown,
        finalize=md_escape if markdown else None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["code"] = md_code
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>``: ``*.md.j2`` with Markdown escaping, anything else with HTML autoescape."""
    return _environment(name.endswith(".md.j2")).get_template(name).render(**context)


@cache
def static_text(name: str) -> str:
    """The text of ``static/<name>`` (the page's CSS or script), as shipped in the package."""
    return resources.files(PACKAGE).joinpath("static", name).read_text(encoding="utf-8")
