"""The agent's console in a real chromium (issue 9): signing in with a FusionPBX user, a callback
arriving live, Ligar agora ringing the agent on the (simulated) FreeSWITCH, a busy race, Adiar
5 min, Cancelar, and an agent of another domain seeing none of it. What is asserted is what the
agent sees on the page, what FreeSWITCH was sent and what the ticket's rows say."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import httpx
import pytest
import trio

from callcontrol.callbacks.tickets import history
from callcontrol.testing.database import add_domain, add_extension
from callcontrol.testing.freeswitch import Answer, Manual
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import add_ticket
from tests.browser.conftest import TOKEN, WAIT_MS, Served, sign_in

CLINIC, OTHER = "clinica.example.com", "outra.example.com"
NUMBER = "+5511988887777"
SHOWN = "(11) 98888-7777"  # how the console writes NUMBER
ANA = ("ana", "senha-da-ana-1")  # agent of CLINIC, extension 1001
BRUNO = ("bruno", "senha-do-bruno-1")  # agent of OTHER, extension 1001 too
SOFIA = ("sofia", "senha-da-sofia-1")  # supervisor of CLINIC
SOFIA_EMAIL = "Sofia.Lima@clinica.com.br"  # her e-mail in FusionPBX


@attrs.frozen
class Tenants:
    clinic: uuid.UUID
    other: uuid.UUID


@pytest.fixture
def tenants(served: Served) -> Tenants:
    async def seed() -> Tenants:
        db = served.db
        clinic, other = await add_domain(db, CLINIC), await add_domain(db, OTHER)
        for domain in (clinic, other):
            await add_extension(db, domain, "1001")
        await add_user(db, clinic, *ANA, extensions=["1001"])
        await add_user(db, other, *BRUNO, extensions=["1001"])
        await add_user(db, clinic, *SOFIA, group="admin", email=SOFIA_EMAIL)
        return Tenants(clinic, other)

    return served.run(seed)  # type: ignore[no-any-return]


def ticket(served: Served, domain: uuid.UUID, **columns: Any) -> str:
    async def add() -> str:
        return await add_ticket(served.db, domain, created_at=await _now(served), **columns)

    return served.run(add)  # type: ignore[no-any-return]


async def _now(served: Served) -> Any:
    return await served.db.fetch_value("SELECT now()")


def row(served: Served, ident: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        found = await served.db.fetch_one(
            "SELECT status, scheduled_at FROM callcontrol_callback_requests"
            " WHERE request_uuid = %s", (ident,))  # fmt: skip
        assert found is not None
        return dict(found)

    return served.run(read)  # type: ignore[no-any-return]


def card(page: Any, ident: str) -> Any:
    return page.locator(f"article.card[data-id='{ident}']")


def stays_loaded(page: Any) -> None:
    """Marks the document, so the test can tell later that the page was never reloaded."""
    page.evaluate("window.__loaded_once = true")


def was_not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__loaded_once === true"))


def wait_live(page: Any) -> None:
    """Until the console's event stream is open (an event sent earlier is not replayed)."""
    page.locator("#live[data-state='live']").wait_for()


def registered(served: Served, extension: str, domain: str) -> None:
    served.run_sync(served.sim.register, extension, domain)


def wait_for_originate(served: Served, dial: str) -> str:
    async def wait() -> str:
        with trio.fail_after(WAIT_MS / 1000):
            await served.sim.wait_for(lambda: any(dial in line for line in lines()))
        return next(line for line in lines() if dial in line)

    def lines() -> list[str]:
        return [c.line for listener in served.sim.inbound for c in listener.commands
                if c.verb == "bgapi" and c.line.startswith("bgapi originate ")]  # fmt: skip

    return served.run(wait)  # type: ignore[no-any-return]


# -- signing in ---------------------------------------------------------------------------------


def test_a_wrong_password_is_told_and_the_right_one_lands_on_the_console(
    served, tenants, new_page, shot
):
    page = new_page()
    page.goto(f"{served.url}/console")
    assert page.url == f"{served.url}/login?next=/console"
    page.locator("input[name=username]").fill(ANA[0])
    page.locator("input[name=password]").fill("not-her-password")
    page.get_by_role("button", name="Entrar").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "incorretos" in alert.inner_text()
    assert page.url.startswith(f"{served.url}/login")
    shot(page, "wrong-password")

    page.locator("input[name=password]").fill(ANA[1])
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(f"{served.url}/console")
    assert page.get_by_role("heading", name="Retornos").is_visible()
    assert ANA[0] in page.locator("header").inner_text()
    shot(page, "console")


