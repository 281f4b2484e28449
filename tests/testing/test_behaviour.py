"""Behaviour of the simulated FreeSWITCH that the recordings and callflow.md establish.

All tests run in memory on MockClock(autojump_threshold=0); no test sleeps to wait for
something: it waits for the frame, event or state that proves it.
"""

from __future__ import annotations

import trio
import trio.testing

from callcontrol.esl import Frame, commands
from callcontrol.testing.freeswitch import (
    Answer,
    Busy,
    FreeSwitchSim,
    Manual,
    NoAnswer,
    Reject,
    SimCall,
    SimLeg,
    Unicast,
    Unregistered,
    open_freeswitch_sim,
)
from tests.testing.esl_client import Client

A_EVENTS = ["CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_PARK",
            "CHANNEL_UNPARK", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_BRIDGE",
            "CHANNEL_UNBRIDGE", "CHANNEL_PROGRESS", "CHANNEL_CREATE", "BACKGROUND_JOB"]


async def dial(sim: FreeSwitchSim, *, linger: bool = True, subscribe: bool = True,
               **kwargs: object) -> tuple[SimCall, Client]:
    """A call connected the way the product connects: explicit events, A and job filters."""
    ours, theirs = trio.testing.memory_stream_pair()
    call = sim.attach_outbound(ours, **kwargs)  # type: ignore[arg-type]
    client = Client(theirs)
    await client.command(commands.connect())
    if linger:
        await client.command(commands.linger())
    if subscribe:
        await client.command(commands.event("plain", A_EVENTS))
        await client.command(commands.filter_add("Unique-ID", call.uuid))
        await client.command(commands.filter_add("Job-Owner-UUID", call.uuid))
        await next_event(client, "CHANNEL_PARK")  # the socket app parks the call
    return call, client


async def next_event(client: Client, name: str, uuid: str | None = None) -> Frame:
    while True:
        frame = await client.next_frame()
        if frame.is_event and frame.event.name == name and (
                uuid is None or frame.event.unique_id == uuid):
            return frame


