"""Each page at a desktop's and a phone's width, signed in as FusionPBX users of a clinic with
a day's worth of callbacks and calls: the screenshots kept in artifacts/screenshots
(``test_every_page_*-<page>.png``), and what a screenshot alone would not prove — nothing wider
than the screen (no sideways scrolling on a phone), the card buttons big enough to tap, the
charts drawn, the ticket's dialog filled, and no script error on any page."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from callcontrol.callbacks import tickets
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import add_call, add_ticket
from tests.browser.conftest import PHONE, Served, sign_in

CLINIC = "clinica.example.com"
AGENT = ("helena", "senha-da-helena-1")  # extension 1001
SUPERVISOR = ("carla", "senha-da-carla-1")
CONVERSATION = [
    {"t": 0.5, "role": "assistant", "text": "Clínica Bem Viver, bom dia! Em que posso ajudar?"},
    {"t": 3.1, "role": "caller", "text": "Queria falar com a Dra. Helena sobre o meu exame."},
    {"t": 25.0, "role": "assistant", "text": "Ela está em atendimento. Peço para retornar?"},
    {"t": 28.2, "role": "caller", "text": "Pode sim, no meu celular."},
]  # fmt: skip


@pytest.fixture
def clinic(served: Served) -> uuid.UUID:
    async def seed() -> uuid.UUID:
        db = served.db
        domain = await add_domain(db, CLINIC)
        for extension in ("1001", "1002"):
            await add_extension(db, domain, extension)
        await add_user(db, domain, *AGENT, extensions=["1001"])
        await add_user(db, domain, *SUPERVISOR, group="admin")
        await add_destination(db, domain, "Suporte", "queue", "5001")
        now = await db.fetch_value("SELECT now()")
        call = await add_call(db, domain, CONVERSATION, started_at=now - timedelta(minutes=14),
                              outcome="callback_requested", handoff_status="busy",
                              handoff_destination="Suporte")  # fmt: skip
        maria = await add_ticket(db, domain, created_at=now - timedelta(minutes=14),
                                 caller_name="Maria Souza", reason="Resultado do exame",
                                 call_uuid=call, summary="Quer o resultado; prefere celular.")
        await tickets.change_status(db, maria, tickets.TicketStatus.NOTIFIED, by="scanner")
        await add_ticket(db, domain, created_at=now - timedelta(minutes=3), status="ready_to_call",
                         caller_name="João Pereira", reason="Segunda via do boleto",
                         phone="+551134567890")  # fmt: skip
        await add_ticket(db, domain, created_at=now - timedelta(hours=1),
                         caller_name="Ana Beatriz Carvalho de Albuquerque",
                         reason="Remarcar a consulta de quinta-feira para a semana que vem",
                         phone="+5521997776655", scheduled_at=now + timedelta(hours=2),
                         notify_via_whatsapp=True, whatsapp_response="Pode ser amanhã cedo?")
        done = await add_ticket(db, domain, created_at=now - timedelta(days=1),
                                caller_name="Patrícia Lima")  # fmt: skip
        for status in ("in_progress", "completed"):
            await tickets.change_status(db, done, tickets.TicketStatus(status), by="clicktocall")
        for n, status in enumerate(["success", "success", "busy", "no_answer", "success"]):
            at = now - timedelta(days=n % 3, hours=n)
            await add_call(db, domain, [], started_at=at, outcome="bridged",
                           handoff_status=status, handoff_destination="Suporte")  # fmt: skip
        return domain

    return served.run(seed)  # type: ignore[no-any-return]


def fits(page: Any) -> None:
    """Nothing on the page is wider than the screen (a phone would scroll sideways)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], (page.url, width)


