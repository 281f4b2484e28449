"""``serve``: calls over real TCP from the simulated FreeSWITCH, isolation, and shutdown."""

from __future__ import annotations

import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, answer_and_wait, serve
from callcontrol.testing.freeswitch import open_freeswitch_sim


async def _start(nursery, app):
    listeners = await nursery.start(serve, app, HostPort("127.0.0.1", 0))
    return listeners[0].socket.getsockname()[1]


async def test_a_call_over_tcp_is_answered_and_ends_with_exit(nursery):
    app = App(settings=load_settings({}), flow=answer_and_wait)
    port = await _start(nursery, app)
    async with open_freeswitch_sim() as sim:
        call = await sim.place_call("127.0.0.1", port, caller_number="5511912345678")
        with trio.fail_after(10):
            await call.wait_for(lambda: call.answer_state == "answered")
            await call.hangup()
            await call.wait_closed()
        lines = [c.line for c in call.commands]
        assert lines[0] == "connect"
        assert "myevents" not in lines
        assert f"filter Unique-ID {call.uuid}" in lines
        assert f"filter Job-Owner-UUID {call.uuid}" in lines
        assert "linger" in lines
        assert lines[-1] == "exit"
    app.shutting_down.set()


async def test_a_malformed_frame_closes_that_call_only(nursery):
    app = App(settings=load_settings({}), flow=answer_and_wait)
    port = await _start(nursery, app)
    async with open_freeswitch_sim() as sim:
        good = await sim.place_call("127.0.0.1", port)
        with trio.fail_after(10):
            await good.wait_for(lambda: good.answer_state == "answered")
        bad = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):
            assert await bad.receive_some(100) == b"connect\n\n"
            await bad.send_all(b"Content-Type: command/reply\nContent-Length: -5\n\n")
            assert await bad.receive_some(100) == b""  # we hung up on the garbage
        assert good.alive and not good.closed
        with trio.fail_after(10):
            await good.hangup()
            await good.wait_closed()
    app.shutting_down.set()


async def test_shutdown_hands_calls_back_to_the_dialplan_after_the_grace(nursery):
    app = App(settings=load_settings({}), flow=answer_and_wait, shutdown_grace=0.2)
    port = await _start(nursery, app)
    async with open_freeswitch_sim() as sim:
        call = await sim.place_call("127.0.0.1", port)
        with trio.fail_after(10):
            await call.wait_for(lambda: call.answer_state == "answered")
        app.shutting_down.set()
        with trio.fail_after(10):
            await call.wait_closed()
        lines = [c.line for c in call.commands]
        assert lines[-2:] == ["resume", "exit"]
    # no new calls are taken once shutting down
    with trio.fail_after(5):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return
        assert await stream.receive_some(100) == b""


async def test_once_listening_start_up_objects_are_frozen_and_young_collections_are_rarer(nursery):
    import gc

    from callcontrol.server import COLLECT_YOUNG_AFTER

    before = gc.get_threshold()
    gc.unfreeze()
    try:
        app = App(settings=load_settings({}), flow=answer_and_wait)
        await _start(nursery, app)
        assert gc.get_threshold() == (COLLECT_YOUNG_AFTER, *before[1:])
        assert gc.get_freeze_count() > 0
        app.shutting_down.set()
    finally:
        gc.set_threshold(*before)
