"""Capturing a callback during the call, end to end: the model hears the number read back and
the time understood; the row keeps the caller's words and the concrete scheduled_at; a withheld
number is a tool error and nothing is stored; a correction replaces the same request."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import trio

from callcontrol.testing.realtime import AwaitToolOutput, CallTool, GoSilent
from tests.secretary.test_secretary_e2e import GREETING

SP = ZoneInfo("America/Sao_Paulo")


def callback(phone: str, when: str, call_id: str | None = None) -> CallTool:
    args = {"name": "Maria", "phone_number": phone, "preferred_time": when, "reason": "exame"}
    return CallTool("schedule_callback", args, call_id=call_id)


def outputs(server) -> list[dict]:
    return [json.loads(v) for v in server.last.tool_outputs.values()]


async def test_the_model_hears_the_read_back_and_the_row_has_scheduled_at(office):
    async with office.model(
        [*GREETING, callback("011 98888-7777", "o quanto antes"), AwaitToolOutput(), GoSilent()],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url))
        before = datetime.now(SP)
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        [output] = outputs(server)
        assert output["ok"] is True
        assert output["readback"] == "onze, nove oito oito oito oito, sete sete sete sete"
        assert output["number"] == "+5511988887777"
        assert output["time_understood"] is True
        assert output["scheduled_for"]
        assert output["say"].startswith(
            "Retorno anotado para o número onze, nove oito oito oito oito, sete sete sete sete, "
        )
        rows = await office.db.fetch_all(
            "SELECT phone_number, preferred_time, scheduled_at, time_understood, expires_at"
            " FROM callcontrol_callback_requests"
        )
        assert len(rows) == 1
        # the ticket expires CALLBACK_EXPIRATION_HOURS after the call; it is due before that
        assert before + timedelta(hours=24) <= rows[0]["expires_at"]
        assert rows[0]["scheduled_at"] <= rows[0]["expires_at"]
        row = rows[0]
        assert row["phone_number"] == "+5511988887777"
        assert row["preferred_time"] == "o quanto antes"  # the caller's words, kept
        assert row["time_understood"] is True
        scheduled = row["scheduled_at"]
        assert before - timedelta(seconds=5) <= scheduled <= before + timedelta(hours=24, seconds=5)
        assert datetime.fromisoformat(output["scheduled_at"]) == scheduled
        await call.hangup()


async def test_the_ticket_keeps_the_configured_interval_between_notifications(office):
    async with office.model(
        [*GREETING, callback("011 98888-7777", "amanhã"), AwaitToolOutput(), GoSilent()],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url, callback_min_interval_minutes=25,
                                                   callback_retry_attempts=4))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        rows = await office.db.fetch_all(
            "SELECT min_interval_minutes, max_attempts FROM callcontrol_callback_requests"
        )
        # click-to-call's attempts are fixed with the ticket: the first and 4 retries
        assert rows == [{"min_interval_minutes": 25, "max_attempts": 5}]
        await call.hangup()


async def test_a_withheld_number_is_a_tool_error_and_no_row(office):
    async with office.model(
        [*GREETING, callback("anonymous", "amanhã de manhã"), AwaitToolOutput(), GoSilent()],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        [output] = outputs(server)
        assert output["ok"] is False and output["error"] == "invalid_arguments"
        assert any("withheld" in problem for problem in output["problems"])
        assert "phone_number" in output["instruction"]
        assert await office.db.fetch_all("SELECT 1 FROM callcontrol_callback_requests") == []
        await call.hangup()


async def test_a_correction_after_the_read_back_replaces_the_same_request(office):
    async with office.model(
        [
            *GREETING,
            callback("11 98888-7777", "amanhã de manhã", call_id="first"),
            AwaitToolOutput(),
            callback(
                "vinte e um, três quatro cinco seis, sete oito nove zero",
                "banana",
                call_id="second",
            ),
            AwaitToolOutput(),
            GoSilent(),
        ],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await server.wait_for(
                lambda: bool(server.sessions) and len(server.last.tool_outputs) == 2
            )
        first, second = (json.loads(server.last.tool_outputs[k]) for k in ("first", "second"))
        assert first["request_id"] == second["request_id"]
        assert second["readback"] == "vinte e um, três quatro cinco seis, sete oito nove zero"
        assert second["time_understood"] is False
        assert 'Não entendi um horário em "banana"' in second["say"]
        rows = await office.db.fetch_all(
            "SELECT phone_number, preferred_time, time_understood"
            " FROM callcontrol_callback_requests"
        )
        assert rows == [
            {"phone_number": "+552134567890", "preferred_time": "banana", "time_understood": False}
        ]
        await call.hangup()


WHATSAPP = {"whatsapp_token": "EAAG-test", "whatsapp_phone_number_id": "1055"}


def _callback_tool(server) -> dict:
    [tool] = [t for t in server.last.session["tools"] if t["name"] == "schedule_callback"]
    return tool


async def test_a_caller_who_asks_for_whatsapp_gets_a_ticket_that_asks_for_it(office):
    wish = CallTool("schedule_callback", {
        "name": "Maria", "phone_number": "011 98888-7777", "preferred_time": "amanhã",
        "reason": "exame", "notify_via_whatsapp": True})  # fmt: skip
    async with office.model([*GREETING, wish, AwaitToolOutput(), GoSilent()],
                            strict=False) as (server, url):  # fmt: skip
        call = office.call(office.services(url, **WHATSAPP))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        tool = _callback_tool(server)
        assert tool["parameters"]["properties"]["notify_via_whatsapp"]["type"] == "boolean"
        # optional: a model that never asks still schedules the callback
        assert "notify_via_whatsapp" not in tool["parameters"]["required"]
        [output] = outputs(server)
        assert output["notify_via_whatsapp"] is True
        assert "WhatsApp" in output["say"]
        assert await office.db.fetch_all(
            "SELECT notify_via_whatsapp FROM callcontrol_callback_requests"
        ) == [{"notify_via_whatsapp": True}]
        await call.hangup()


async def test_whatsapp_is_not_kept_for_a_landline_and_the_caller_is_told(office):
    wish = CallTool("schedule_callback", {
        "name": "Maria", "phone_number": "11 3456-7890", "preferred_time": "amanhã",
        "reason": "exame", "notify_via_whatsapp": "true"})  # fmt: skip
    async with office.model([*GREETING, wish, AwaitToolOutput(), GoSilent()],
                            strict=False) as (server, url):  # fmt: skip
        call = office.call(office.services(url, **WHATSAPP))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        [output] = outputs(server)
        assert output["notify_via_whatsapp"] is False
        assert "não é celular" in output["say"]
        assert await office.db.fetch_all(
            "SELECT notify_via_whatsapp FROM callcontrol_callback_requests"
        ) == [{"notify_via_whatsapp": False}]
        await call.hangup()


async def test_without_whatsapp_the_model_is_never_offered_it(office):
    async with office.model([*GREETING, GoSilent()], strict=False) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.session_updates))
        assert "notify_via_whatsapp" not in _callback_tool(server)["parameters"]["properties"]
        await call.hangup()