def errors_of(page: Any) -> list[str]:
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_every_page_as_the_agent(served, clinic, new_page, shot, expect, phone):
    page = new_page(phone=phone)
    errors = errors_of(page)
    page.goto(f"{served.url}/login")
    fits(page)
    shot(page, "login")

    sign_in(page, served, AGENT)
    cards = page.locator("article.card[data-id]:not([data-id=''])")
    expect(cards).to_have_count(3)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # what needs calling now: Ana's is scheduled two hours from now and waits for its time
    expect(page.locator("#pending-badge")).to_have_text("2")
    assert "(11) 3456-7890" in cards.first.inner_text()  # ready to call: first
    expect(cards.last.locator(".whatsapp")).to_contain_text("Pode ser amanhã cedo?")
    for button in cards.first.locator(".actions .btn").all():
        box = button.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, box
    fits(page)
    shot(page, "console")

    cards.first.get_by_role("button", name="Cancelar").click()
    expect(page.locator("#cancel-dialog")).to_be_visible()
    shot(page, "cancel-dialog")
    page.get_by_role("button", name="Voltar").click()

    page.goto(f"{served.url}/console/callbacks")
    rows = page.locator("#rows tr.row")
    expect(rows).to_have_count(2)  # due now: Maria and João; Ana is scheduled
    # the menu's link to this page, as it reads at this width ("Histórico" alone on a phone),
    # is the name of none of its tabs
    menu = page.locator("a.nav-link[href='/console/callbacks']").inner_text().strip()
    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
    assert tabs == ["Pendentes", "Agendados", "Encerrados"]
    assert menu == ("Histórico" if phone else "Histórico e agenda") and menu not in tabs
    bar = page.locator(".tabs")  # every tab in sight, none scrolled out of the bar
    assert bar.evaluate("e => e.scrollWidth <= e.clientWidth")
    fits(page)
    shot(page, "callbacks")
    page.get_by_role("tab", name="Agendados").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Ana Beatriz")
    shot(page, "callbacks-scheduled")
    assert not errors


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_every_page_as_the_supervisor(served, clinic, new_page, shot, expect, phone):
    page = new_page(phone=phone)
    errors = errors_of(page)
    sign_in(page, served, SUPERVISOR)
    page.goto(f"{served.url}/console/callbacks?tab=historico")
    expect(page.get_by_role("tab", selected=True)).to_have_text("Encerrados")
    expect(page.locator("#rows tr.row")).to_have_count(1)
    shot(page, "history")

    page.goto(f"{served.url}/console/callbacks")
    page.locator("#rows tr.row", has_text="Maria Souza").click()
    dialog = page.locator("#ticket-dialog")
    expect(dialog.locator(".transcript li")).to_have_count(len(CONVERSATION))
    expect(dialog.locator(".transcript li.role-caller").first).to_contain_text("Cliente")
    expect(dialog.locator(".timeline li")).to_have_count(2)  # asked, then notified
    assert "Quer o resultado" in dialog.inner_text()
    fits(page)
    shot(page, "ticket-dialog")
    page.keyboard.press("Escape")

    page.goto(f"{served.url}/console/dashboard")
    expect(page.locator("[data-kpi=open]")).to_have_text("3")
    expect(page.locator("#chart-time svg rect")).not_to_have_count(0)
    expect(page.locator("#chart-destinations .bar-row")).to_have_count(1)
    fits(page)
    if phone:  # the chart is drawn at the phone's width, its labels readable
        chart = page.locator("#chart-time svg").bounding_box()
        assert chart["width"] <= PHONE["width"]
    shot(page, "dashboard")
    page.get_by_role("button", name="Hoje").click()  # per hour
    expect(page.locator("#period .seg.is-active")).to_have_text("Hoje")
    expect(page.locator("#chart-time svg text", has_text="h").first).to_be_visible()
    shot(page, "dashboard-today")
    csv = page.locator("#csv-link").get_attribute("href")
    assert csv.startswith("/api/callbacks/report.csv?") and "from=" in csv
    reply = page.request.get(served.url + csv)
    assert reply.status == 200 and reply.body().startswith(b"\xef\xbb\xbf")
    assert not errors


def test_without_the_live_stream_the_console_polls_and_says_so(served, clinic, new_page, shot,
                                                                expect):  # fmt: skip
    page = new_page()
    page.route("**/api/events*", lambda route: route.abort())  # a proxy that drops the stream
    sign_in(page, served, AGENT)
    expect(page.locator("#live")).to_have_attribute("data-state", "polling")
    expect(page.locator("#live")).to_contain_text("Atualiza a cada 15 s")
    expect(page.locator("#pending-badge")).to_have_text("2")
    shot(page, "polling")
