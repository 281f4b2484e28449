"""The pages people use (/login, /console, /console/callbacks, /console/dashboard) and their
static files, over HTTP against the real app and database: pt-BR labels, the signed-in person's
tickets only, every value escaped, the Content-Security-Policy and no inline script."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import httpx
import pytest

from callcontrol.api.http import build_app
from callcontrol.api.pages import login_page, safe_next
from callcontrol.api.principal import Principal, Role
from callcontrol.metrics import Metrics
from tests.api.conftest import TOKEN, add_ticket

HOSTILE = '<script>alert("x")</script>&"\''


def person(domain, name, role=Role.AGENT, extensions=("1001",), username="ana"):
    return Principal(role, domain_uuid=domain, domain_name=name, user_uuid=uuid.uuid4(),
                     username=username, extensions=extensions if role is Role.AGENT else ())


@pytest.fixture
async def browser(db, metrics, switch, calls):
    """A client of the app as a person signed in as ``browser.who`` (None: nobody)."""
    app = build_app(metrics, TOKEN, db=db, availability=switch, calls=calls)

    class Browser(httpx.AsyncClient):
        who: Principal | None = None

    async def signed_in(scope, receive, send):
        # the sign-in's session middleware puts the principal here (api.principal)
        if scope["type"] == "http" and client.who is not None:
            scope.setdefault("state", {})["principal"] = client.who
        await app(scope, receive, send)

    async with Browser(transport=httpx.ASGITransport(app=signed_in),
                       base_url="http://console") as client:  # fmt: skip
        yield client


class Page(HTMLParser):
    """What a page holds that the tests read: tags with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.in_template = 0
        self.feed(html)


    def handle_starttag(self, tag, attrs):
        # a <template>'s content is the scripts' to clone, not on the page
        if not self.in_template:
            self.tags.append((tag, dict(attrs)))
        self.in_template += tag == "template"

    def handle_endtag(self, tag):
        self.in_template -= tag == "template"

    def handle_data(self, data):
        if data.strip() and not self.in_template:
            self.text.append(data.strip())

    def all(self, tag, **attrs):
        return [a for t, a in self.tags
                if t == tag and all(a.get(k) == v for k, v in attrs.items())]  # fmt: skip


def assert_safe_page(reply):
    assert reply.status_code in (200, 403), reply.text
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    csp = reply.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-store"
    page = Page(reply.text)
    for attrs in page.all("script"):
        assert attrs.get("src", "").startswith("/static/"), attrs  # no inline script
    assert "<script>" not in reply.text
    for _, attrs in page.tags:
        assert not any(name.startswith("on") or name == "style" for name in attrs), attrs
    return page


async def test_the_sign_in_form_in_portuguese(browser):
    reply = await browser.get("/login", params={"next": "/console/callbacks?tab=historico"})
    page = assert_safe_page(reply)
    assert "Entrar" in page.text and "Usuário ou e-mail" in page.text and "Senha" in page.text
    assert "callcontrol" in page.text
    [form] = page.all("form")
    assert form["method"] == "post" and form["action"] == "/login"
    names = {a["name"] for a in page.all("input")}
    assert names == {"username", "password", "next"}
    assert page.all("input", name="next")[0]["value"] == "/console/callbacks?tab=historico"
    assert page.all("input", name="password")[0]["type"] == "password"
    assert not page.all("p", role="alert")


async def test_the_sign_in_form_never_sends_elsewhere_and_escapes_what_it_echoes(browser):
    for elsewhere in ("//evil.example", "https://evil.example/", "/\\evil.example", "console"):
        page = Page((await browser.get("/login", params={"next": elsewhere})).text)
        assert page.all("input", name="next")[0]["value"] == "/console"
    assert safe_next('/console"><script>') == '/console"><script>'  # a path; escaped below
    reply = login_page(HOSTILE, '/console"><script>', username=HOSTILE)
    html = reply.body.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    page = Page(html)
    assert page.all("input", name="next")[0]["value"] == '/console"><script>'
    assert page.all("input", name="username")[0]["value"] == HOSTILE
    assert HOSTILE in page.text  # the error, shown as text
    assert reply.headers["content-security-policy"]


