"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint, written by hand here.

It cannot drift from the app unnoticed: ``tests/api/test_openapi.py`` checks that every route of
the Starlette app is in it and nothing else, with the same path parameters, that each documented
query parameter (and body field) is one the endpoint reads and each one it reads is documented,
and the hostile-input property test checks every answer against the schema documented for it.

Behind the service token or a person's session like the rest (docs/api.md says why).
"""

from __future__ import annotations

from typing import Any

from callcontrol import __version__
from callcontrol.callbacks.tickets import TicketStatus

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _maybe(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def _object(required: list[str], properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _query(name: str, description: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}  # fmt: skip


def _path(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}  # fmt: skip


STATUSES = [s.value for s in TicketStatus]
DATE = {"type": "string", "maxLength": 40,
        "description": "ISO 8601 date or date-time; without an offset, in CALLCONTROL_TIMEZONE"}

DOMAIN = _query("domain_uuid", "the FusionPBX domain (v_domains.domain_uuid); every answer "
                "is about this domain only. Required with the service token; a signed-in "
                "person's is their own (another domain is a 404)",
                {"type": "string", "format": "uuid"})  # fmt: skip
FROM = _query("from", "when the caller asked (calls: when they started), inclusive", DATE)
TO = _query("to", "exclusive; a bare date includes that day", DATE)
FILTERS = [
    DOMAIN,
    _query("status", "one or more ticket statuses, comma-separated",
           {"type": "string", "description": ", ".join(STATUSES)}),
    _query("kind", "callback or message", {"type": "string", "enum": ["callback", "message"]}),
    _query("extension", "the agent's extension (the ticket's own, else its destination's)",
           {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z_.+-]{0,31}$"}),
    _query("destination", "a destination's UUID, or its name (case does not matter)",
           {"type": "string", "maxLength": 200}),
    FROM,
    TO,
    _query("scheduled", "future: set for a time still to come; due: no time set, or one "
           "already reached", {"type": "string", "enum": ["future", "due"]}),
]  # fmt: skip
PAGES = [
    _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
    _query("offset", "rows to skip (not with cursor)",
           {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0}),
    _query("cursor", "the previous page's next_cursor (not with offset)", {"type": "string"}),
]  # fmt: skip
TICKET_ID = _path("id", "the ticket's id", {"type": "string", "format": "uuid"})

_TICKET_FIELDS: dict[str, Schema] = {
    "id": {"type": "string", "format": "uuid"},
    "kind": {"type": "string", "enum": ["callback", "message"]},
    "status": {"type": "string", "enum": STATUSES},
    "phone_number": {"type": "string"},
    **{k: _maybe("string") for k in ("caller_name", "reason", "message", "preferred_time",
                                     "extension", "destination_name", "intended_for",
                                     "department")},
    **{k: _maybe("string", format="date-time") for k in ("scheduled_at", "expires_at",
                                                         "last_notified_at", "completed_at")},
    **{k: {"type": "string", "format": "date-time"} for k in ("created_at", "updated_at")},
    **{k: _maybe("string", format="uuid") for k in ("destination_uuid", "call_uuid")},
    "time_understood": _maybe("boolean"),
    **{k: {"type": "integer"} for k in ("attempts", "max_attempts", "notification_count")},
    "notify_via_whatsapp": {"type": "boolean"},
    "whatsapp_sent_at": _maybe("string", format="date-time",
                               description="when the WhatsApp template reached Meta"),
    "whatsapp_response": _maybe("string", description="the customer's last WhatsApp message "
                                "(an answer not understood is kept here, for the agent)"),
    "whatsapp_response_at": _maybe("string", format="date-time"),
    "waited_seconds": _maybe("integer", description="since the caller asked (open), or until "
                             "completed; null for other closed tickets"),
}  # fmt: skip

_TICKET_MORE: dict[str, Schema] = {
    "transcript": {"type": "array", "items": _object(["role", "text"], {
        "t": _maybe("number"), "role": {"type": "string"}, "text": {"type": "string"}})},
    "history": {"type": "array", "items": _object(
        ["from_status", "to_status", "changed_by", "changed_at"], {
            "from_status": _maybe("string"),
            "to_status": {"type": "string"}, "changed_by": {"type": "string"},
            "reason": _maybe("string"), "changed_at": {"type": "string", "format": "date-time"}},
        )},
    "recording": {"type": ["object", "null"], "properties": {
        "path": {"type": "string"},
        # where the page plays it; null when the file is not under CALLCONTROL_RECORDINGS_DIR
        "url": _maybe("string")}},
    "summary": _maybe("string"),
    "call": {"type": ["object", "null"], "properties": {
        "started_at": _maybe("string"), "ended_at": _maybe("string"),
        "duration_seconds": _maybe("integer"), "outcome": _maybe("string"),
        "handoff_status": _maybe("string"), "handoff_destination": _maybe("string"),
        "hangup_cause": _maybe("string")}},
}  # fmt: skip

_RATE = _maybe("number", minimum=0, maximum=1)
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_HANDOFF_OUTCOMES = ["answered", "busy", "no_answer", "offline", "dnd", "rejected",
                     "unavailable", "caller_hung_up", "failed"]  # fmt: skip
_BY_OUTCOME = _object(_HANDOFF_OUTCOMES, {k: {"type": "integer", "minimum": 0}
                                          for k in _HANDOFF_OUTCOMES})  # fmt: skip

SCHEMAS: dict[str, Schema] = {
    "TicketEvent": _object(
        ["id", "change", "status", "previous_status", "kind", "domain_uuid", "extension"], {
            "id": {"type": "string", "format": "uuid", "description": "the ticket"},
            "change": {"type": "string", "enum": ["created", "status", "notified",
                                                  "rescheduled"],
                       "description": "stored; moved; its agent told again; put off"},
            "status": {"type": "string", "enum": STATUSES},
            "previous_status": _maybe("string", description="null when created"),
            "kind": {"type": "string", "enum": ["callback", "message"]},
            "domain_uuid": _maybe("string", format="uuid"),
            "extension": _maybe("string", description="the ticket's agent extension"),
            "notification_count": {"type": "integer", "minimum": 0},
            "scheduled_at": _maybe("string"),
            "caller_number": _maybe("string", description="E.164"),
            "caller_name": _maybe("string"),
            "reason": _maybe("string", description="cut at 200 characters"),
            "at": _maybe("string", description="when the change was committed"),
        }),
    "Refusal": _object(["error", "reason"], {
        "error": {"type": "string", "description": "a code: bad_request, unauthorized, "
                  "not_found, method_not_allowed, illegal_move, expires_first, too_large, "
                  "no_token_configured, database_unavailable; click-to-call also USER_BUSY, "
                  "OFFLINE, DND, UNKNOWN, not_callable, not_dialable, already_calling, "
                  "click_to_call_unavailable; sign-in also csrf, forbidden, cross_site, "
                  "too_many_failures, sign_in_off"},
        "reason": {"type": "string", "description": "what to fix, in a sentence"},
        "shouldRetry": {"type": "boolean", "description": "click-to-call refused for the "
                        "agent's availability: whether trying again later may work"},
        "retryAfterSeconds": {"type": "integer", "description": "USER_BUSY: when to try "
                              "again (CALLBACK_RETRY_DELAY_SECONDS)"},
        "extensionState": {"type": "string", "enum": ["ringing", "in_call"],
                           "description": "USER_BUSY: whether the agent's phone is ringing "
                           "or in a call"}}),
    "CallStarted": _object(["ticketUuid", "agentLegUuid", "status"], {
        "ticketUuid": {"type": "string", "format": "uuid"},
        "agentLegUuid": {"type": "string", "format": "uuid",
                         "description": "the agent leg's origination_uuid: the call's UUID"},
        "status": {"type": "string", "enum": ["in_progress"]}}),
    "ExtensionStatus": _object(["extension", "status", "available", "reason"], {
        "extension": {"type": "string"},
        "status": {"type": "string", "enum": ["AVAILABLE", "IN_CALL", "RINGING", "DND",
                                              "OFFLINE", "UNKNOWN"]},
        "available": {"type": "boolean"}, "reason": {"type": "string"}}),
    "Me": _object(["username", "role", "domain_uuid", "domain_name", "extensions",
                   "csrf_token"], {
        "username": _maybe("string", description="the FusionPBX username (null: the service)"),
        "role": {"type": "string", "enum": ["service", "agent", "supervisor"]},
        "domain_uuid": _maybe("string", format="uuid"),
        "domain_name": _maybe("string"),
        "extensions": {"type": "array", "items": {"type": "string"},
                       "description": "the user's own extensions (v_extension_users)"},
        "csrf_token": _maybe("string", description="send it back as the X-CSRF-Token header "
                             "on every POST made with the session (null: no session)")}),
    "Ticket": _object(list(_TICKET_FIELDS), _TICKET_FIELDS),
    "TicketDetail": _object([*_TICKET_FIELDS, *_TICKET_MORE], {**_TICKET_FIELDS, **_TICKET_MORE}),
    "TicketPage": _object(["items", "total", "limit", "offset", "next_cursor"], {
        "items": {"type": "array", "items": _ref("Ticket")},
        "total": {"type": "integer"}, "limit": {"type": "integer"},
        "offset": {"type": "integer"}, "next_cursor": _maybe("string")}),
    "Stats": _object(["domain_uuid", "period", "calls", "handoffs", "callbacks", "destinations",
                      "handoffs_over_time"], {
        "domain_uuid": {"type": "string", "format": "uuid"},
        "period": _object(["from", "to"], {"from": _maybe("string", format="date-time"),
                                           "to": _maybe("string", format="date-time")}),
        "calls": _object(["total", "by_outcome"], {"total": {"type": "integer"},
                                                   "by_outcome": _COUNTS}),
        "handoffs": _object(["total", "by_outcome", "answer_rate", "not_attempted"], {
            "total": {"type": "integer"}, "by_outcome": _BY_OUTCOME, "answer_rate": _RATE,
            "not_attempted": _COUNTS}),
        "callbacks": _object(["total", "by_status", "open", "completion_rate",
                              "time_to_callback_seconds", "open_waiting_seconds"], {
            "total": {"type": "integer"}, "open": {"type": "integer"},
            "by_status": _object(STATUSES, {s: {"type": "integer"} for s in STATUSES}),
            "completion_rate": _RATE,
            "time_to_callback_seconds": _object(["count", "mean", "median", "p90"], {
                "count": {"type": "integer"}, "mean": _maybe("number"),
                "median": _maybe("number"), "p90": _maybe("number")}),
            "open_waiting_seconds": _object(["mean", "longest"], {
                "mean": _maybe("number"), "longest": _maybe("number")})}),
        "destinations": {"type": "array", "items": _object(
            ["destination", "destination_type", "destination_number", "handoffs", "by_outcome",
             "answer_rate"], {
                "destination": {"type": "string"}, "destination_type": _maybe("string"),
                "destination_number": _maybe("string"), "handoffs": {"type": "integer"},
                "by_outcome": _BY_OUTCOME, "answer_rate": _RATE})},
        "handoffs_over_time": _object(["bucket", "points"], {
            "bucket": {"type": "string", "enum": ["hour", "day"],
                       "description": "hour for a period of two days or less, else day"},
            "points": {"type": "array", "description": "every bucket of the period, oldest "
                       "first, in CALLCONTROL_TIMEZONE", "items": _object(["at", "by_outcome"], {
                           "at": {"type": "string", "format": "date-time"},
                           "by_outcome": _BY_OUTCOME})}}),
    }),
}  # fmt: skip


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refused(*codes: int) -> dict[str, Schema]:
    why = {400: "a parameter is not what it must be (the reason names it)",
           401: "no service token, or the wrong one (nor a session)",
           403: "csrf: a POST with a session lacks its X-CSRF-Token; forbidden: not for "
                "this person (an agent asking for the figures)",
           404: "not in this domain (a person naming another domain; an agent, a ticket or "
                "extension not theirs)",
           409: "the ticket's status does not allow it", 413: "the body is over 16 KiB",
           503: "the database is not answering, or no service token is configured"}  # fmt: skip
    return {str(code): _json(why[code], _ref("Refusal")) for code in codes}


# click-to-call: 202 at once (the call runs in the background), or a typed refusal
_C2C_RESPONSES = {
    "202": _json("the call is started: the agent's phone rings first", _ref("CallStarted")),
    **_refused(400, 401, 403, 404, 413),
    "409": _json("USER_BUSY (shouldRetry, retryAfterSeconds), OFFLINE, DND; illegal_move (its "
                 "status), not_callable (a message, or no agent's extension), not_dialable "
                 "(a value of the ticket cannot be dialled safely: sent to needs_review), "
                 "already_calling",
                 _ref("Refusal")),
    "503": _json("UNKNOWN (FreeSWITCH not answering: never taken as available), "
                 "click_to_call_unavailable, database_unavailable, no_token_configured",
                 _ref("Refusal")),
}

_PROBE = {"security": [], "tags": ["probes"]}
_LOGIN = _object(["username", "password"], {
    "username": {"type": "string", "maxLength": 255,
                 "description": "the FusionPBX username, or user@domain"},
    "password": {"type": "string", "maxLength": 1024},
    "domain_name": {"type": "string", "maxLength": 255,
                    "description": "the user's domain, when the username is not enough"}})
_DATA = (400, 401, 404, 503)
# Meta's calls: checked by the verify token and the signature, not the service token
_WEBHOOK = {"security": [], "tags": ["webhooks"]}


def _body(required: list[str], properties: dict[str, Schema]) -> Schema:
    """A JSON object body; fields it does not name are ignored (and so not accepted here)."""
    schema = _object(required, properties)
    return {"required": bool(required), "content": {"application/json": {"schema": schema}}}


PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {"get": {**_PROBE, "operationId": "healthz", "summary": "liveness",
                         "responses": {"200": _json("the process is up", {"type": "object"})}}},
    "/readyz": {"get": {**_PROBE, "operationId": "readyz",
                        "summary": "readiness: the database and FreeSWITCH answer",
                        "responses": {
                            "200": _json("ready", {"type": "object"}),
                            "503": _json("not ready, with what is not", {"type": "object"})}}},
    "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                         "tags": ["operations"], "responses": {
                             "200": {"description": "Prometheus text format",
                                     "content": {"text/plain": {"schema": {"type": "string"}}}},
                             **_refused(401, 403, 503)}}},
    "/openapi.json": {"get": {"operationId": "openapi", "summary": "this document",
                              "tags": ["operations"], "responses": {
                                  "200": _json("OpenAPI 3.1", {"type": "object"}),
                                  **_refused(401, 503)}}},
    "/login": {
        "post": {"security": [], "tags": ["sign-in"], "operationId": "login",
                 "summary": "sign in with a FusionPBX username and password; sets the "
                            "session cookie",
                 "requestBody": {"required": True, "content": {
                     "application/json": {"schema": _LOGIN},
                     "application/x-www-form-urlencoded": {"schema": {
                         **_LOGIN, "properties": {**_LOGIN["properties"], "next": {
                             "type": "string", "description": "a path of this site"}}}}}},
                 "responses": {
                     "200": _json("signed in (JSON clients): who, and the CSRF token",
                                  _ref("Me")),
                     "303": {"description": "signed in (a form): on to `next` or /console"},
                     "400": _json("a field is missing or not text", _ref("Refusal")),
                     "401": {"description": "wrong username or password (the same answer for "
                                            "an unknown or disabled user); a form gets the "
                                            "form again",
                             "content": {"application/json": {"schema": _ref("Refusal")},
                                         "text/html": {"schema": {"type": "string"}}}},
                     "403": _json("sent from another site (Origin)", _ref("Refusal")),
                     "413": _json("the body is over 16 KiB", _ref("Refusal")),
                     "429": _json("too many failures from this address or for this username; "
                                  "Retry-After says when to try again", _ref("Refusal")),
                     "503": _json("sign_in_off (no session secret), database_unavailable",
                                  _ref("Refusal"))}},
    },
    "/logout": {"post": {
        "tags": ["sign-in"], "operationId": "logout",
        "summary": "sign out: the cookie is cleared and the session refused from now on",
        "responses": {"200": _json("signed out", _object(["status"], {
                          "status": {"type": "string", "enum": ["signed_out"]}})),
                      "303": {"description": "signed out (a form), or no session: to /login"},
                      "403": _json("csrf: the session's X-CSRF-Token (or csrf_token field) "
                                   "is missing or wrong", _ref("Refusal")),
                      **_refused(401, 503)}}},
    "/api/me": {"get": {
        "tags": ["sign-in"], "operationId": "me", "summary": "who is asking",
        "responses": {"200": _json("the principal", _ref("Me")), **_refused(401, 503)}}},
    "/api/extension/status/{extension}": {"get": {
        "operationId": "extensionStatus", "summary": "may this agent be called now?",
        "tags": ["callbacks"],
        "parameters": [_path("extension", "the extension number", {
            "type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z_.+-]{0,31}$"}), DOMAIN],
        "responses": {"200": _json("its status", _ref("ExtensionStatus")),
                      **_refused(*_DATA)}}},
    "/api/callbacks": {"get": {
        "operationId": "listCallbacks", "summary": "the domain's tickets, newest first",
        "tags": ["callbacks"], "parameters": [*FILTERS, *PAGES],
        "responses": {"200": _json("a page", _ref("TicketPage")), **_refused(*_DATA)}}},
    "/api/callbacks/report.csv": {"get": {
        "operationId": "callbacksReport", "summary": "the same filters, as a spreadsheet",
        "tags": ["callbacks"], "parameters": FILTERS,
        "responses": {"200": {"description": "RFC 4180, UTF-8 with BOM, pt-BR headers",
                              "content": {"text/csv": {"schema": {"type": "string"}}}},
                      **_refused(*_DATA)}}},
    "/api/callbacks/{id}": {"get": {
        "operationId": "getCallback", "summary": "one ticket with transcript and history",
        "tags": ["callbacks"], "parameters": [TICKET_ID, DOMAIN],
        "responses": {"200": _json("the ticket", _ref("TicketDetail")),
                      **_refused(*_DATA)}}},
    "/api/callbacks/{id}/recording": {"get": {
        "operationId": "getCallbackRecording",
        "summary": "the recording of the ticket's call (Range requests work)",
        "tags": ["callbacks"], "parameters": [TICKET_ID, DOMAIN],
        "responses": {"200": {"description": "the audio file",
                              "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                          for t in ("audio/wav", "audio/mpeg", "audio/ogg",
                                                    "audio/mp4")}},
                      "206": {"description": "the part asked with Range"},
                      **_refused(*_DATA)}}},
    "/api/callbacks/{id}/snooze": {"post": {
        "operationId": "snoozeCallback", "summary": "put it off", "tags": ["callbacks"],
        "parameters": [TICKET_ID, DOMAIN],
        "requestBody": _body(["minutes"], {"minutes": {"type": "integer", "minimum": 1,
                                                       "maximum": 1440}}),
        "responses": {"200": _json("the ticket now", _ref("Ticket")),
                      **_refused(*_DATA, 403, 409, 413)}}},
    "/api/callbacks/{id}/cancel": {"post": {
        "operationId": "cancelCallback", "summary": "cancel an open ticket",
        "tags": ["callbacks"], "parameters": [TICKET_ID, DOMAIN],
        "requestBody": _body([], {"reason": {"type": "string", "maxLength": 500}}),
        "responses": {"200": _json("the ticket now", _ref("Ticket")),
                      **_refused(*_DATA, 403, 409, 413)}}},
    "/api/callbacks/{id}/initiate": {"post": {
        "operationId": "initiateCallback", "summary": "click-to-call: call it back now",
        "tags": ["callbacks"], "parameters": [TICKET_ID, DOMAIN],
        "responses": _C2C_RESPONSES}},
    "/api/callback/originate": {"post": {
        "operationId": "originateCallback",
        "summary": "click-to-call (the original plan's name): as /api/callbacks/{id}/initiate",
        "tags": ["callbacks"], "parameters": [DOMAIN],
        "requestBody": _body(["ticketUuid"], {"ticketUuid": {"type": "string",
                                                             "format": "uuid"}}),
        "responses": _C2C_RESPONSES}},
    "/api/stats": {"get": {
        "operationId": "stats", "summary": "the domain's figures over a period",
        "tags": ["reports"], "parameters": [DOMAIN, FROM, TO],
        "responses": {"200": _json("the figures", _ref("Stats")), **_refused(*_DATA, 403)}}},
    "/api/events": {"get": {
        "operationId": "events",
        "summary": "the tickets' changes, live, as server-sent events (text/event-stream)",
        "description": "Streams until the client goes away. A person sees only their own "
                       "domain (an agent: only their extensions' tickets); the service names "
                       "it. Each event has an `id:`; `event: ticket` carries a TicketEvent, "
                       "`event: resync` (changes may have been missed: read the list again) "
                       "a reason. A comment every 15 s keeps the connection alive; `retry:` "
                       "says when to reconnect; a reconnecting client's Last-Event-ID gets "
                       "what it missed, or a resync.",
        "tags": ["events"],
        "parameters": [DOMAIN, _query(
            "extension", "only this agent extension's tickets",
            {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z_.+-]{0,31}$"})],
        "responses": {"200": {"description": "the stream",
                              "content": {"text/event-stream": {"schema": {
                                  "type": "string",
                                  "description": "data: of `ticket` events is a TicketEvent "
                                                 "(#/components/schemas/TicketEvent)"}}}},
                      **_refused(400, 401, 404),
                      "503": _json("no service token configured, or this process does not "
                                   "stream events", _ref("Refusal"))}}},
    "/webhooks/whatsapp": {
        "get": {**_WEBHOOK, "operationId": "whatsappSubscribe",
                "summary": "Meta's subscription handshake: echoes hub.challenge",
                "parameters": [
                    _query("hub.mode", "subscribe", {"type": "string"}, required=True),
                    _query("hub.verify_token", "WHATSAPP_VERIFY_TOKEN, as typed in the app "
                           "dashboard", {"type": "string"}, required=True),
                    _query("hub.challenge", "what to echo", {"type": "string",
                                                            "maxLength": 200}, required=True)],
                "responses": {
                    "200": {"description": "hub.challenge, as sent",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": _json("no hub.challenge, or not a short text", _ref("Refusal")),
                    "403": _json("not subscribe, or the wrong verify token", _ref("Refusal")),
                    "404": _json("WHATSAPP_VERIFY_TOKEN is not set: the webhook is off",
                                 _ref("Refusal"))}},
        "post": {**_WEBHOOK, "operationId": "whatsappReceive",
                 "summary": "Meta's webhook: customers' messages; signed with "
                            "X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with "
                            "WHATSAPP_APP_SECRET>",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"type": "object", "description": "Meta's webhook body "
                                "(object, entry[].changes[].value.messages[])"}}}},
                 "responses": {
                     "200": _json("stored (also when it held no message of a customer)",
                                  _object(["received"], {"received": {"type": "integer"}})),
                     "401": _json("unsigned, or the signature is wrong", _ref("Refusal")),
                     "404": _json("WHATSAPP_APP_SECRET is not set: the webhook is off",
                                  _ref("Refusal")),
                     "413": _json("the body is over 1 MiB", _ref("Refusal")),
                     "503": _json("the database is not answering (Meta delivers it again)",
                                  _ref("Refusal"))}}},
}  # fmt: skip


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "callcontrol", "version": __version__,
                 "description": "callback tickets, extension status and figures of an AI "
                                "voice secretary on FusionPBX; see docs/api.md"},
        "security": [{"serviceToken": []}, {"sessionCookie": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"serviceToken": {
                "type": "http", "scheme": "bearer",
                "description": "VOICE_AI_SERVICE_TOKEN, as Authorization: Bearer <token>"},
                "sessionCookie": {
                    "type": "apiKey", "in": "cookie", "name": "callcontrol_session",
                    "description": "a person's session, set by POST /login (FusionPBX username "
                                   "and password); every POST with it also needs the session's "
                                   "X-CSRF-Token header (GET /api/me gives it)"}},
            "schemas": SCHEMAS,
        },
    }  # fmt: skip
