"""Compose, preview and submit a broadcast — live or drill — from the browser.

Live and drill have separate pages, URLs and confirmation words: the drill pages always send
`kind: drill`, whatever the form says, so the command targets the test group only and refuses a
template without the exercise marker; a drill page cannot reach the public. A form becomes the
API's own body, checked by the API's schema, then the same commands the API calls: a preview,
then the creation with an idempotency key (a double click creates one broadcast).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from broadcaster.commands import areas
from broadcaster.commands import broadcasts as commands
from broadcaster.commands.broadcasts import CreateAction, Idempotency
from broadcaster.commands.context import Context
from broadcaster.commands.planning import plan_as_json
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.errors import InputError
from broadcaster.http import schemas
from broadcaster.http.bodies import broadcast_request, fingerprint
from broadcaster.http.context import SERVICES
from broadcaster.http.errors import ApiError
from broadcaster.text.templates import Scenario, TemplateCatalogue
from broadcaster.web import i18n, refusals
from broadcaster.web.areas import filter_choices, load_choices
from broadcaster.web.auth import require_user
from broadcaster.web.forms import EXPIRY_CHOICES_MIN, Compose, new_key, variable_fields
from broadcaster.web.middleware import redirect
from broadcaster.web.render import render
from broadcaster.web.state import LANG, PREFIX

DEFAULT_TEMPLATE: Final = {"live": "outage", "drill": "drill"}
BASE: Final = {"live": "/console/broadcasts", "drill": "/console/drills"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def scenarios_for(catalogue: TemplateCatalogue, kind: str) -> list[Scenario]:
    """The templates a page offers: those of its kind, CAP ones aside (they carry an alert's
    own text and come through POST /v1/cap)."""
    chosen = [
        s for s in catalogue.scenarios.values() if s.kind == kind and not s.name.startswith("cap")
    ]
    return sorted(chosen, key=lambda s: (s.name != DEFAULT_TEMPLATE[kind], s.name))


def catalogue_of(request: web.Request) -> TemplateCatalogue:
    return TemplateCatalogue(request.app[SERVICES].settings.templates_dir)


def scenario_or_none(catalogue: TemplateCatalogue, name: str) -> Scenario | None:
    return catalogue.scenarios.get(name)


def ctx_of(request: web.Request) -> Context:
    return request.app[SERVICES].commands


async def names_of_departements(request: web.Request) -> dict[str, str]:
    return await areas.departement_names(ctx_of(request))


async def area_variable_names(request: web.Request) -> list[str]:
    return await areas.variable_names(ctx_of(request))


def error_text(request: web.Request, exc: ApiError | InputError) -> tuple[str, list[str]]:
    """Why it was refused, in the visitor's language (without the CLI's advice)."""
    return refusals.explain(exc, request[LANG])


def status_of(exc: ApiError | InputError) -> int:
    return exc.status


def checked(schema: str, body: dict[str, Any]) -> dict[str, Any]:
    """The form's body through the API's own schema (400, as the API would answer)."""
    return schemas.check(schema, body)


async def preview_answer(
    request: web.Request,
    caller: Caller,
    broadcast: BroadcastRequest,
    action: CreateAction = "create",
) -> dict[str, Any]:
    """The dry run's answer, shaped as the API's (`preview`, `approval_required`)."""
    ctx = ctx_of(request)
    preview = await commands.preview(ctx, caller, broadcast, action=action)
    return {
        "approval_required": preview.approval_required,
        "preview": plan_as_json(preview.plan, ctx.parts_per_second),
    }


async def create_from(
    request: web.Request,
    caller: Caller,
    broadcast: BroadcastRequest,
    body: dict[str, Any],
    key: str | None,
    action: CreateAction = "create",
) -> int:
    """Create (once per key: a double click creates one broadcast); the broadcast's id."""
    idempotency = None
    if key is not None:
        idempotency = Idempotency(key, fingerprint(request.method, request.path, body))
    created = await commands.create(
        ctx_of(request), caller, broadcast, action=action, idempotency=idempotency
    )
    return created.broadcast_id