async def test_the_pages_send_nobody_signed_in_to_the_sign_in_form(browser):
    for path in ("/console", "/console/callbacks?tab=agendados", "/console/dashboard"):
        reply = await browser.get(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"] == "/login?next=" + path.replace("?", "%3F").replace(
            "=", "%3D")  # fmt: skip
    # the service token is no person: it gets the form too, not a page
    reply = await browser.get("/console", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 303


async def test_the_console_shows_the_agents_open_callbacks_as_cards(browser, db, domains):
    (a, name_a), (b, _) = domains
    now = await db.fetch_value("SELECT now()")
    waiting = await add_ticket(db, a, created_at=now - timedelta(minutes=12),
                               caller_name=HOSTILE, reason="segunda via do <b>boleto</b>",
                               phone="+5511988887777")  # fmt: skip
    ready = await add_ticket(db, a, created_at=now - timedelta(hours=2), status="ready_to_call",
                             caller_name="João", phone="+551134567890")  # fmt: skip
    later = await add_ticket(db, a, created_at=now - timedelta(minutes=1), status="notified",
                             scheduled_at=now + timedelta(days=1),
                             whatsapp_response="<i>só depois das 18h</i>")  # fmt: skip
    hidden = [await add_ticket(db, a, extension="1002", caller_name="Do colega"),
              await add_ticket(db, a, status="completed", caller_name="Já atendido"),
              await add_ticket(db, a, kind="message", caller_name="Só recado"),
              await add_ticket(db, b, caller_name="Outro domínio")]  # fmt: skip
    browser.who = person(a, name_a)

    reply = await browser.get("/console")
    page = assert_safe_page(reply)
    cards = page.all("article")
    # the one ready to call first, then by when each is due
    assert [c["data-id"] for c in cards] == [ready, waiting, later]
    assert not set(hidden) & {c["data-id"] for c in cards}
    assert "Do colega" not in reply.text and "Outro domínio" not in reply.text
    assert HOSTILE in page.text and "<script>alert" not in reply.text
    assert "segunda via do <b>boleto</b>" in page.text
    # a WhatsApp answer the replies did not understand is the agent's to read, as text
    assert "“<i>só depois das 18h</i>”" in page.text and "<i>só" not in reply.text
    assert sum(1 for t, attrs in page.tags if t == "p" and attrs.get("class") == "whatsapp"
               and "hidden" not in attrs) == 1  # fmt: skip
    assert "(11) 98888-7777" in page.text and "(11) 3456-7890" in page.text
    assert "há 12 min" in page.text and "há 2 h" in page.text
    # a ticket waiting for its time says so (it was told of, and is due tomorrow)
    assert "Pronto para ligar" in page.text and "Avisado" not in page.text
    [later_card] = [c for c in cards if c["data-id"] == later]
    assert "is-later" in later_card["class"]
    pills = [a.get("class") for t, a in page.tags if t == "span" and "pill" in a.get("class", "")]
    assert pills.count("pill pill-later") == 1
    assert re.search(r"amanhã \d\d:\d\d", reply.text)
    for label in ("Ligar agora", "Adiar 5 min", "Cancelar", "Retornos", "Sair", "ana"):
        assert label in page.text, label
    [badge] = page.all("span", id="pending-badge")
    # what needs calling now: the one due tomorrow waits for its time and is not counted
    assert badge["aria-label"] == "2 retornos pendentes"
    assert badge["class"] == "badge"
    assert "hidden" in page.all("div", id="empty")[0]  # cards: the empty state hidden
    assert '<template id="card-template">' in reply.text
    assert page.all("script", src="/static/console.js")
    body = page.all("body")[0]
    assert body["data-domain-uuid"] == str(a) and body["data-role"] == "agent"
    assert body["data-timezone"] == "America/Sao_Paulo"
    # an agent does not get the supervisors' dashboard in the menu
    assert not page.all("a", href="/console/dashboard")


async def test_an_agent_with_nothing_waiting_sees_the_empty_state(browser, db, domains):
    (a, name_a), _ = domains
    await add_ticket(db, a, extension="1002")
    browser.who = person(a, name_a)
    page = assert_safe_page(await browser.get("/console"))
    assert not page.all("article")
    assert "Nenhum retorno pendente" in page.text
    assert "hidden" not in page.all("div", id="empty")[0]
    assert page.all("span", id="pending-badge")[0]["class"] == "badge is-empty"


async def test_a_supervisor_sees_the_whole_domain_and_the_dashboard(browser, db, domains):
    (a, name_a), (b, _) = domains
    mine = await add_ticket(db, a, extension="1001")
    theirs = await add_ticket(db, a, extension="1002")
    await add_ticket(db, b)
    browser.who = person(a, name_a, Role.SUPERVISOR, username="carla")
    page = assert_safe_page(await browser.get("/console"))
    assert {c["data-id"] for c in page.all("article")} == {mine, theirs}
    assert page.all("a", href="/console/dashboard")

    page = assert_safe_page(await browser.get("/console/dashboard"))
    for label in ("Painel", "Retornos pendentes", "Espera média", "Taxa de conclusão",
                  "Transferências por resultado", "Destinos mais procurados",
                  "Exportar retornos (CSV)", "7 dias"):  # fmt: skip
        assert label in page.text, label
    [csv] = page.all("a", id="csv-link")
    assert csv["href"] == f"/api/callbacks/report.csv?domain_uuid={a}"
    assert page.all("script", src="/static/dashboard.js")


async def test_the_dashboard_is_for_supervisors(browser, domains):
    (a, name_a), _ = domains
    browser.who = person(a, name_a)
    reply = await browser.get("/console/dashboard")
    assert reply.status_code == 403
    page = assert_safe_page(reply)
    assert "O painel é para supervisores" in page.text
    assert not page.all("script", src="/static/dashboard.js")


async def test_the_callbacks_page_tabs_filters_and_export(browser, domains):
    (a, name_a), _ = domains
    browser.who = person(a, name_a, Role.SUPERVISOR)
    reply = await browser.get("/console/callbacks", params={
        "tab": "agendados", "extension": '"><img src=x>', "from": "2026-12-01"})
    page = assert_safe_page(reply)
    tabs = [t for t in page.text if t in ("Pendentes", "Agendados", "Encerrados")]
    assert tabs == ["Pendentes", "Agendados", "Encerrados"]
    # on a phone the menu's link to this page reads "Histórico" (its "e agenda" hidden): no tab
    # may be called that too
    assert page.all("span", **{"class": "nav-long"}) and "Histórico" in page.text
    assert "Histórico" not in tabs
    [selected] = page.all("a", role="tab", **{"aria-selected": "true"})
    assert "tab=agendados" in selected["href"]
    assert page.all("input", name="extension")[0]["value"] == '"><img src=x>'
    assert "<img src=x>" not in reply.text
    assert page.all("input", name="from")[0]["value"] == "2026-12-01"
    [table] = page.all("table")
    assert table["data-statuses"] == "pending,notified,ready_to_call"
    assert table["data-scheduled"] == "future"
    csv = page.all("a", id="csv-link")[0]["href"]
    assert csv.startswith("/api/callbacks/report.csv?") and f"domain_uuid={a}" in csv
    assert "scheduled=future" in csv and "from=2026-12-01" in csv
    for label in ("Ramal", "Situação", "Carregando…", "Conversa", "Gravação", "O que aconteceu"):
        assert label in page.text, label
    assert page.all("dialog", id="ticket-dialog")

    history = Page((await browser.get("/console/callbacks?tab=historico&status=canceled")).text)
    assert history.all("table")[0]["data-statuses"] == "canceled"
    assert "selected" in history.all("option", value="canceled")[0]


async def test_an_agent_with_one_extension_has_it_fixed_in_the_filter(browser, domains):
    (a, name_a), _ = domains
    browser.who = person(a, name_a, extensions=("1002",))
    page = Page((await browser.get("/console/callbacks", params={"extension": "1001"})).text)
    field = page.all("input", name="extension")[0]
    assert field["value"] == "1002" and "readonly" in field


async def test_every_static_file_a_page_names_is_served_with_its_type(browser, domains):
    (a, name_a), _ = domains
    browser.who = person(a, name_a, Role.SUPERVISOR)
    names = set()
    for path in ("/console", "/console/callbacks", "/console/dashboard", "/login"):
        page = Page((await browser.get(path)).text)
        names |= {s["src"] for s in page.all("script")}
        names |= {link["href"] for link in page.all("link")}
    assert names == {"/static/app.js", "/static/console.js", "/static/callbacks.js",
                     "/static/dashboard.js", "/static/console.css", "/static/icon.svg"}
    browser.who = None  # the files are the same for everyone, no session or token needed
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".svg": "image/svg+xml"}  # fmt: skip
    for name in names:
        reply = await browser.get(name)
        assert reply.status_code == 200, name
        assert reply.headers["content-type"] == types[name[name.rindex("."):]]
        assert reply.headers["x-content-type-options"] == "nosniff"
        again = await browser.get(name, headers={"If-None-Match": reply.headers["etag"]})
        assert again.status_code == 304 and not again.content


