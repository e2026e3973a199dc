"""Pages from `templates/web/` (Jinja2, autoescaped), with what every page needs: the
visitor's language, who is signed in, the CSRF token of the session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
from aiohttp import web
from markupsafe import Markup

from broadcaster.commands.access import may_try
from broadcaster.domain import localtime
from broadcaster.http.context import SERVICES
from broadcaster.web import i18n
from broadcaster.web.state import CONSOLE, LANG, SESSION, user_of

PAGES_DIR: Final = Path(__file__).resolve().parent.parent.parent / "templates" / "web"


def environment(directory: Path = PAGES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["plain"] = plain
    return env


def plain(value: Any) -> str:
    """An audit detail as people read it: `dep:75, dep:92`, not a Python repr."""
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {plain(v)}" for k, v in value.items())
    return str(value)


def number(value: Any, lang: str) -> str:
    """12,345 in English, 12 345 in French (narrow no-break space)."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.1f}"
    else:
        text = f"{int(value):,}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def duration(seconds: float | None, lang: str) -> str | None:
    if seconds is None:
        return None
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@jinja2.pass_context
def when(context: jinja2.runtime.Context, value: Any, zone: str | None = None) -> Markup | str:
    """An ISO timestamp in the zone of the areas concerned (`zone`, else the page's `zone`):
    `2024-05-02 16:03:07 CEST (Europe/Paris)`, with UTC on hover (the crisis cell compares
    logs); the page's script adds the browser's own time when its zone differs."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    shown_in = zone or context.get("zone") or localtime.METROPOLE
    utc = moment.astimezone(UTC)
    return Markup(
        '<time datetime="{iso}" title="{utc}" data-utc="{iso}" data-zone="{zone}">{text}</time>'
    ).format(
        iso=utc.isoformat(),
        utc=f"{utc:%Y-%m-%d %H:%M:%S} UTC",
        zone=shown_in,
        text=localtime.local(moment, shown_in),
    )


def render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("kind", None)  # live, drill, or neither: the banner and colours
    lang = request.get(LANG, i18n.LANGUAGES[0])
    session = request.get(SESSION)
    user = user_of(request)
    page = request.app[CONSOLE].pages.get_template(name)
    configured = request.app[SERVICES].settings.display_timezone
    context.setdefault("zone", localtime.zone_for((), configured))
    html = page.render(
        t=i18n.translator(lang),
        lang=lang,
        other_lang="en" if lang == "fr" else "fr",
        user=user,
        may=lambda operation: user is not None and may_try(user, operation),
        csrf=session.csrf if session is not None else "",
        here=request.path_qs if request.method == "GET" else "/console/",
        num=lambda value: number(value, lang),
        dur=lambda seconds: duration(seconds, lang),
        zone_for=lambda departements: localtime.zone_for(departements or (), configured),
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
