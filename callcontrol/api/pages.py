"""The pages people use: the sign-in form, the agent console, the callbacks list and the
supervisors' dashboard, in pt-BR, served by ``serve`` itself.

Plain server-rendered HTML (``markup.render``: every value escaped) with one stylesheet and a
little vanilla JS from ``/static`` (``api.static``). The console's cards are rendered here, so
the first paint already shows the agent's tickets; the scripts then keep them current from the
JSON API (live events, else polling) and fill the same markup, cloned from a ``<template>``
this module renders, with ``textContent`` only. No inline script or style anywhere, so the
Content-Security-Policy can say ``script-src 'self'``.

A page asked for without a person signed in is a redirect to ``/login?next=<the page>``; the
dashboard is for supervisors (an agent gets a 403 page saying so). What each page may show is
the principal's (``api.principal``): an agent's own extensions, a supervisor's domain.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg import sql
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from callcontrol.api.callback_filters import AGENT_EXTENSION, FROM
from callcontrol.api.callbacks import COLUMNS
from callcontrol.api.context import ApiContext
from callcontrol.api.markup import Markup, join, render
from callcontrol.api.principal import Principal, Role
from callcontrol.callbacks.phone import display

BRAND = "callcontrol"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' https:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")  # fmt: skip
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # a page holds a tenant's data and a CSRF token: never kept by a shared cache or the disk
    "Cache-Control": "no-store",
}
LOGIN_PATH = "/login"
HOME = "/console"

STATUS_LABELS = {
    "pending": "Pendente",
    "notified": "Avisado",
    "ready_to_call": "Pronto para ligar",
    "in_progress": "Em ligação",
    "completed": "Concluído",
    "expired": "Expirado",
    "canceled": "Cancelado",
    "failed": "Falhou",
    "needs_review": "Em revisão",
}
# What the console shows (the agent acts on these); the badge counts the waiting ones whose
# time has come (not those put off or scheduled for later: is_later).
CONSOLE_STATUSES = ("pending", "notified", "ready_to_call", "in_progress")
WAITING = ("pending", "notified", "ready_to_call")


TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def template(name: str) -> str:
    """A page's markup (``callcontrol/api/templates/<name>.html``, package data), with
    ``{field}`` places that ``render`` fills escaped."""
    return (TEMPLATES / f"{name}.html").read_text(encoding="utf-8")


def page_response(body: Markup, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(str(body), status_code=status_code, headers=PAGE_HEADERS)


def safe_next(text: str | None) -> str:
    """Where to go after signing in: a path of this site only (``/console...``), never another
    host (``//evil``, ``https://...``, ``/\\evil``), so the form is no open redirect."""
    if not text or not text.startswith("/") or text.startswith("//") or "\\" in text \
            or any(c < " " for c in text) or len(text) > 500:  # fmt: skip
        return HOME
    return text


# --- the shell ---------------------------------------------------------------------------------

_LINK = '<a href="{href}" class="nav-link{active}"{current}><span>{label}</span>{badge}</a>'
_BADGE = ('<span class="badge{empty}" id="pending-badge" aria-label="{count} retornos '
          'pendentes">{count}</span>')
# on a phone the menu says "Histórico" only (.nav-long is hidden there)
_CALLBACKS_LABEL = Markup('Histórico<span class="nav-long"> e agenda</span>')


def _csrf(request: Request) -> str:
    """The session's CSRF token when the sign-in put one on the request; else the scripts ask
    ``/api/me`` for it."""
    state: Any = request.scope.get("state", {})
    token = state.get("csrf_token") if isinstance(state, dict) else None
    return token if isinstance(token, str) else ""


def _header(principal: Principal, csrf: str, active: str, badge: int | None) -> Markup:
    """The top bar: the brand, the menu (the dashboard for supervisors), who is signed in."""
    links: list[tuple[str, str, str]] = [("/console", "Retornos", "console"),
                                         ("/console/callbacks", _CALLBACKS_LABEL, "callbacks")]
    if principal.role is Role.SUPERVISOR:
        links.append(("/console/dashboard", "Painel", "dashboard"))

    def link(href: str, label: str, key: str) -> Markup:
        here = key == active
        count = "" if key != "console" or badge is None else render(
            _BADGE, count=badge, empty="" if badge else " is-empty")
        return render(_LINK, href=href, label=label, active=" is-active" if here else "",
                      current=Markup(' aria-current="page"') if here else "", badge=count)

    return render(template("header"), brand=BRAND, csrf=csrf,
                  username=principal.username or "", domain_name=principal.domain_name or "",
                  links=join(link(*item) for item in links))  # fmt: skip


def _shell(request: Request, principal: Principal | None, *, title: str, content: Markup,
           active: str = "", scripts: tuple[str, ...] = (), badge: int | None = None,
           body_class: str = "", main_class: str = "page") -> Markup:  # fmt: skip
    csrf = _csrf(request)
    person = principal if principal is not None and principal.is_person else None
    zone = ApiContext.of(request).timezone
    return render(
        template("shell"), title=title, brand=BRAND, csrf=csrf, content=content,
        header=_header(person, csrf, active, badge) if person else "",
        scripts=join(render('<script src="/static/{name}" defer></script>', name=name)
                     for name in ("app.js", *scripts)),
        domain=str(person.domain_uuid) if person and person.domain_uuid else "",
        zone=getattr(zone, "key", "America/Sao_Paulo"),
        role=person.role.value if person else "", body_class=body_class,
        extensions=" ".join(person.extensions) if person else "",
        main_class=main_class)  # fmt: skip


def _person(request: Request) -> Principal | None:
    principal = Principal.of(request)
    return principal if principal.is_person else None


def _to_login(request: Request) -> Response:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(safe_next(wanted), safe='/')}",
                            status_code=303, headers={"Cache-Control": "no-store"})  # fmt: skip


