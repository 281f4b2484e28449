"""``/webhooks/whatsapp`` (issue 9): Meta's subscription handshake and signed webhook on the real
Starlette app and PostgreSQL (stock FusionPBX schema + migrations); each reply word, duplicate
deliveries, forged signatures, and a round trip through a local server playing the Graph API."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.api.http import build_app, serve_http
from callcontrol.api.whatsapp_webhook import WhatsAppWebhook
from callcontrol.callbacks.availability import Snapshot
from callcontrol.callbacks.scanner import scan_once
from callcontrol.callbacks.tickets import history
from callcontrol.callbacks.whatsapp_delivery import WhatsAppDeliverer
from callcontrol.config import HostPort, load_settings
from callcontrol.db import PoolOptions, open_database
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_domain
from tests.api.conftest import TOKEN, add_ticket
from tests.callbacks import graph_api

PATH = "/webhooks/whatsapp"
NOW = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
WAMID = "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjAAA"
SETTINGS = graph_api.settings(9)  # sending configured: the confirmations are queued


def signed(body: bytes, secret: str = graph_api.APP_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}", "Content-Type": "application/json"}


def webhook(*messages: dict, statuses: list | None = None) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "551140040000",
                          "phone_number_id": graph_api.PHONE_NUMBER_ID},
             "contacts": [{"profile": {"name": "Maria"}, "wa_id": "5511988887777"}],
             "messages": list(messages)}  # fmt: skip
    if statuses is not None:
        value = {**value, "statuses": statuses}
        del value["messages"]
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}).encode()


def text(body: str, ident: str = "wamid.IN1", *, context: str | None = WAMID,
         sender: str = "5511988887777") -> dict:  # fmt: skip
    message = {"from": sender, "id": ident, "timestamp": "1796648400", "type": "text",
               "text": {"body": body}}  # fmt: skip
    if context:
        message["context"] = {"from": "551140040000", "id": context}
    return message


def app_for(db, hook_settings=SETTINGS, kicks: list | None = None, metrics=None):
    kicked = kicks if kicks is not None else []
    hook = WhatsAppWebhook(hook_settings, kick=lambda: kicked.append(1), clock=lambda: NOW)
    return build_app(metrics or Metrics(), TOKEN, db=db, whatsapp=hook)


@pytest.fixture
async def meta(db, metrics):
    """Meta's side: posts to the webhook, with no service token."""
    transport = httpx.ASGITransport(app=app_for(db, metrics=metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def told(db, domain, *, phone="+5511988887777", wamid=WAMID, sent_at=NOW, **columns):
    """A ticket whose template was delivered to ``phone`` as ``wamid``."""
    ticket = await add_ticket(db, domain, phone=phone, status="notified",
                              notify_via_whatsapp=True, whatsapp_sent_at=sent_at,
                              whatsapp_message_id=wamid, created_at=NOW - timedelta(hours=1),
                              **columns)  # fmt: skip
    await db.execute("INSERT INTO callcontrol_outbox (kind, event, request_uuid, payload, status,"
                     " external_id) VALUES ('whatsapp', 'whatsapp.template', %s, '{}',"
                     " 'delivered', %s)", (ticket, wamid))  # fmt: skip
    return ticket


async def ticket_of(db, ticket):
    return await db.fetch_one("SELECT status, scheduled_at, whatsapp_response,"
                              " whatsapp_response_at FROM callcontrol_callback_requests"
                              " WHERE request_uuid = %s", (ticket,))  # fmt: skip


async def confirmations(db):
    return [r["payload"] for r in await db.fetch_all(
        "SELECT payload FROM callcontrol_outbox WHERE event = 'whatsapp.reply'"
        " ORDER BY outbox_id")]  # fmt: skip


async def test_the_subscription_handshake(db, meta, metrics):
    good = {"hub.mode": "subscribe", "hub.verify_token": graph_api.VERIFY_TOKEN,
            "hub.challenge": "1158201444"}  # fmt: skip
    reply = await meta.get(PATH, params=good)
    assert (reply.status_code, reply.text) == (200, "1158201444")
    assert reply.headers["content-type"].startswith("text/plain")
    with structlog.testing.capture_logs() as logs:
        for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"},
                      {"hub.verify_token": None}):  # fmt: skip
            params = {k: v for k, v in {**good, **wrong}.items() if v is not None}
            assert (await meta.get(PATH, params=params)).status_code == 403
    assert graph_api.VERIFY_TOKEN not in repr(logs) and "guess" not in repr(logs)
    assert (metrics.value("voice_whatsapp_webhooks_total", result="subscribed"),
            metrics.value("voice_whatsapp_webhooks_total",
                          result="subscription_refused")) == (1, 3)  # fmt: skip
    assert (await meta.get(PATH, params={**good, "hub.challenge": ""})).status_code == 400
    unset = app_for(db, load_settings({}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unset),
                                 base_url="http://api") as other:  # fmt: skip
        reply = await other.get(PATH, params=good)
        assert reply.status_code == 404 and "WHATSAPP_VERIFY_TOKEN" in reply.json()["reason"]
        body = webhook(text("sim"))
        reply = await other.post(PATH, content=body, headers=signed(body))
        assert reply.status_code == 404 and "WHATSAPP_APP_SECRET" in reply.json()["reason"]


async def test_a_forged_or_unsigned_post_is_refused_and_changes_nothing(db, domains, meta,
                                                                        metrics):  # fmt: skip
    (a, _), _ = domains
    ticket = await told(db, a)
    body = webhook(text("não"))
    with structlog.testing.capture_logs() as logs:
        for headers in ({"Content-Type": "application/json"}, signed(body, "not-the-secret"),
                        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
                        {"X-Hub-Signature-256": "sha1=abc"}):  # fmt: skip
            reply = await meta.post(PATH, content=body, headers=headers)
            assert reply.status_code == 401 and reply.json()["error"] == "unauthorized"
        # signed, then changed on the way
        tampered = body.replace(b"n\\u00e3o", b"sim")
        assert tampered != body
        reply = await meta.post(PATH, content=tampered, headers=signed(body))
        assert reply.status_code == 401
    refused = [x for x in logs if x["event"] == "whatsapp.webhook_refused"]
    assert [x["why"] for x in refused][:2] == ["unsigned", "the signature does not match "
                                               "WHATSAPP_APP_SECRET"]  # fmt: skip
    assert graph_api.APP_SECRET not in repr(logs)
    assert metrics.value("voice_whatsapp_webhooks_total", result="refused") == 5
    assert (await ticket_of(db, ticket))["status"] == "notified"
    assert await db.fetch_value("SELECT count(*) FROM callcontrol_whatsapp_inbound") == 0


@pytest.mark.parametrize(("words", "status"), [
    (["sim", "s", "1", "yes", "Sim!", " SIM "], "ready_to_call"),
    (["depois", "2", "later", "Depois."], "pending"),
    (["não", "nao", "n", "3", "no", "NÃO"], "canceled"),
])  # fmt: skip
async def test_each_reply_word_moves_the_ticket_and_confirms(db, domains, meta, words, status):
    (a, _), _ = domains
    for n, word in enumerate(words):
        wamid = f"{WAMID}{n}"
        ticket = await told(db, a, wamid=wamid, phone=f"+55119888877{n:02d}")
        body = webhook(text(word, f"wamid.IN{n}", context=wamid, sender=f"55119888877{n:02d}"))
        reply = await meta.post(PATH, content=body, headers=signed(body))
        assert (reply.status_code, reply.json()) == (200, {"received": 1})
        found = await ticket_of(db, ticket)
        assert found["status"] == status, word
        assert (found["whatsapp_response"], found["whatsapp_response_at"]) == (word, NOW)
        if status == "pending":
            assert found["scheduled_at"] == NOW + timedelta(minutes=30)
        last = (await history(db, ticket))[-1]
        assert (last["to_status"], last["changed_by"]) == (status, "whatsapp")
        assert "on WhatsApp" in last["reason"]
        sent = (await confirmations(db))[-1]
        assert (sent["type"], sent["to"], sent["context"]) == (
            "text", f"55119888877{n:02d}", {"message_id": f"wamid.IN{n}"})
    assert len(await confirmations(db)) == len(words)


async def test_anything_else_is_kept_for_the_agent_and_moves_nothing(db, domains, meta):
    (a, _), _ = domains
    ticket = await told(db, a)
    for n, message in enumerate([
        text("pode ser amanhã às 10h?", "wamid.A"),
        text("sim, mas só depois das 3", "wamid.B"),
        {"from": "5511988887777", "id": "wamid.C", "type": "image",
         "image": {"id": "1234", "mime_type": "image/jpeg"}},
    ]):  # fmt: skip
        body = webhook(message)
        assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
        found = await ticket_of(db, ticket)
        assert found["status"] == "notified"
        assert found["whatsapp_response"] == ["pode ser amanhã às 10h?",
                                              "sim, mas só depois das 3", "[image]"][n]
    assert await confirmations(db) == []
    outcomes = await db.fetch_all("SELECT outcome FROM callcontrol_whatsapp_inbound")
    assert {r["outcome"] for r in outcomes} == {"other"}
    # the agent sees it in the API
    transport = httpx.ASGITransport(app=app_for(db))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as agent:
        shown = (await agent.get(f"/api/callbacks/{ticket}", params={"domain_uuid": str(a)},
                                 headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert (shown["whatsapp_response"], shown["whatsapp_response_at"]) == ("[image]",
                                                                           NOW.isoformat())
    # and in the report, guarded like the other free text
    body = webhook(text("=HYPERLINK(\"http://x\")", "wamid.D"))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as agent:
        csv = (await agent.get("/api/callbacks/report.csv", params={"domain_uuid": str(a)},
                               headers={"Authorization": f"Bearer {TOKEN}"})).text
    header, row = csv.lstrip("\ufeff").splitlines()[:2]
    assert header.endswith(",Resposta WhatsApp")
    assert row.endswith('"\'=HYPERLINK(""http://x"")"')


async def test_buttons_and_interactive_replies_count_as_the_words(db, domains, meta):
    (a, _), _ = domains
    now_ticket = await told(db, a, wamid="wamid.T1", phone="+5511900000001")
    no_ticket = await told(db, a, wamid="wamid.T2", phone="+5511900000002")
    button = {"from": "5511900000001", "id": "wamid.B1", "type": "button",
              "context": {"id": "wamid.T1"},
              "button": {"payload": "1", "text": "Ligar agora"}}  # fmt: skip
    interactive = {"from": "5511900000002", "id": "wamid.B2", "type": "interactive",
                   "context": {"id": "wamid.T2"},
                   "interactive": {"type": "button_reply",
                                   "button_reply": {"id": "cancelar", "title": "Não"}}}
    body = webhook(button, interactive)
    reply = await meta.post(PATH, content=body, headers=signed(body))
    assert reply.json() == {"received": 2}
    assert (await ticket_of(db, now_ticket))["status"] == "ready_to_call"
    assert (await ticket_of(db, no_ticket))["status"] == "canceled"


async def test_without_a_quote_the_newest_ticket_at_that_number_answers(db, domains, meta):
    (a, _), _ = domains
    older = await told(db, a, wamid="wamid.OLD", sent_at=NOW - timedelta(hours=2))
    newer = await told(db, a, wamid="wamid.NEW", sent_at=NOW - timedelta(minutes=5))
    closed = await told(db, a, wamid="wamid.DONE", sent_at=NOW)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'completed'"
                     " WHERE request_uuid = %s", (closed,))  # fmt: skip
    body = webhook(text("2", context=None))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    assert (await ticket_of(db, newer))["status"] == "pending"
    assert (await ticket_of(db, older))["status"] == "notified"
    # a Brazilian mobile whose WhatsApp id lacks the ninth digit finds its ticket too
    ninth = await told(db, a, wamid="wamid.9", phone="+5521987654321")
    body = webhook(text("sim", "wamid.IN9", context=None, sender="552187654321"))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    assert (await ticket_of(db, ninth))["status"] == "ready_to_call"
    # a number we never wrote to: stored, nothing moves
    body = webhook(text("sim", "wamid.IN10", context=None, sender="5511911112222"))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    assert await db.fetch_value("SELECT outcome FROM callcontrol_whatsapp_inbound"
                                " WHERE message_id = 'wamid.IN10'") == "unmatched"


async def test_a_duplicate_delivery_changes_nothing_twice(db, domains, meta, metrics):
    (a, _), _ = domains
    ticket = await told(db, a)
    body = webhook(text("depois"))
    for _ in range(3):  # Meta retries
        assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    steps = [h for h in await history(db, ticket) if h["changed_by"] == "whatsapp"]
    assert len(steps) == 1 and len(await confirmations(db)) == 1
    assert metrics.value("voice_whatsapp_replies_total", outcome="duplicate") == 2
    assert metrics.value("voice_whatsapp_webhooks_total", result="accepted") == 3
    # a second, distinct "sim" after the "depois": a move of its own
    body = webhook(text("sim", "wamid.IN2"))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    assert (await ticket_of(db, ticket))["status"] == "ready_to_call"
    # "sim" again: no such move from ready_to_call; kept, not confirmed
    body = webhook(text("sim", "wamid.IN3"))
    assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
    assert await db.fetch_value("SELECT outcome FROM callcontrol_whatsapp_inbound"
                                " WHERE message_id = 'wamid.IN3'") == "refused"
    assert len(await confirmations(db)) == 2


async def test_status_updates_and_other_numbers_are_answered_200_and_skipped(db, domains, meta):
    (a, _), _ = domains
    ticket = await told(db, a)
    body = webhook(statuses=[{"id": WAMID, "status": "read", "timestamp": "1796648400",
                              "recipient_id": "5511988887777"}])  # fmt: skip
    reply = await meta.post(PATH, content=body, headers=signed(body))
    assert (reply.status_code, reply.json()) == (200, {"received": 0})
    other = webhook(text("não")).replace(graph_api.PHONE_NUMBER_ID.encode(), b"999")
    assert (await meta.post(PATH, content=other, headers=signed(other))).status_code == 200
    assert (await ticket_of(db, ticket))["status"] == "notified"


async def test_a_later_failed_status_marks_the_message_undeliverable_once(db, domains, meta):
    (a, _), _ = domains
    ticket = await told(db, a)
    failed = webhook(statuses=[{
        "id": WAMID, "status": "failed", "timestamp": "1796648400",
        "recipient_id": "5511988887777",
        "errors": [{"code": 131026, "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": {"details": "Message Undeliverable."}}]}])  # fmt: skip
    for _ in range(2):  # Meta repeats itself
        assert (await meta.post(PATH, content=failed, headers=signed(failed))).status_code == 200
    row = await db.fetch_one("SELECT status, last_error FROM callcontrol_outbox"
                             " WHERE external_id = %s", (WAMID,))  # fmt: skip
    assert row["status"] == "failed" and "131026" in row["last_error"]
    steps = [h for h in await history(db, ticket) if h["changed_by"] == "whatsapp"]
    assert len(steps) == 1 and "not on WhatsApp" in steps[0]["reason"]
    assert (await ticket_of(db, ticket))["status"] == "notified"  # the agent still calls


async def test_round_trip_template_reply_confirmation(db, nursery):
    """The scanner tells the agent, the template goes out, the customer answers "sim" quoting
    it, the ticket is ready to call and the confirmation goes out as a reply to their message."""
    from callcontrol.testing.database import add_destination, add_domain, add_extension

    domain = await add_domain(db, "clinica.example.com")
    await add_extension(db, domain, "1001")
    await add_destination(db, domain, "Suporte", "extension", "1001")
    ticket = await add_ticket(db, domain, notify_via_whatsapp=True, created_at=NOW)
    port = graph_api.free_port()
    graph = graph_api.GraphApi()
    await nursery.start(serve_http, graph.app(), HostPort("127.0.0.1", port))
    live = graph_api.settings(port)
    registered = Snapshot.from_rows([{"reg_user": "1001", "realm": "clinica.example.com"}], [])

    async def free():
        return registered

    await scan_once(db, free, live, NOW)
    deliverer = WhatsAppDeliverer(db, live, clock=lambda: NOW)
    kicks: list = []
    async with (httpx.AsyncClient(timeout=5) as client,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(db, live, kicks)),
                                  base_url="http://api") as meta):  # fmt: skip
        assert await deliverer.deliver_once(client) == 1
        [wamid] = graph.wamids()
        body = webhook(text("Sim", "wamid.FROM.MARIA", context=wamid))
        assert (await meta.post(PATH, content=body, headers=signed(body))).status_code == 200
        assert kicks == [1]  # the deliverer is woken for the confirmation
        assert await deliverer.deliver_once(client) == 1
    assert (await ticket_of(db, ticket))["status"] == "ready_to_call"
    template, confirmation = graph.sent
    assert template["type"] == "template"
    assert confirmation == {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": "5511988887777", "type": "text",
                            "text": {"preview_url": False,
                                     "body": "Combinado! Vamos ligar para você em instantes."},
                            "context": {"message_id": "wamid.FROM.MARIA"}}  # fmt: skip


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["object", "entry", "changes", "value", "messages", "metadata", "from",
                         "id", "type", "text", "body", "context", "button", "payload",
                         "interactive", "button_reply", "list_reply", "title",
                         "phone_number_id", "statuses"]) | st.text(max_size=6),
        inner, max_size=5),
    max_leaves=25)  # fmt: skip
