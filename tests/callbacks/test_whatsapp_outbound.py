"""WhatsApp out (issue 9): the scanner's notification writes the template to the outbox in its
transaction, and the deliverer sends it over real HTTP to a local server playing the Graph API,
with its real answers and errors; real PostgreSQL with the stock FusionPBX schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import structlog
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.api.http import serve_http
from callcontrol.callbacks import whatsapp as wa
from callcontrol.callbacks.availability import Snapshot
from callcontrol.callbacks.outbox import RetryPolicy
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.scanner import scan_once
from callcontrol.callbacks.tickets import history, snooze
from callcontrol.callbacks.whatsapp_delivery import WhatsAppDeliverer
from callcontrol.config import HostPort, load_settings
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_destination, add_domain, add_extension, set_secretary
from tests.callbacks import graph_api
from tests.callbacks.graph_api import GraphApi

DOMAIN = "clinica.example.com"
T0 = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
REGISTERED = Snapshot.from_rows([{"reg_user": "1001", "realm": DOMAIN}], [])


async def _free():
    return REGISTERED


async def _clinic(db, company: str | None = "Clínica Exemplo"):
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    if company:
        await set_secretary(db, domain, company_name=company)
    return domain, suporte


async def _ticket(db, clinic, *, whatsapp=True, **columns) -> str:
    domain, suporte = clinic
    saved = await save_request(db, CallbackRequest(
        "callback", "+5511988887777", caller_name="Maria", reason="resultado do exame",
        domain_uuid=str(domain), destination_uuid=str(suporte), destination_name="Suporte"))
    columns = {"notify_via_whatsapp": whatsapp, **columns}
    sets = ", ".join(f"{k} = %({k})s" for k in columns)
    await db.execute(f"UPDATE callcontrol_callback_requests SET {sets} WHERE request_uuid = %(u)s",
                     {**columns, "u": saved.request_uuid})  # fmt: skip
    return saved.request_uuid


async def _rows(db):
    return await db.fetch_all("SELECT kind, event, status, attempts, last_error, payload,"
                              " external_id, request_uuid::text AS request_uuid,"
                              " next_attempt_at FROM callcontrol_outbox"
                              " WHERE kind = 'whatsapp' ORDER BY outbox_id")  # fmt: skip


async def _ticket_row(db, ticket):
    return await db.fetch_one("SELECT status, whatsapp_sent_at, whatsapp_message_id"
                              " FROM callcontrol_callback_requests WHERE request_uuid = %s",
                              (ticket,))  # fmt: skip


async def _template_queued(db, nursery):
    """A ticket that asks for WhatsApp, notified: its template waits in the outbox for the
    Graph API played by a local server."""
    ticket = await _ticket(db, await _clinic(db))
    port = graph_api.free_port()
    graph = GraphApi()
    await nursery.start(serve_http, graph.app(), HostPort("127.0.0.1", port))
    settings = graph_api.settings(port)
    await scan_once(db, _free, settings, T0)
    return ticket, graph, settings


async def test_the_notification_writes_the_template_once_for_tickets_that_ask(db):
    clinic = await _clinic(db)
    asks = await _ticket(db, clinic, intended_for="Dr. João", min_interval_minutes=10)
    silent = await _ticket(db, clinic, whatsapp=False)
    settings = graph_api.settings(graph_api.free_port())
    result = await scan_once(db, _free, settings, T0)
    assert {t.request_uuid for t in result.notified} == {asks, silent}
    [row] = await _rows(db)
    assert (row["event"], row["status"], row["request_uuid"]) == ("whatsapp.template", "pending",
                                                                  asks)  # fmt: skip
    assert row["payload"] == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
        "type": "template",
        "template": {"name": "retorno_disponivel", "language": {"code": "pt_BR"},
                     "components": [{"type": "body", "parameters": [
                         {"type": "text", "text": "Clínica Exemplo"},
                         {"type": "text", "text": "Dr. João"},
                         {"type": "text", "text": "resultado do exame"}]}]},
    }  # fmt: skip
    # the agent is told again after the interval; the customer is not written to again
    result = await scan_once(db, _free, settings, T0 + timedelta(minutes=11))
    assert asks in {t.request_uuid for t in result.notified}
    assert len(await _rows(db)) == 1
    # without WHATSAPP_TOKEN nothing is written for WhatsApp
    other = await _ticket(db, clinic)
    await scan_once(db, _free, load_settings({}), T0)
    assert other not in {r["request_uuid"] for r in await _rows(db)}


async def test_a_ticket_put_off_is_asked_again_at_its_new_time(db):
    ticket = await _ticket(db, await _clinic(db))
    settings = graph_api.settings(graph_api.free_port())
    await scan_once(db, _free, settings, T0)
    await snooze(db, ticket, T0 + timedelta(minutes=30), by="whatsapp", reason="depois")
    await scan_once(db, _free, settings, T0 + timedelta(minutes=20))  # not yet
    assert len(await _rows(db)) == 1
    await scan_once(db, _free, settings, T0 + timedelta(minutes=30))
    assert [r["event"] for r in await _rows(db)] == ["whatsapp.template"] * 2
    await scan_once(db, _free, settings, T0 + timedelta(minutes=45))  # told again: not written
    assert len(await _rows(db)) == 2


async def test_missing_words_get_fallbacks_and_a_reason_fits_on_one_line(db):
    clinic = await _clinic(db, company=None)
    await _ticket(db, clinic, reason="  segunda via\n\tdo boleto   ", destination_name=None)
    await db.execute("UPDATE v_voice_transfer_destinations SET name = ''")
    await scan_once(db, _free, graph_api.settings(graph_api.free_port()), T0)
    [row] = await _rows(db)
    texts = [p["text"] for p in row["payload"]["template"]["components"][0]["parameters"]]
    assert texts == [DOMAIN, "nossa equipe", "segunda via do boleto"]


async def test_sent_the_wamid_and_the_time_are_recorded(db, nursery):
    ticket, graph, settings = await _template_queued(db, nursery)
    now = T0 + timedelta(seconds=1)
    deliverer = WhatsAppDeliverer(db, settings, clock=lambda: now)
    async with httpx.AsyncClient(timeout=5) as client:
        assert await deliverer.deliver_once(client) == 1
        assert await deliverer.deliver_once(client) == 0
    [(path, headers, body)] = graph.requests
    assert path == f"/v21.0/{graph_api.PHONE_NUMBER_ID}/messages"
    assert headers["authorization"] == f"Bearer {graph_api.TOKEN}"
    assert headers["content-type"] == "application/json"
    assert body["type"] == "template" and body["to"] == "5511988887777"
    [wamid] = graph.wamids()
    [row] = await _rows(db)
    assert (row["status"], row["external_id"]) == ("delivered", wamid)
    found = await _ticket_row(db, ticket)
    assert (found["status"], found["whatsapp_sent_at"], found["whatsapp_message_id"]) == (
        "notified", now, wamid)


async def test_rate_limit_and_server_errors_are_retried_later(db, nursery):
    ticket, graph, settings = await _template_queued(db, nursery)
    now = [T0]
    deliverer = WhatsAppDeliverer(db, settings, clock=lambda: now[0],
                                  policy=RetryPolicy(base=1, cap=5))  # fmt: skip
    graph.answers = [graph_api.RATE_LIMIT, graph_api.TOO_MANY, graph_api.SERVER_ERROR]
    async with httpx.AsyncClient(timeout=5) as client:
        assert await deliverer.deliver_once(client) == 0  # 130429 in a 400
        [row] = await _rows(db)
        assert row["status"] == "pending" and row["last_error"].startswith(
            "rate_limit: HTTP 400, Graph error 130429")
        assert row["next_attempt_at"] - now[0] >= timedelta(seconds=60)  # not at the backoff's 1 s
        now[0] += timedelta(seconds=30)
        assert await deliverer.deliver_once(client) == 0 and len(graph.requests) == 1
        now[0] += timedelta(seconds=31)
        assert await deliverer.deliver_once(client) == 0  # 429
        now[0] += timedelta(seconds=61)
        assert await deliverer.deliver_once(client) == 0  # 500: the backoff
        [row] = await _rows(db)
        assert (row["status"], row["attempts"]) == ("failing", 3)
        now[0] += timedelta(seconds=6)
        assert await deliverer.deliver_once(client) == 1
    assert len(graph.requests) == 4 and len(graph.sent) == 1
    assert (await _ticket_row(db, ticket))["whatsapp_message_id"] == graph.wamids()[0]


async def test_an_undeliverable_number_fails_once_and_the_history_says_why(db, nursery):
    ticket, graph, settings = await _template_queued(db, nursery)
    now = [T0]
    metrics = Metrics()
    deliverer = WhatsAppDeliverer(db, settings, clock=lambda: now[0], metrics=metrics)
    graph.answers = [graph_api.UNDELIVERABLE]
    async with httpx.AsyncClient(timeout=5) as client:
        with structlog.testing.capture_logs() as logs:
            assert await deliverer.deliver_once(client) == 0
        for _ in range(3):
            now[0] += timedelta(days=1)
            assert await deliverer.deliver_once(client) == 0
    assert len(graph.requests) == 1  # never again
    [row] = await _rows(db)
    assert row["status"] == "failed" and "131026" in row["last_error"]
    [line] = [x for x in logs if x["event"] == "outbox.delivery_failed"]
    assert (line["log_level"], line["status"], line["code"]) == ("error", "failed", 131026)
    last = (await history(db, ticket))[-1]
    assert (last["from_status"], last["to_status"], last["changed_by"]) == ("notified",
                                                                            "notified",
                                                                            "whatsapp")
    assert "not on WhatsApp" in last["reason"] and "131026" in last["reason"]
    assert (await _ticket_row(db, ticket))["whatsapp_sent_at"] is None
    assert (await deliverer.measure()).rows == 0  # nothing left to send: no backlog alert


async def test_an_expired_token_is_retried_and_logged_as_an_error_once_per_row(db, nursery):
    _, graph, settings = await _template_queued(db, nursery)
    now = [T0]
    deliverer = WhatsAppDeliverer(db, settings, clock=lambda: now[0],
                                  policy=RetryPolicy(base=1, cap=5))  # fmt: skip
    graph.answers = [graph_api.EXPIRED_TOKEN] * 3
    async with httpx.AsyncClient(timeout=5) as client:
        with structlog.testing.capture_logs() as logs:
            for _ in range(4):
                await deliverer.deliver_once(client)
                now[0] += timedelta(seconds=6)
    failed = [x for x in logs if x["event"] == "outbox.delivery_failed"]
    assert [x["log_level"] for x in failed] == ["error", "info", "info"]
    assert failed[0]["code"] == 190 and "WHATSAPP_TOKEN" in failed[0]["fix"]
    assert [x["event"] for x in logs].count("outbox.delivered") == 1
    assert graph_api.TOKEN not in repr(logs)
    [row] = await _rows(db)
    assert row["status"] == "delivered" and row["attempts"] == 4


def test_the_graph_api_answers_are_read_as_meta_documents_them():
    ok = wa.read_answer(200, {"messaging_product": "whatsapp",
                              "messages": [{"id": "wamid.X"}]})  # fmt: skip
    assert (ok.outcome, ok.message_id) == (wa.Outcome.SENT, "wamid.X")
    for (status, body), outcome in ((graph_api.RATE_LIMIT, wa.Outcome.RATE_LIMITED),
                                    (graph_api.TOO_MANY, wa.Outcome.RATE_LIMITED),
                                    (graph_api.UNDELIVERABLE, wa.Outcome.UNDELIVERABLE),
                                    (graph_api.EXPIRED_TOKEN, wa.Outcome.UNAUTHORIZED),
                                    (graph_api.SERVER_ERROR, wa.Outcome.RETRY),
                                    ((502, None), wa.Outcome.RETRY)):  # fmt: skip
        assert wa.read_answer(status, body).outcome is outcome, (status, body)


@given(st.integers(100, 599), st.recursive(
    st.none() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["error", "code", "message", "messages", "id"]), inner, max_size=4),
    max_leaves=12))  # fmt: skip
def test_any_answer_is_read_without_failing(status, body):
    answer = wa.read_answer(status, body)
    assert answer.outcome is wa.Outcome.SENT or answer.error


@given(st.text(max_size=300))
def test_a_template_parameter_is_always_one_line_and_never_empty(text):
    value = wa.parameter(text, "fallback")
    assert value and value == value.strip() and len(value) <= wa.MAX_PARAMETER
    assert "\n" not in value and "\t" not in value and "     " not in value