async def test_only_the_static_files_are_served(browser):
    for path in ("/static/../http.py", "/static/%2e%2e%2fhttp.py", "/static/pages.py",
                 "/static/nothing.js", "/static/.hidden.css", "/static/APP.JS"):  # fmt: skip
        reply = await browser.get(path)
        assert reply.status_code in (401, 404), path  # ../ is resolved by the client: /http.py
        assert reply.headers["content-type"] == "application/json"


async def test_the_scripts_put_data_on_the_page_only_as_text():
    from callcontrol.api.assets import DIRECTORY

    for script in DIRECTORY.glob("*.js"):
        text = script.read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in text, (script.name, risky)


async def test_signed_in_for_real_the_pages_carry_the_sessions_csrf_token(db, domains):
    from callcontrol.api.sessions import SessionCodec
    from callcontrol.api.signin import SignIn
    from callcontrol.testing.fusionpbx_users import add_user
    from tests.api.people import Clock, browser_on, sign_in

    (a, _), (b, _) = domains
    await add_user(db, a, "ana", "senha-da-ana-1", extensions=["1001"])
    mine = await add_ticket(db, a, caller_name="Maria Souza")
    await add_ticket(db, b, caller_name="Outro domínio")
    app = build_app(Metrics(), TOKEN, db=db, sign_in=SignIn(SessionCodec(b"k" * 32, Clock())))
    async with browser_on(app) as c:
        csrf = await sign_in(c, "ana", "senha-da-ana-1")
        page = assert_safe_page(await c.get("/console"))
        assert [card["data-id"] for card in page.all("article")] == [mine]
        assert page.all("meta", name="csrf-token")[0]["content"] == csrf
        assert page.all("input", name="csrf_token")[0]["value"] == csrf  # the sign-out form
        assert "ana" in page.text
        # the sign-in form sends someone signed in on to where they were going
        onward = await c.get("/login", params={"next": "/console/callbacks"})
        assert onward.status_code == 303 and onward.headers["location"] == "/console/callbacks"
