"""What both reports share: the jinja2 environment (autoescaping) and rendering; plotly.js for the group report."""

from __future__ import annotations

from functools import lru_cache

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from flairqc_app import __version__
from flairqc_app.report.verdict import CATEGORIES

# Compact JSON; NaN is refused so that JSON.parse never meets a bare NaN (rows are cleaned before).
# jinja2's |tojson escapes <, >, & and ' as \u003c..., so "</script>" or "<!--" in a value stays inside.
_JSON_POLICY = {"sort_keys": False, "allow_nan": False, "separators": (",", ":")}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flairqc_app.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["json.dumps_kwargs"] = _JSON_POLICY
    env.globals.update(categories=CATEGORIES, flairqc_version=__version__)
    return env


@lru_cache(maxsize=1)
def plotly_js() -> Markup:
    """plotly.js (minified, ~4.8 MB), inlined once in the group report so it works offline (no CDN)."""
    return Markup(get_plotlyjs())


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