# --- /login ------------------------------------------------------------------------------------


_ERROR = '<p class="alert alert-error" role="alert" id="login-error">{text}</p>'


def login_page(error: str | None = None, next: str = HOME, *, username: str = "",
               request: Request | None = None, status_code: int = 200) -> HTMLResponse:  # fmt: skip
    """The sign-in form (fields ``username``, ``password``, ``next``; posted to /login),
    with ``error`` shown above it. The sign-in's POST handler renders it again on a failure."""
    content = render(template("login"), brand=BRAND, next=safe_next(next), username=username,
                     error=render(_ERROR, text=error) if error else "")  # fmt: skip
    body = render(
        template("shell"), title="Entrar", brand=BRAND, header="", content=content,
        body_class="is-login", main_class="login", domain="", role="", zone="", extensions="",
        csrf=_csrf(request) if request is not None else "", scripts="")  # fmt: skip
    return page_response(body, status_code)


async def login(request: Request) -> Response:
    if _person(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return login_page(None, request.query_params.get("next") or HOME, request=request)


# --- /console ----------------------------------------------------------------------------------




def waited_text(since: datetime | None, now: datetime) -> str:
    """How long the caller has waited, as the console says it ("há 12 min")."""
    if since is None:
        return ""
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 1:
        return "agora mesmo"
    if minutes < 60:
        return f"há {minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"há {hours} h" + (f" {rest} min" if rest else "")
    days = minutes // (24 * 60)
    return "há 1 dia" if days == 1 else f"há {days} dias"


def when_text(moment: datetime | None, now: datetime, zone: tzinfo) -> str:
    """A scheduled time as a person reads it: "hoje 14:30", "amanhã 09:00", "08/12 14:30"."""
    if moment is None:
        return "Assim que possível"
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return f"hoje {clock}"
    if local.date() == today + timedelta(days=1):
        return f"amanhã {clock}"
    if local.date() == today - timedelta(days=1):
        return f"ontem {clock}"
    return local.strftime("%d/%m/%Y %H:%M" if local.year != today.year else "%d/%m %H:%M")


LATER_LABEL = "Agendado"
# a ticket due within this much is "now" on the card, not "later" (the scanner's own tick)
LATER_MARGIN = timedelta(seconds=30)


def is_later(status: str, scheduled: datetime | None, now: datetime) -> bool:
    """A ticket waiting for its time (scheduled, or put off with "Adiar"): its card says so,
    so a snoozed card visibly leaves the ones to call now (console.js decides the same)."""
    return (status in ("pending", "notified") and scheduled is not None
            and scheduled > now + LATER_MARGIN)  # fmt: skip


def card(ticket: dict[str, Any] | None, now: datetime, zone: tzinfo) -> Markup:
    """One ticket's card; ``None``: the empty card the scripts clone and fill."""
    t = ticket or {}
    status = t.get("status") or "pending"
    created, scheduled = t.get("created_at"), t.get("scheduled_at")
    phone = t.get("phone_number") or ""
    later = is_later(status, scheduled, now)
    return render(
        template("card"), id=t.get("id") or "", status=status,
        status_label=LATER_LABEL if later else STATUS_LABELS.get(status, status),
        pill="later" if later else status, later_class=" is-later" if later else "",
        caller_missing="" if t.get("caller_name") or not ticket else " missing",
        reason_missing="" if t.get("reason") or t.get("message") or not ticket else " missing",
        created_at=created.isoformat() if created else "",
        scheduled_at=scheduled.isoformat() if scheduled else "",
        created_title=created.astimezone(zone).strftime("pedido em %d/%m/%Y %H:%M")
        if created else "",
        waited=waited_text(created, now), phone=display(phone) if phone else "",
        tel=phone, caller_name=t.get("caller_name") or ("Sem nome" if ticket else ""),
        reason=t.get("reason") or t.get("message") or ("Sem motivo informado" if ticket else ""),
        scheduled=when_text(scheduled, now, zone) if ticket else "",
        # the customer's WhatsApp answer the replies did not understand: the agent reads it
        whatsapp=f"“{t['whatsapp_response']}”" if t.get("whatsapp_response") else "",
        whatsapp_hidden="" if t.get("whatsapp_response") else Markup(" hidden"),
        extension=t.get("extension") or "—", intended_for=t.get("intended_for")
        or t.get("destination_name") or "—")  # fmt: skip


# The agent's open tickets, the most urgent first: the one being called (the agent is on it),
# the ones ready to call, then by when each is due (its scheduled time, else when the caller
# asked).
_OPEN_ORDER = sql.SQL(
    " ORDER BY (r.status = 'in_progress') DESC, (r.status = 'ready_to_call') DESC,"
    " coalesce(r.scheduled_at, r.created_at),"
    " r.request_uuid LIMIT 200"
)


async def open_tickets(ctx: ApiContext, principal: Principal) -> list[dict[str, Any]]:
    where: sql.Composable = sql.SQL(
        " WHERE r.domain_uuid = %(domain)s AND r.status = ANY(%(statuses)s)"
        " AND r.kind = 'callback'")  # fmt: skip
    values: dict[str, Any] = {"domain": principal.domain_uuid,
                              "statuses": list(CONSOLE_STATUSES)}  # fmt: skip
    if not principal.sees_every_extension:
        where += sql.SQL(" AND {} = ANY(%(extensions)s)").format(AGENT_EXTENSION)
        values["extensions"] = list(principal.extensions)
    return await ctx.database().fetch_all(COLUMNS + FROM + where + _OPEN_ORDER, values)


async def console(request: Request) -> Response:
    principal = _person(request)
    if principal is None:
        return _to_login(request)
    ctx = ApiContext.of(request)
    tickets = await open_tickets(ctx, principal)
    now = await ctx.database().fetch_value("SELECT now()")
    waiting = sum(1 for t in tickets if t["status"] in WAITING
                  and not is_later(t["status"], t.get("scheduled_at"), now))  # fmt: skip
    if principal.role is Role.AGENT:
        exts = ", ".join(principal.extensions) or "nenhum"
        sub = f"Seus retornos · ramal {exts}" if len(principal.extensions) < 2 \
            else f"Seus retornos · ramais {exts}"  # fmt: skip
    else:
        sub = f"Todos os retornos de {principal.domain_name or 'seu domínio'}"
    content = render(
        template("console"), sub=sub, cards=join(card(t, now, ctx.timezone) for t in tickets),
        empty_hidden=Markup(" hidden") if tickets else "",
        template=card(None, now, ctx.timezone))  # fmt: skip
    return page_response(_shell(request, principal, title="Retornos", content=content,
                                active="console", scripts=("console.js",),
                                badge=waiting))  # fmt: skip


# --- /console/callbacks ------------------------------------------------------------------------

# tab -> (label, the statuses it lists, the `scheduled` filter)
TABS = {
    "pendentes": ("Pendentes", "pending,notified,ready_to_call,in_progress,needs_review", "due"),
    "agendados": ("Agendados", "pending,notified,ready_to_call", "future"),
    # not "Histórico": on a phone the menu's link to this page is called that already
    "historico": ("Encerrados", "completed,expired,canceled,failed", ""),
}


_TAB = '<a role="tab" href="{href}" class="tab{active}" aria-selected="{selected}">{label}</a>'
_OPTION = '<option value="{value}"{selected}>{label}</option>'


async def callbacks_page(request: Request) -> Response:
    principal = _person(request)
    if principal is None:
        return _to_login(request)
    q = request.query_params
    tab = q.get("tab") or ""
    tab = tab if tab in TABS else "pendentes"
    status = q.get("status") if q.get("status") in STATUS_LABELS else ""
    extension = q.get("extension", "")[:32]
    if principal.role is Role.AGENT and len(principal.extensions) == 1:
        extension = principal.extensions[0]
    kept = {k: v for k, v in (("extension", extension), ("from", q.get("from", "")[:10]),
                              ("to", q.get("to", "")[:10]), ("status", status)) if v}  # fmt: skip
    tabs = join(render(_TAB, href="/console/callbacks?" + _query({**kept, "tab": key}),
                       label=label, active=" is-active" if key == tab else "",
                       selected="true" if key == tab else "false")
                for key, (label, _, _) in TABS.items())  # fmt: skip
    options = join([render(_OPTION, value="", label="Todas", selected=""), *(
        render(_OPTION, value=value, label=label,
               selected=Markup(" selected") if value == status else "")
        for value, label in STATUS_LABELS.items())])  # fmt: skip
    statuses, scheduled = status or TABS[tab][1], TABS[tab][2]
    csv = "/api/callbacks/report.csv?" + _query({**kept, "status": statuses,
                                                 "scheduled": scheduled,
                                                 "domain_uuid": str(principal.domain_uuid)})
    content = render(
        template("callbacks"), tabs=tabs, tab=tab, extension=extension, since=kept.get("from", ""),
        until=kept.get("to", ""), status_options=options, statuses=statuses, csv=csv,
        scheduled=scheduled,
        ext_readonly=Markup(" readonly") if principal.role is Role.AGENT
        and len(principal.extensions) == 1 else "")  # fmt: skip
    return page_response(_shell(request, principal, title="Histórico e agenda", content=content,
                                active="callbacks", scripts=("callbacks.js",)))  # fmt: skip


def _query(values: dict[str, str]) -> str:
    return "&".join(f"{quote(k)}={quote(v, safe=',')}" for k, v in values.items() if v)


# --- /console/dashboard ------------------------------------------------------------------------




async def dashboard(request: Request) -> Response:
    principal = _person(request)
    if principal is None:
        return _to_login(request)
    if principal.role is not Role.SUPERVISOR:
        refused = render(template("forbidden"))
        return page_response(_shell(request, principal, title="Painel", content=refused,
                                    active="dashboard"), 403)  # fmt: skip
    csv = "/api/callbacks/report.csv?" + _query({"domain_uuid": str(principal.domain_uuid)})
    content = render(template("dashboard"), csv=csv)
    return page_response(_shell(request, principal, title="Painel", content=content,
                                active="dashboard", scripts=("dashboard.js",)))  # fmt: skip
