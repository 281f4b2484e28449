"""``callcontrol fs-conf``: the shipped FreeSWITCH files parse, say what the docs promise, and
are printed or written with the configured addresses (never a secret)."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from callcontrol.config import ENVIRONMENT_VARIABLES, load_settings
from callcontrol.fsconf import (
    FsConfError,
    render,
    run_fs_conf,
    shipped_files,
    source_root,
    write_files,
)

DIALPLANS = (
    "dialplan/default/90_callcontrol_ai_secretary.xml",
    "dialplan/fusionpbx/ai_secretary.dialplan-manager.xml",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENVIRONMENT_VARIABLES, "CALLCONTROL_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _by_path(files: Any) -> dict[str, str]:
    return {f.path: f.text for f in files}


def _actions(text: str) -> list[tuple[str, str]]:
    root = ET.fromstring(text)
    return [(a.get("application", ""), a.get("data", "")) for a in root.iter("action")]


def test_the_files_are_found_in_the_checkout() -> None:
    root = source_root()
    assert (root / "dialplan").is_dir() and (root / "fs-conf").is_dir()
    paths = set(_by_path(shipped_files()))
    assert set(DIALPLANS) <= paths
    assert {
        "fs-conf/autoload_configs/event_socket.conf.xml",
        "fs-conf/autoload_configs/modules.conf.xml",
        "fs-conf/autoload_configs/local_stream.conf.xml",
        "fs-conf/systemd/callcontrol.service",
    } <= paths


def test_every_xml_file_is_well_formed_before_and_after_rendering() -> None:
    rendered, _ = render(load_settings({"CALLCONTROL_ESL_LISTEN": "10.0.0.5:9022"}))
    xml = [f for f in [*shipped_files(), *rendered] if f.path.endswith(".xml")]
    assert len(xml) >= 10
    for f in xml:
        ET.fromstring(f.text)  # raises on a malformed file


@pytest.mark.parametrize("path", DIALPLANS)
def test_dialplan_entry(path: str) -> None:
    actions = _actions(_by_path(shipped_files())[path])
    apps = [app for app, _ in actions]
    assert "answer" not in apps  # callcontrol answers
    assert ("socket", "127.0.0.1:8022 async full") in actions
    assert any(app == "set" and data.startswith("voice_secretary_uuid=") for app, data in actions)
    after = apps[apps.index("socket") + 1 :]
    assert after[:1] == ["transfer"] and after[-1] == "hangup"  # the fallback


def test_fusionpbx_variant_is_an_extension_and_keeps_fusionpbx_domain_variables() -> None:
    text = _by_path(shipped_files())[DIALPLANS[1]]
    assert ET.fromstring(text).tag == "extension"  # what the dialplan manager's XML editor holds
    actions = _actions(text)
    assert not any(data.startswith("domain_uuid=") for _, data in actions)
    assert ("transfer", "9000 XML ${domain_name}") in actions


def test_configured_addresses_are_written_in() -> None:
    settings = load_settings(
        {"CALLCONTROL_ESL_LISTEN": "10.0.0.5:9022", "ESL_HOST": "10.0.0.7", "ESL_PORT": "8031"}
    )
    files, notes = render(settings)
    texts = _by_path(files)
    for path in DIALPLANS:
        assert ("socket", "10.0.0.5:9022 async full") in _actions(texts[path])
    params = {
        p.get("name"): p.get("value")
        for p in ET.fromstring(texts["fs-conf/autoload_configs/event_socket.conf.xml"]).iter(
            "param"
        )
    }
    assert params["listen-ip"] == "10.0.0.7"
    assert params["listen-port"] == "8031"
    assert params["password"] == "ClueCon"  # a placeholder, never the configured secret
    assert notes == []


def test_wildcard_listen_and_host_names_give_notes() -> None:
    settings = load_settings({"CALLCONTROL_ESL_LISTEN": "0.0.0.0:8022", "ESL_HOST": "pbx.local"})
    files, notes = render(settings)
    assert ("socket", "127.0.0.1:8022 async full") in _actions(_by_path(files)[DIALPLANS[0]])
    assert len(notes) == 2
    assert "every address" in notes[0] and "pbx.local" in notes[1]


def test_print(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("CALLCONTROL_ESL_LISTEN", "127.0.0.1:9123")
    monkeypatch.setenv("ESL_PASSWORD", "not-to-be-printed")
    assert run_fs_conf(argparse.Namespace(out=None)) == 0
    out = capsys.readouterr().out
    assert "==> dialplan/default/90_callcontrol_ai_secretary.xml <==" in out
    assert "==> fs-conf/systemd/callcontrol.service <==" in out
    assert 'data="127.0.0.1:9123 async full"' in out
    assert "not-to-be-printed" not in out


def test_out_writes_then_refuses_then_force(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "conf"
    assert run_fs_conf(argparse.Namespace(out=str(out))) == 0
    target = out / DIALPLANS[0]
    assert target.read_text() == _by_path(shipped_files())[DIALPLANS[0]]
    assert (out / "fs-conf/autoload_configs/event_socket.conf.xml").is_file()

    target.write_text("edited by the admin")
    assert run_fs_conf(argparse.Namespace(out=str(out))) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert target.read_text() == "edited by the admin"

    assert run_fs_conf(argparse.Namespace(out=str(out), force=True)) == 0
    assert target.read_text() == _by_path(shipped_files())[DIALPLANS[0]]


def test_refusal_writes_nothing(tmp_path: Path) -> None:
    files = shipped_files()
    existing = tmp_path / files[-1].path
    existing.parent.mkdir(parents=True)
    existing.write_text("x")
    with pytest.raises(FsConfError, match="refusing"):
        write_files(files, tmp_path)
    assert not (tmp_path / files[0].path).exists()