async def test_connect_reply_carries_the_fusionpbx_contract(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        ours, theirs = trio.testing.memory_stream_pair()
        sim.attach_outbound(ours, caller_number="5511999990000", caller_name="Maria",
                            destination_number="5000",
                            variables={"voice_secretary_uuid": "sec-1"})
        client = Client(theirs)
        reply = await client.command(commands.connect())
        event = reply.event
        assert reply.content_type == "command/reply"
        assert event.name == "CHANNEL_DATA"
        assert event["Caller-Caller-ID-Number"] == "5511999990000"
        assert event["Caller-Caller-ID-Name"] == "Maria"
        assert event["variable_domain_name"] == sim.domain
        assert event["variable_domain_uuid"] == sim.domain_uuid
        assert event["variable_voice_secretary_uuid"] == "sec-1"
        assert event["Channel-Read-Codec-Name"] == "PCMU"
        assert event["Channel-Read-Codec-Rate"] == "8000"
        assert reply.headers["Reply-Text"] == "+OK\n"
        assert reply.headers["Socket-Mode"] == "async"
        assert reply.headers["Control"] == "full"


async def test_socket_command_replies(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        _, client = await dial(sim, linger=False, subscribe=False)
        texts = [(await client.command(data)).reply_text for data in (
            commands.myevents(), commands.myevents(), commands.linger(5), commands.linger(),
            commands.nolinger(), commands.noevents(), commands.filter_delete("Unique-ID", "x"),
            b"bogus\n\n", b"api bogus_cmd arg\n\n", commands.getvar("domain_name"))]
        assert texts == [
            "+OK Events Enabled", "-ERR aready enabled.", "+OK will linger 5 seconds",
            "+OK will linger", "+OK will not linger", "+OK no longer listening for events",
            "+OK filter deleted. [Unique-ID]=[x]", "-ERR command not found",
            "-ERR bogus_cmd Command not found!\n", sim.domain,
        ]


async def test_replies_come_before_the_events_they_caused(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer()
        _, client = await dial(sim)
        await client.command(commands.filter_add("Unique-ID", "bbbb"))
        await client.command(commands.api("originate",
                                          "{origination_uuid=bbbb}user/1001@pbx.example.com",
                                          "&park()"))
        await next_event(client, "CHANNEL_PARK", "bbbb")
        await client.send(commands.api("uuid_kill", "bbbb"))
        frame = await client.next_frame()
        assert frame.content_type == "api/response" and frame.body == b"+OK\n"
        assert (await client.next_frame()).event.name == "CHANNEL_HANGUP"


async def test_api_blocks_the_socket_until_it_returns(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1003@pbx.example.com"] = NoAnswer()
        call, client = await dial(sim)
        start = trio.current_time()
        await client.send(commands.api(
            "originate", "{origination_uuid=bbbb,originate_timeout=8}user/1003@pbx.example.com",
            "&park()"))
        await trio.sleep(1.5)
        await call.hangup()
        frame = await client.next_frame()
        # Nothing — not even the caller's hangup — arrived while the api ran.
        assert frame.content_type == "api/response"
        assert frame.body == b"-ERR NO_ANSWER\n"
        assert trio.current_time() - start >= 8 - 1e-9
        assert (await client.next_frame()).event.name == "CHANNEL_HANGUP"


async def test_bgapi_honours_the_job_uuid_and_reports_to_the_owner(autojump_clock: object
                                                                   ) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer(after=2.0)
        call, client = await dial(sim)
        reply = await client.command(commands.bgapi(
            "originate", "{origination_uuid=bbbb}user/1001@pbx.example.com", "&park()",
            job_uuid="job-1"))
        assert reply.reply_text == "+OK Job-UUID: job-1"
        assert reply.headers["Job-UUID"] == "job-1"
        start = trio.current_time()
        job = (await next_event(client, "BACKGROUND_JOB")).event
        assert job["Job-UUID"] == "job-1"
        assert job["Job-Owner-UUID"] == call.uuid
        assert job["Job-Command"] == "originate"
        assert job.body == b"+OK bbbb\n"
        assert 2.0 <= trio.current_time() - start < 2.1
        assert sim.leg("bbbb").answer_state == "answered"


async def test_failed_originate_creates_no_channel_and_no_event(autojump_clock: object
                                                                ) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1004@pbx.example.com"] = Unregistered()
        sim.endpoints["user/1002@*"] = Busy()
        _, client = await dial(sim)
        await client.command(commands.event("plain", ["ALL"]))
        outputs = [(await client.command(commands.api("originate", dial, "&park()"))).body
                   for dial in ("error/user_busy", "user/1004@pbx.example.com",
                                "user/1002@pbx.example.com", "error/subscriber_absent")]
        assert outputs == [b"-ERR USER_BUSY\n", b"-ERR USER_NOT_REGISTERED\n",
                           b"-ERR USER_BUSY\n", b"-ERR SUBSCRIBER_ABSENT\n"]
        await client.command(commands.api("status"))
        assert [f for _, f in client.frames if f.is_event and f.event.name.startswith(
            "CHANNEL_") and f.event.unique_id != sim.calls[0].uuid] == []
        assert sim.legs() == []


async def test_no_answer_at_originate_timeout_exactly(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1003@pbx.example.com"] = NoAnswer()
        _, client = await dial(sim)
        await client.command(commands.filter_add("Unique-ID", "bbbb"))
        await client.command(commands.bgapi(
            "originate", "{origination_uuid=bbbb,originate_timeout=30}user/1003@pbx.example.com",
            "&park()", job_uuid="j"))
        start = trio.current_time()
        progress = await next_event(client, "CHANNEL_PROGRESS", "bbbb")
        assert progress.event["Answer-State"] == "ringing"
        hangup = (await next_event(client, "CHANNEL_HANGUP", "bbbb")).event
        assert hangup["Hangup-Cause"] == "NO_ANSWER"
        assert trio.current_time() - start == 30
        job = (await next_event(client, "BACKGROUND_JOB")).event
        assert job.body == b"-ERR NO_ANSWER\n"
        complete = (await next_event(client, "CHANNEL_HANGUP_COMPLETE", "bbbb")).event
        assert complete.headers.get_all("Hangup-Cause") == ["NO_ANSWER", "NO_ANSWER"]


async def test_reject_after_ringing(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1005@pbx.example.com"] = Reject(after=4)
        _, client = await dial(sim)
        reply = await client.command(commands.api("originate", "user/1005@pbx.example.com",
                                                  "&park()"))
        assert reply.body == b"-ERR CALL_REJECTED\n"


async def test_caller_hangup_does_not_cancel_a_ringing_bgapi_leg(autojump_clock: object
                                                                 ) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1003@pbx.example.com"] = NoAnswer()
        call, client = await dial(sim)
        await client.command(commands.bgapi(
            "originate", "{origination_uuid=bbbb,originate_timeout=30}user/1003@pbx.example.com",
            "&park()", job_uuid="j"))
        b = await sim.wait_for_leg("sofia/internal/1003@")
        assert b.uuid == "bbbb"
        await call.hangup()
        await next_event(client, "CHANNEL_HANGUP_COMPLETE", call.uuid)
        linger = await client.next_frame()
        assert linger.headers["Content-Disposition"] == "linger"
        assert b.alive and b.ringing
        # The socket still serves api while it lingers: the server kills B itself.
        reply = await client.command(commands.api("uuid_kill", "bbbb", "ORIGINATOR_CANCEL"))
        assert reply.body == b"+OK\n"
        job = (await next_event(client, "BACKGROUND_JOB")).event
        assert job.body == b"-ERR ORIGINATOR_CANCEL\n"
        assert b.hangup_cause == "ORIGINATOR_CANCEL"
        assert (await client.command(commands.exit_())).reply_text == "+OK bye"
        assert [f.headers["Content-Disposition"] for f in await client.until_closed()] == [
            "disconnect"]


async def test_without_linger_hangup_events_are_lost(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim, linger=False)
        await call.hangup("NORMAL_CLEARING")
        frames = await client.until_closed()
        assert [f.content_type for f in frames] == ["text/disconnect-notice"]
        assert frames[0].headers["Controlled-Session-UUID"] == call.uuid
        assert call.closed


async def test_linger_seconds_closes_after_the_delay(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim, linger=False)
        await client.command(commands.linger(2))
        await call.hangup("USER_BUSY")
        complete = (await next_event(client, "CHANNEL_HANGUP_COMPLETE")).event
        assert complete.headers.get_all("Hangup-Cause") == ["USER_BUSY", "USER_BUSY"]
        start = trio.current_time()
        frames = await client.until_closed()
        assert [f.headers.get("Content-Disposition") for f in frames] == ["linger", "disconnect"]
        assert trio.current_time() - start == 2


async def test_playback_events_and_responses(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.media.durations["/sounds/hello.wav"] = 3.0
        call, client = await dial(sim)
        await client.command(commands.execute("answer", event_uuid="e-answer", event_lock=True))
        await client.command(commands.execute("playback", "/sounds/hello.wav",
                                              event_uuid="e-play", event_lock=True))
        execute = (await next_event(client, "CHANNEL_EXECUTE")).event
        assert execute["Application-UUID"] == "e-answer"
        played = await next_event(client, "CHANNEL_EXECUTE")
        assert played.event["Application-UUID"] == "e-play"
        start = trio.current_time()
        done = (await next_event(client, "CHANNEL_EXECUTE_COMPLETE")).event
        assert (done["Application-UUID"], done["Application-Response"]) == ("e-play",
                                                                              "FILE PLAYED")
        assert trio.current_time() - start == 3.0
        await client.command(commands.execute("playback", "local_stream://moh",
                                              event_uuid="e-moh"))
        await next_event(client, "CHANNEL_EXECUTE")
        await trio.sleep(100)
        assert call.playing == "local_stream://moh"
        await call.hangup()
        cut = (await next_event(client, "CHANNEL_EXECUTE_COMPLETE")).event
        assert (cut["Application-UUID"], cut["Application-Response"]) == ("e-moh",
                                                                          "PLAYBACK ERROR")


async def test_sendmsg_park_is_refused_log_only(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim)
        await client.command(commands.execute("park", event_uuid="p"))
        execute = (await next_event(client, "CHANNEL_EXECUTE")).event
        done = (await next_event(client, "CHANNEL_EXECUTE_COMPLETE")).event
        assert (execute["Application"], done["Application-Response"]) == ("park", "_none_")
        assert call.parked and call.channel.host_app is not None
        assert call.channel.host_app.name == "socket"


async def test_uuid_transfer_park_inline_reparks_and_rearms_unicast(autojump_clock: object
                                                                    ) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim)
        await client.command(commands.execute("answer", event_lock=True))
        await next_event(client, "CHANNEL_EXECUTE_COMPLETE")
        await client.command(commands.unicast("127.0.0.1", 42110, "127.0.0.1", 42112))
        assert call.unicast is Unicast.ARMED
        await client.command(commands.execute("playback", "local_stream://moh", event_uuid="m"))
        await next_event(client, "CHANNEL_EXECUTE")
        # unicast during the music: accepted, but dead.
        await client.command(commands.unicast("127.0.0.1", 42120, "127.0.0.1", 42122))
        assert call.unicast is Unicast.DEAD
        reply = await client.command(commands.api("uuid_transfer", call.uuid, "park", "inline"))
        assert reply.body == b"+OK\n"
        # sent before CHANNEL_PARK: lost
        await client.command(commands.unicast("127.0.0.1", 42130, "127.0.0.1", 42132))
        assert call.unicast is Unicast.LOST
        names = []
        while not names or names[-1] != "CHANNEL_PARK":
            frame = await client.next_frame()
            if frame.is_event:
                event = frame.event
                names.append(event.name)
                if event.name == "CHANNEL_EXECUTE_COMPLETE":
                    assert (event["Application"], event["Application-Response"]) in {
                        ("playback", "PLAYBACK ERROR"), ("socket", "PLAYBACK ERROR")}
        assert names == ["CHANNEL_EXECUTE_COMPLETE", "CHANNEL_UNPARK",
                         "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE", "CHANNEL_PARK"]
        reply = await client.command(commands.api("uuid_getvar", call.uuid,
                                                  "current_application"))
        assert reply.body == b"park"
        await client.command(commands.unicast("127.0.0.1", 42140, "127.0.0.1", 42142))
        assert call.unicast is Unicast.ARMED
        # Any playback that ends in the same park tears it down.
        await client.command(commands.execute("playback", "tone_stream://%(200,0,440)"))
        await next_event(client, "CHANNEL_EXECUTE_COMPLETE")
        assert call.unicast is Unicast.DEAD


async def test_bridge_then_b_hangup_parks_a_with_park_after_bridge(autojump_clock: object
                                                                   ) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Manual()
        call, client = await dial(sim)
        await client.command(commands.execute("answer"))
        await client.command(commands.filter_add("Unique-ID", "bbbb"))
        await client.command(commands.bgapi(
            "originate", "{origination_uuid=bbbb}user/1001@pbx.example.com", "&park()"))
        b = await sim.wait_for_leg("sofia/internal/1001@")
        await trio.sleep(10)
        assert b.ringing
        await b.answer()
        await next_event(client, "CHANNEL_ANSWER", "bbbb")
        await client.command(commands.api("uuid_setvar", call.uuid, "park_after_bridge",
                                          "true"))
        await client.command(commands.unicast("127.0.0.1", 42110, "127.0.0.1", 42112))
        reply = await client.command(commands.api("uuid_bridge", call.uuid, "bbbb"))
        assert reply.body == b"+OK bbbb\n"
        bridge = (await next_event(client, "CHANNEL_BRIDGE")).event
        assert bridge["Other-Leg-Unique-ID"] == "bbbb"
        assert call.bridged_to == "bbbb" and call.unicast is Unicast.DEAD
        await b.hangup()
        unbridge = (await next_event(client, "CHANNEL_UNBRIDGE")).event
        assert unbridge.unique_id == call.uuid
        park = (await next_event(client, "CHANNEL_PARK", call.uuid)).event
        assert park["Channel-State"] == "CS_PARK"
        assert call.alive and call.bridged_to is None and call.parked
        await client.command(commands.unicast("127.0.0.1", 42120, "127.0.0.1", 42122))
        assert call.unicast is Unicast.ARMED


async def test_bridge_without_park_after_bridge_hangs_a_up(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer()
        call, client = await dial(sim)
        await client.command(commands.execute("answer"))
        await client.command(commands.api("originate",
                                          "{origination_uuid=bbbb}user/1001@pbx.example.com",
                                          "&park()"))
        await client.command(commands.api("uuid_bridge", call.uuid, "bbbb"))
        await next_event(client, "CHANNEL_BRIDGE")
        await client.command(commands.api("uuid_kill", "bbbb"))
        hangup = (await next_event(client, "CHANNEL_HANGUP", call.uuid)).event
        assert hangup["Hangup-Cause"] == "NORMAL_CLEARING"


async def test_commands_are_recorded_and_awaitable(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim)

        async def later() -> None:
            await trio.sleep(5)
            await client.send(commands.bgapi("status", job_uuid="s"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            command = await call.wait_for_command(lambda c: c.verb == "bgapi")
        assert command.header("job-uuid") == "s"
        assert command.at >= 5
        assert [c.verb for c in call.commands] == ["connect", "linger", "event", "filter",
                                                   "filter", "bgapi"]
        assert call.frames()[0].event.name == "CHANNEL_DATA"


async def test_after_exit_the_dialplan_goes_on_even_without_resume(autojump_clock: object
                                                                   ) -> None:
    # The real switch, 0.05 s after the answer (issue 12): the socket app's park ends with the
    # socket, and the extension's next action runs.
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim, linger=False)
        assert (await client.command(commands.exit_())).reply_text == "+OK bye"
        assert [f.content_type for f in await client.until_closed()] == [
            "text/disconnect-notice"]
        await call.wait_for(lambda: call.reached is not None)
        assert call.reached == "9000 XML default" and call.alive
        assert call.dialplan_after_socket == ["transfer 9000 XML default"]


async def test_with_nothing_after_socket_the_call_ends(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim, linger=False, after_socket=())
        await client.command(commands.exit_())
        await call.wait_gone()
        assert call.hangup_cause == "NORMAL_CLEARING"


async def test_an_endless_playback_blocks_the_dialplan_after_the_socket(autojump_clock: object
                                                                        ) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim, linger=False)
        await client.command(commands.execute("playback", "local_stream://moh"))
        await next_event(client, "CHANNEL_EXECUTE")
        await client.command(commands.resume())
        await client.command(commands.exit_())
        await trio.sleep(600)
        assert call.playing == "local_stream://moh" and call.reached is None
        # ...until something stops it: then the fallback runs
        await sim.api(f"uuid_break {call.uuid} all")
        await call.wait_for(lambda: call.reached is not None)
        assert call.reached == "9000 XML default"


async def test_a_bridge_survives_the_socket_without_resume(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer()
        call, client = await dial(sim)
        agent = await _bridged_agent(sim, client, call)
        await client.command(commands.exit_())
        await trio.sleep(60)
        assert call.bridged_to == agent.uuid and agent.alive and call.reached is None
        # the agent hangs up: hangup_after_bridge ends the caller's leg too
        await sim.api(f"uuid_setvar {call.uuid} park_after_bridge false")
        await sim.api(f"uuid_setvar {call.uuid} hangup_after_bridge true")
        await agent.hangup()
        await call.wait_gone()
        assert call.reached is None


async def test_resume_takes_a_bridged_call_out_of_its_bridge(autojump_clock: object) -> None:
    # The real switch: a live agent conversation was unbridged by `resume` + `exit` and the
    # caller sent through the fallback transfer (issue 12 item 4).
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer()
        call, client = await dial(sim)
        agent = await _bridged_agent(sim, client, call)
        await client.command(commands.resume())
        await client.command(commands.exit_())
        await agent.wait_gone()
        await call.wait_for(lambda: call.reached is not None)
        assert call.reached == "9000 XML default" and call.bridged_to is None


async def test_after_a_reparking_transfer_the_fallback_is_gone(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        call, client = await dial(sim)
        await client.command(commands.api("uuid_transfer", call.uuid, "park", "inline"))
        await next_event(client, "CHANNEL_PARK")
        await client.command(commands.resume())
        await client.command(commands.exit_())
        await call.wait_gone()
        assert call.reached is None and call.dialplan_after_socket == []


async def _bridged_agent(sim: FreeSwitchSim, client: Client, call: SimCall) -> SimLeg:
    await client.command(commands.filter_add("Unique-ID", "bbbb"))
    await client.command(commands.api("originate",
                                      "{origination_uuid=bbbb}user/1001@pbx.example.com",
                                      "&park()"))
    await next_event(client, "CHANNEL_PARK", "bbbb")
    await client.command(commands.api("uuid_setvar", call.uuid, "park_after_bridge", "true"))
    await client.command(commands.api("uuid_bridge", call.uuid, "bbbb"))
    await next_event(client, "CHANNEL_BRIDGE")
    return sim.leg("bbbb")