async def render_compose(
    request: web.Request,
    kind: str,
    form: Compose,
    *,
    error: str | None = None,
    details: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    catalogue = catalogue_of(request)
    scenarios = scenarios_for(catalogue, kind)
    regions, departements = await load_choices(ctx_of(request))
    return render(
        request,
        "compose.html",
        status=status,
        kind=kind,
        base=BASE[kind],
        form=form,
        template=form.template or DEFAULT_TEMPLATE[kind],
        scenarios=scenarios,
        fields=variable_fields(
            scenarios, await area_variable_names(request), catalogue_of(request).per_language
        ),
        regions=filter_choices(regions, form.query, form.areas),
        departements=filter_choices(departements, form.query, form.areas),
        expiry_choices=EXPIRY_CHOICES_MIN,
        error=error,
        details=details or [],
        current_state=None,  # nothing exists yet: a refusal stored and sent nothing
    )


def compose_hidden(form: Compose) -> list[tuple[str, str]]:
    """The preview page's copy of the form, so that "send" sends what was previewed."""
    hidden = [("area", a) for a in form.areas]
    hidden += [("extra_areas", form.extra), *(("shapes", s) for s in form.shapes)]
    hidden += [("template", form.template)]
    hidden += [(f"var_{k}", v) for k, v in form.variables.items()]
    hidden += [("expires_minutes", str(form.expires_minutes))]
    if form.gsm_safe:
        hidden.append(("gsm_safe", "on"))
    if form.allow_language_fallback:
        hidden.append(("allow_language_fallback", "on"))
    return hidden


def compose_page(kind: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        require_user(request)
        return await render_compose(request, kind, Compose(template=DEFAULT_TEMPLATE[kind]))

    return handle


def preview_page(kind: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        posted = await request.post()
        form = Compose.parse(posted)
        if posted.get("action") in ("search", "edit"):
            require_user(request)
            return await render_compose(request, kind, form)
        return await _preview(request, kind, form)

    return handle


async def _preview(
    request: web.Request, kind: str, form: Compose, *, error: str | None = None
) -> web.Response:
    caller = require_user(request)
    if not form.all_areas():
        t = i18n.translator(request[LANG])
        return await render_compose(request, kind, form, error=t("choose_area"), status=422)
    scenario = scenario_or_none(catalogue_of(request), form.template)
    try:
        body = checked("BroadcastCreate", form.body(kind, scenario, True))
        answer = await preview_answer(request, caller, broadcast_request(body, caller.name))
    except (ApiError, InputError) as exc:
        message, details = error_text(request, exc)
        status = status_of(exc)
        return await render_compose(
            request, kind, form, error=message, details=details, status=status
        )
    return render(
        request,
        "preview.html",
        status=422 if error else 200,
        kind=kind,
        title_key=f"compose_{kind}_title",
        follows=None,
        preview=answer["preview"],
        names=await names_of_departements(request),
        approval_required=answer["approval_required"],
        action=BASE[kind],
        edit_action=f"{BASE[kind]}/preview",
        hidden=compose_hidden(form),
        map_areas=form.all_areas(),
        key=form.key if schemas.IDEMPOTENCY_KEY.match(form.key) else new_key(),
        confirm_words=i18n.confirm_words(kind, request[LANG]),
        back=None,
        error=error,
        details=[],
        current_state=None,
    )


def submit_page(kind: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        caller = require_user(request)
        posted = await request.post()
        form = Compose.parse(posted)
        if posted.get("action") == "edit":
            return await render_compose(request, kind, form)
        if not i18n.confirmation_matches(kind, form.confirm):
            t = i18n.translator(request[LANG])
            return await _preview(request, kind, form, error=t("confirm_mismatch"))
        scenario = scenario_or_none(catalogue_of(request), form.template)
        key = form.key if schemas.IDEMPOTENCY_KEY.match(form.key) else None
        try:
            body = checked("BroadcastCreate", form.body(kind, scenario, False))
            broadcast = broadcast_request(body, caller.name)
            broadcast_id = await create_from(request, caller, broadcast, body, key)
        except (ApiError, InputError) as exc:
            message, details = error_text(request, exc)
            return await render_compose(
                request, kind, form, error=message, details=details, status=status_of(exc)
            )
        return redirect(f"/console/broadcasts/{broadcast_id}?done=created")

    return handle


def add_routes(router: web.UrlDispatcher) -> None:
    for kind, url in BASE.items():
        path = url.removeprefix(PREFIX)
        router.add_get(f"{path}/new", compose_page(kind), name=f"compose_{kind}")
        router.add_post(f"{path}/preview", preview_page(kind), name=f"preview_{kind}")
        router.add_post(path, submit_page(kind), name=f"submit_{kind}")