def test_the_e_mail_fusionpbx_has_for_a_user_signs_them_in(served, tenants, new_page, shot):
    page = new_page()
    page.goto(f"{served.url}/login")
    field = page.get_by_label("Usuário ou e-mail")
    field.fill("sofia.lima@clinica.com.br")  # however she writes it
    page.get_by_label("Senha").fill(SOFIA[1])
    shot(page, "form")
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(f"{served.url}/console")
    assert SOFIA[0] in page.locator("header").inner_text()  # signed in as her username


# -- a callback arriving ------------------------------------------------------------------------


def test_a_new_callback_appears_without_a_reload_and_the_badge_counts_it(
    served, tenants, new_page, shot
):
    page = new_page()
    sign_in(page, served, ANA)
    badge = page.locator("#pending-badge")
    assert badge.inner_text().strip() == "0"
    assert page.locator("article.card[data-id]:not([data-id=''])").count() == 0
    stays_loaded(page)
    wait_live(page)
    shot(page, "empty")

    ident = ticket(served, tenants.clinic, caller_name="Maria Souza", reason="resultado do exame")
    arrived = card(page, ident)
    arrived.wait_for()
    assert SHOWN in arrived.inner_text()
    assert "Maria Souza" in arrived.inner_text()
    assert "resultado do exame" in arrived.inner_text()
    page.wait_for_function("document.querySelector('#pending-badge').textContent.trim() === '1'")
    assert was_not_reloaded(page)
    shot(page, "arrived")


def test_the_scanner_telling_the_agent_shows_on_the_open_console(
    served, tenants, new_page, shot, expect
):
    ident = ticket(served, tenants.clinic)
    page = new_page()
    sign_in(page, served, ANA)
    pill = card(page, ident).locator("[data-slot=status]")
    expect(pill).to_have_text("Pendente")
    stays_loaded(page)
    wait_live(page)

    registered(served, "1001", CLINIC)  # her phone registers: the scanner finds her free
    expect(pill).to_have_text("Avisado")
    assert row(served, ident)["status"] == "notified"
    assert was_not_reloaded(page)
    shot(page, "notified")


# -- Ligar agora ----------------------------------------------------------------------------------


def test_ligar_agora_rings_the_agent_with_the_customer_number_as_caller_id(
    served, tenants, new_page, shot, expect
):
    registered(served, "1001", CLINIC)
    ident = ticket(served, tenants.clinic)
    page = new_page()
    sign_in(page, served, ANA)
    card(page, ident).get_by_role("button", name="Ligar agora").click()

    expect(card(page, ident).locator("[data-slot=note]")).to_contain_text("atenda o telefone")
    line = wait_for_originate(served, f"user/1001@{CLINIC}")
    assert f"origination_caller_id_number={NUMBER}" in line
    assert f"callcontrol_ticket={ident}" in line
    assert row(served, ident)["status"] == "in_progress"
    shot(page, "calling")


@pytest.mark.parametrize(("phone", "told", "name"), [
    (Manual(), "Ramal chamando", "busy"),  # another call rings it (not answered yet)
    (Answer(), "Ramal em ligação", "busy-in-call"),  # answered: the agent is talking
], ids=["ringing", "in-call"])  # fmt: skip
def test_a_busy_agent_is_told_when_to_try_again_and_the_card_stays(
    served, tenants, new_page, shot, phone, told, name
):
    ident = ticket(served, tenants.clinic)
    # the agent's phone has another call: FreeSWITCH lists the channel, ringing or answered
    served.run_sync(served.sim.endpoints.__setitem__, f"user/1001@{CLINIC}", phone)
    registered(served, "1001", CLINIC)
    served.run_sync(served.sim.bgapi, f"originate user/1001@{CLINIC} &park()", str(uuid.uuid4()))
    _wait_unavailable(served, tenants.clinic, "1001")
    page = new_page()
    sign_in(page, served, ANA)
    stays_loaded(page)
    before, status = served.originates(), row(served, ident)["status"]

    card(page, ident).get_by_role("button", name="Ligar agora").click()
    note = card(page, ident).locator("[data-slot=note]")
    note.wait_for()
    assert note.inner_text().startswith(f"{told} — tente de novo em ")
    assert card(page, ident).is_visible() and was_not_reloaded(page)
    assert served.originates() == before  # the busy agent was not rung again
    assert row(served, ident)["status"] == status
    shot(page, name)