_MESSAGE = st.fixed_dictionaries({
    "from": st.text(max_size=16) | st.sampled_from(["5511988887777", "552187654321"]),
    "id": st.text(min_size=1, max_size=30),
    "type": st.sampled_from(["text", "button", "interactive", "image", "x"]),
}, optional={"text": st.fixed_dictionaries({"body": st.text(max_size=40) | st.sampled_from(
    ["sim", "não", "2", "depois", "no"])}), "context": _JSON | st.just({"id": WAMID}),
    "button": _JSON, "interactive": _JSON})  # fmt: skip


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=st.one_of(
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.lists(_MESSAGE, max_size=3).map(lambda ms: webhook(*ms)),
    st.lists(st.fixed_dictionaries({"id": st.text(max_size=12) | st.just(WAMID),
                                    "status": st.sampled_from(["failed", "read", "sent"])},
                                   optional={"errors": _JSON, "recipient_id": _JSON}),
             min_size=1, max_size=2).map(lambda ss: webhook(statuses=ss)),
    st.binary(max_size=200),
))  # fmt: skip
def test_any_correctly_signed_body_is_answered_200_never_500(db_url, body):
    async def post() -> int:
        async with open_database(db_url, PoolOptions(min_size=1, max_size=1,
                                                     inline=True)) as db:  # fmt: skip
            if not await db.fetch_value("SELECT count(*) FROM callcontrol_callback_requests"):
                await told(db, await add_domain(db, "a.example.com"))  # replies find a ticket
            app = app_for(db)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api") as meta:  # fmt: skip
                reply = await meta.post(PATH, content=body, headers=signed(body))
                return reply.status_code

    assert trio.run(post) == 200


def test_serve_warns_when_replies_cannot_be_received():
    from callcontrol.logs import get_logger
    from callcontrol.server import warn_about_settings

    half = load_settings({"WHATSAPP_TOKEN": graph_api.TOKEN, "OPENAI_API_KEY": "k",
                          "WHATSAPP_PHONE_NUMBER_ID": graph_api.PHONE_NUMBER_ID})  # fmt: skip
    for configured, warned in ((half, True), (SETTINGS, False)):
        with structlog.testing.capture_logs() as logs:
            warn_about_settings(configured, get_logger("t"))
        found = [x for x in logs if x["event"] == "server.whatsapp_replies_off"]
        assert bool(found) is warned
        assert graph_api.TOKEN not in repr(logs)
