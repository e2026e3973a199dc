"""One broadcast's page: its texts, live progress, history, and what the visitor may do to it
(approve as the second person, cancel, pause, resume, send an update or the all-clear).

Buttons are shown by role as a courtesy; the decision is the command's (`commands.broadcasts`):
an operator's forged approve is refused (403), an admin's approval of their own broadcast too
(two-person rule), both recorded in the audit log.

A refused action says "this action was not done" and where the broadcast stands now, never
"nothing was stored or sent": a second approver who clicks after the first must not read that
the alert never went out, and send it again.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from broadcaster.commands import broadcasts as commands
from broadcaster.commands.access import allowed
from broadcaster.commands.broadcasts import CreateAction
from broadcaster.domain import localtime
from broadcaster.domain.caller import Caller
from broadcaster.domain.states import ACTIVE, FINAL, Action
from broadcaster.errors import InputError
from broadcaster.http import schemas
from broadcaster.http.bodies import follow_up as follow_up_of
from broadcaster.http.context import SERVICES
from broadcaster.http.errors import ApiError
from broadcaster.web import i18n
from broadcaster.web.auth import require_user
from broadcaster.web.compose import (
    area_variable_names,
    catalogue_of,
    checked,
    create_from,
    ctx_of,
    error_text,
    names_of_departements,
    preview_answer,
    scenario_or_none,
    scenarios_for,
    status_of,
)
from broadcaster.web.forms import EXPIRY_CHOICES_MIN, FollowUp, new_key, variable_fields
from broadcaster.web.middleware import redirect
from broadcaster.web.progress import pool_of, snapshot
from broadcaster.web.render import render
from broadcaster.web.state import LANG

DONE: Final = frozenset({"created", "approved", "cancelled", "paused", "resumed"})
FOLLOW_UP_DEFAULT: Final = {"live": "update", "drill": "drill"}


def broadcast_id_of(request: web.Request) -> int:
    return int(request.match_info["broadcast_id"])


async def page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    details: list[str] | None = None,
    follow_up: FollowUp | None = None,
) -> web.Response:
    """The broadcast page; `error` says why the last action was refused (and the page then
    says where the broadcast stands, read after the refusal)."""
    caller = require_user(request)
    broadcast_id = broadcast_id_of(request)
    report = await commands.report(ctx_of(request), caller, broadcast_id)
    broadcast = report["broadcast"]
    kind = broadcast["kind"]
    _, created_it = await commands.relation(ctx_of(request), caller, broadcast_id)
    scenarios = scenarios_for(catalogue_of(request), kind)
    follow = follow_up or FollowUp(template=FOLLOW_UP_DEFAULT[kind])
    done = request.query.get("done")
    lang = request[LANG]
    departements = sorted({str(g["departement"]) for g in report["groups"]})
    return render(
        request,
        "broadcast.html",
        status=status,
        kind=kind,
        b=broadcast,
        groups=report["groups"],
        departements=departements,
        zone=localtime.zone_of_groups(
            report["groups"], request.app[SERVICES].settings.display_timezone
        ),
        texts=texts_by_language(report["groups"]),
        names=await names_of_departements(request),
        follow_ups=report["follow_ups"],
        trail=report["audit"],
        progress=snapshot(
            broadcast, None, pool_of(request), lang, request.app[SERVICES].parts_per_second
        ),
        can=_abilities(caller, broadcast, created_it),
        created_it=created_it,
        done=done if done in DONE else None,
        error=error,
        details=details or [],
        current_state=i18n.state_now(lang, broadcast_id, broadcast["state"]) if error else None,
        follow=follow,
        scenarios=scenarios,
        fields=variable_fields(
            scenarios, await area_variable_names(request), catalogue_of(request).per_language
        ),
        expiry_choices=EXPIRY_CHOICES_MIN,
        confirm_words=i18n.confirm_words(kind, lang),
        drill_report=kind == "drill",
    )


def texts_by_language(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct text once, by language, with the départements that get it and how many
    recipients: what an approver reads before the cards of every group."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        key = (str(g["lang"]), str(g["body"]))
        entry = merged.setdefault(
            key,
            {"lang": key[0], "body": key[1], "departements": [], "recipients": 0, "parts": 0},
        )
        entry["departements"].append(str(g["departement"]))
        entry["recipients"] += int(g["recipients"])
        entry["parts"] = max(entry["parts"], int(g["parts"]))
    return sorted(merged.values(), key=lambda e: (e["lang"], -e["recipients"]))


def _abilities(caller: Caller, broadcast: dict[str, Any], created_it: bool) -> dict[str, bool]:
    state = broadcast["state"]
    return {
        "approve": state == "pending_approval" and allowed(caller, "approveBroadcast"),
        "cancel": state in ACTIVE and (caller.can("cancel") or created_it),
        "pause": state in ("approved", "running") and allowed(caller, "pauseBroadcast"),
        "resume": state == "paused" and allowed(caller, "resumeBroadcast"),
        # A follow-up stops this broadcast if unfinished: it needs the right to cancel it too.
        "follow_up": allowed(caller, "updateBroadcast")
        and (caller.can("cancel") or created_it or state in FINAL),
        "final": state in FINAL,
    }


async def show(request: web.Request) -> web.StreamResponse:
    return await page(request)


def _reason(form: Any) -> str | None:
    reason = form.get("reason")
    text = " ".join(reason.split())[:500] if isinstance(reason, str) else ""
    return text or None


async def approve(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    form = await request.post()
    kind, _ = await commands.relation(ctx_of(request), caller, broadcast_id_of(request))
    typed = form.get("confirm")
    if not i18n.confirmation_matches(kind, typed if isinstance(typed, str) else ""):
        t = i18n.translator(request[LANG])
        return await page(request, status=422, error=t("confirm_mismatch_approve"))
    return await _act(request, caller, "approve", _reason(form), "approved")


async def cancel(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    return await _act(request, caller, "cancel", _reason(await request.post()), "cancelled")


async def pause(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    return await _act(request, caller, "pause", None, "paused")


async def resume(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    return await _act(request, caller, "resume", None, "resumed")


async def _act(
    request: web.Request, caller: Caller, action: Action, reason: str | None, done: str
) -> web.StreamResponse:
    broadcast_id = broadcast_id_of(request)
    ctx = ctx_of(request)
    try:
        if action == "approve":
            await commands.approve(ctx, caller, broadcast_id, reason)
        else:
            await commands.control(ctx, caller, broadcast_id, action, reason)
    except (ApiError, InputError) as exc:
        if status_of(exc) == 404:
            raise
        message, details = error_text(request, exc)
        return await page(request, status=status_of(exc), error=message, details=details)
    return redirect(f"/console/broadcasts/{broadcast_id_of(request)}?done={done}")


# -- update / all-clear ------------------------------------------------------------------------


def _action(template: str) -> CreateAction:
    return "all_clear" if template == "all_clear" else "update"


async def _follow_request(
    request: web.Request, caller: Caller, form: FollowUp, dry_run: bool
) -> tuple[dict[str, Any], Any]:
    """(the checked FollowUp body, the request it makes) of an update or all-clear form."""
    scenario = scenario_or_none(catalogue_of(request), form.template)
    body = checked("FollowUp", form.body(scenario, dry_run))
    default = "all_clear" if form.template == "all_clear" else "update"
    follow = follow_up_of(body, default)
    made = await commands.follow_up_request(
        ctx_of(request), caller, broadcast_id_of(request), follow
    )
    return body, made


def _follow_hidden(form: FollowUp) -> list[tuple[str, str]]:
    hidden = [("template", form.template), ("expires_minutes", str(form.expires_minutes))]
    hidden += [(f"var_{k}", v) for k, v in form.variables.items()]
    hidden += [(name, "on") for name, on in (("reached_only", form.reached_only),) if on]
    hidden += [("gsm_safe", "on")] if form.gsm_safe else []
    hidden += [("allow_language_fallback", "on")] if form.allow_language_fallback else []
    return hidden


async def follow_up_preview(request: web.Request, error: str | None = None) -> web.StreamResponse:
    caller = require_user(request)
    broadcast_id = broadcast_id_of(request)
    form = FollowUp.parse(await request.post())
    try:
        _body, made = await _follow_request(request, caller, form, True)
        answer = await preview_answer(request, caller, made, _action(form.template))
        status = await commands.status(ctx_of(request), caller, broadcast_id)
    except (ApiError, InputError) as exc:
        if status_of(exc) == 404:
            raise
        message, details = error_text(request, exc)
        return await page(
            request, status=status_of(exc), error=message, details=details, follow_up=form
        )
    kind, lang = status["kind"], request[LANG]
    return render(
        request,
        "preview.html",
        status=422 if error else 200,
        kind=kind,
        title_key="follow_up_title",
        follows=broadcast_id,
        preview=answer["preview"],
        names=await names_of_departements(request),
        approval_required=answer["approval_required"],
        action=f"/console/broadcasts/{broadcast_id}/follow-up",
        edit_action=None,
        back=f"/console/broadcasts/{broadcast_id}",
        hidden=_follow_hidden(form),
        key=form.key if schemas.IDEMPOTENCY_KEY.match(form.key) else new_key(),
        confirm_words=i18n.confirm_words(kind, lang),
        error=error,
        details=[],
        current_state=i18n.state_now(lang, broadcast_id, status["state"]) if error else None,
    )


async def follow_up(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    broadcast_id = broadcast_id_of(request)
    form = FollowUp.parse(await request.post())
    kind, _ = await commands.relation(ctx_of(request), caller, broadcast_id)
    if not i18n.confirmation_matches(kind, form.confirm):
        return await follow_up_preview(
            request, error=i18n.translator(request[LANG])("confirm_mismatch_follow_up")
        )
    key = form.key if schemas.IDEMPOTENCY_KEY.match(form.key) else None
    try:
        body, made = await _follow_request(request, caller, form, False)
        created = await create_from(request, caller, made, body, key, _action(form.template))
    except (ApiError, InputError) as exc:
        message, details = error_text(request, exc)
        return await page(
            request, status=status_of(exc), error=message, details=details, follow_up=form
        )
    return redirect(f"/console/broadcasts/{created}?done=created")


def add_routes(router: web.UrlDispatcher) -> None:
    one = "/broadcasts/{broadcast_id:[0-9]{1,18}}"
    router.add_get(one, show, name="broadcast")
    router.add_post(f"{one}/approve", approve, name="approve")
    router.add_post(f"{one}/cancel", cancel, name="cancel")
    router.add_post(f"{one}/pause", pause, name="pause")
    router.add_post(f"{one}/resume", resume, name="resume")
    router.add_post(f"{one}/follow-up/preview", follow_up_preview, name="follow_up_preview")
    router.add_post(f"{one}/follow-up", follow_up, name="follow_up")
