"""The demo is the README's first command: it must keep working and tell the truth."""

from __future__ import annotations

import io

from callcontrol.config import load_settings
from callcontrol.demo import run_scenarios


async def test_demo_runs_every_scenario_through_the_real_server(database_url):
    out = io.StringIO()
    settings = load_settings({"DATABASE_URL": database_url})
    assert await run_scenarios(settings, [], out)
    text = out.getvalue()
    busy, answered, ai_down = text.split("\n== ")[1:]
    assert "bgapi originate" in busy and "user/1001@pbx.example.com &park()" in busy
    assert '"status":"busy"' in busy
    assert '"phone_number": "+5511988887777"' in busy
    assert "stored: outcome=callback_requested handoff=busy destination=Suporte" in busy
    assert "api uuid_bridge" in answered
    assert "stored: outcome=bridged handoff=success destination=Financeiro" in answered
    assert "execute playback tone_stream://%(300,200,440);loops=2" in ai_down
    assert "loopback/9000/pbx.example.com &park()" in ai_down
    assert "stored: outcome=bridged handoff=success destination=Atendimento" in ai_down


def test_demo_command_runs_a_chosen_scenario(database_url, monkeypatch, capsys):
    from callcontrol.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["demo", "--scenario", "nonsense"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["demo", "--scenario", "busy"]) == 0
    out = capsys.readouterr().out
    assert "== busy:" in out and "== answered:" not in out
    assert "demo finished\n" in out