def _wait_unavailable(served: Served, domain: uuid.UUID, extension: str) -> None:
    """Until the server's own availability answer says the extension is taken (its monitor read
    the switch's channels after the event), so the click cannot race it."""
    url = f"{served.url}/api/extension/status/{extension}?domain_uuid={domain}"
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=WAIT_MS / 1000) as c:
        for _ in range(500):
            if not c.get(url).json()["available"]:
                return
    raise AssertionError(f"{extension} never became unavailable")


# -- Adiar 5 min, Cancelar ------------------------------------------------------------------------


def test_adiar_5_min_puts_the_callback_off_five_minutes(served, tenants, new_page, shot, expect):
    ident = ticket(served, tenants.clinic)
    page = new_page()
    sign_in(page, served, ANA)
    scheduled = card(page, ident).locator("[data-slot=scheduled]")
    expect(scheduled).to_have_text("Assim que possível")
    badge = page.locator("#pending-badge")
    expect(badge).to_have_text("1")
    before = served.run(_now, served)
    card(page, ident).get_by_role("button", name="Adiar 5 min").click()
    expect(page.locator("#toasts")).to_contain_text("Adiado")
    after = served.run(_now, served)
    until = row(served, ident)["scheduled_at"]
    assert before + timedelta(minutes=5) <= until <= after + timedelta(minutes=5)
    # the card says when it comes back, in the agent's time zone
    local = until.astimezone(ZoneInfo("America/Sao_Paulo")).strftime("%H:%M")
    expect(scheduled).to_contain_text(local)
    # and it visibly leaves the ones to call now
    expect(card(page, ident).locator("[data-slot=status]")).to_have_text("Agendado")
    expect(card(page, ident)).to_have_class(re.compile(r"\bis-later\b"))
    # nothing to call now: the badge and the tab's title count only what needs action
    expect(badge).to_have_text("0")
    expect(badge).to_have_class(re.compile(r"\bis-empty\b"))
    assert not page.title().startswith("(")
    page.reload()  # the server's first page counts the same
    expect(page.locator("#pending-badge")).to_have_text("0")
    shot(page, "snoozed")


def test_cancelar_asks_first_then_cancels_with_a_history_row(served, tenants, new_page, shot):
    ident = ticket(served, tenants.clinic)
    page = new_page()
    sign_in(page, served, ANA)
    card(page, ident).get_by_role("button", name="Cancelar").click()
    dialog = page.locator("#cancel-dialog")
    dialog.wait_for()
    shot(page, "confirm")
    dialog.get_by_role("button", name="Voltar").click()
    assert row(served, ident)["status"] == "pending"

    card(page, ident).get_by_role("button", name="Cancelar").click()
    dialog.locator("input[name=reason]").fill("cliente já foi atendido")
    dialog.get_by_role("button", name="Cancelar retorno").click()
    card(page, ident).wait_for(state="detached")
    assert row(served, ident)["status"] == "canceled"
    moves = served.run(history, served.db, ident)
    assert (moves[-1]["from_status"], moves[-1]["to_status"]) == ("pending", "canceled")
    assert moves[-1]["reason"] == "cliente já foi atendido"
    shot(page, "canceled")


# -- tenants --------------------------------------------------------------------------------------


def test_an_agent_of_another_domain_sees_nothing_of_the_first(served, tenants, new_page, shot):
    theirs = ticket(served, tenants.clinic, caller_name="Maria Souza")
    page = new_page()
    sign_in(page, served, BRUNO)
    wait_live(page)
    assert "Maria Souza" not in page.content() and SHOWN not in page.content()
    assert page.locator("#pending-badge").inner_text().strip() == "0"
    # events come in order: once the other domain's second ticket... is never shown, his own is
    ticket(served, tenants.clinic, caller_name="Maria Souza", phone="+5511977776666")
    own = ticket(served, tenants.other, caller_name="João Lima", phone="+5521966665555")
    card(page, own).wait_for()
    assert card(page, theirs).count() == 0
    assert "Maria Souza" not in page.content()
    refused = page.request.get(f"{served.url}/api/callbacks/{theirs}")
    assert refused.status == 404
    page.goto(f"{served.url}/console/callbacks?tab=pendentes")
    page.locator("#rows tr.row").first.wait_for()
    assert "Maria Souza" not in page.content() and "João Lima" in page.content()
    shot(page, "callbacks")
