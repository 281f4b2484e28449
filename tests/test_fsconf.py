"""``callcontrol fs-conf``: the shipped FreeSWITCH files parse, say what the docs promise, and
are printed or written with the configured addresses, ports and Event Socket password (the
password only into files, never on the terminal)."""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from callcontrol import fsconf
from callcontrol.config import ENVIRONMENT_VARIABLES, load_settings
from callcontrol.fsconf import (
    HIDDEN,
    ConfFile,
    FsConfError,
    fill,
    render,
    run_fs_conf,
    shipped_files,
    source_root,
    write_files,
)

EVENT_SOCKET = "fs-conf/autoload_configs/event_socket.conf.xml"
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


def _params(text: str) -> dict[str | None, str | None]:
    return {p.get("name"): p.get("value") for p in ET.fromstring(text).iter("param")}


def _defaults() -> dict[str, str]:
    return _by_path(render(load_settings({}))[0])


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


def test_the_templates_name_settings_and_rendering_leaves_no_placeholder() -> None:
    templates = "".join(f.text for f in shipped_files())
    assert set(re.findall(r"\{\{(\w+)\}\}", templates)) == {
        "CALLCONTROL_ESL_LISTEN", "ESL_HOST", "ESL_PORT", "ESL_PASSWORD",
    }  # fmt: skip
    assert set(re.findall(r"\{\{(\w+)\}\}", templates)) <= set(ENVIRONMENT_VARIABLES)
    for text in _defaults().values():
        assert "{{" not in text and "}}" not in text


def test_an_unknown_placeholder_is_an_error_not_a_file() -> None:
    with pytest.raises(FsConfError, match=r"x.xml: unknown placeholder \{\{ESL_PORTT\}\}"):
        fill(ConfFile("x.xml", '<p value="{{ESL_PORTT}}"/>'), {"ESL_PORT": "8021"})


def test_defaults_are_freeswitchs_and_the_default_password_gets_a_warning() -> None:
    files, notes = render(load_settings({}))
    texts = _by_path(files)
    for path in DIALPLANS:
        assert ("socket", "127.0.0.1:8022 async full") in _actions(texts[path])
    params = _params(texts[EVENT_SOCKET])
    assert (params["listen-ip"], params["listen-port"]) == ("127.0.0.1", "8021")
    assert params["password"] == "ClueCon"
    assert len(notes) == 1 and "well-known default (ClueCon)" in notes[0]


@pytest.mark.parametrize("path", DIALPLANS)
def test_dialplan_entry(path: str) -> None:
    actions = _actions(_defaults()[path])
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


def test_configured_values_are_written_in() -> None:
    settings = load_settings({
        "CALLCONTROL_ESL_LISTEN": "127.0.0.1:9022", "ESL_PORT": "8031", "ESL_PASSWORD": "pw-1",
    })  # fmt: skip
    files, notes = render(settings)
    texts = _by_path(files)
    for path in DIALPLANS:
        assert ("socket", "127.0.0.1:9022 async full") in _actions(texts[path])
    params = _params(texts[EVENT_SOCKET])
    assert params["listen-ip"] == "127.0.0.1"
    assert params["listen-port"] == "8031"
    assert params["password"] == "pw-1"
    assert "dials callcontrol from the dialplan\n  (127.0.0.1:9022)" in texts[EVENT_SOCKET]
    assert notes == []


def test_the_password_is_escaped_for_xml() -> None:
    password = 'a"b<c>&d\'e'
    files, _ = render(load_settings({"ESL_PASSWORD": password}))
    assert _params(_by_path(files)[EVENT_SOCKET])["password"] == password


def test_written_files_carry_the_configured_values_and_none_of_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """What an admin gets from `callcontrol fs-conf --out DIR` with their settings: their
    listen address, Event Socket address, port and password, and no trace of the defaults."""
    env = {
        "CALLCONTROL_ESL_LISTEN": "192.0.2.20:9099",  # TEST-NET-1: only written, never dialled
        "ESL_HOST": "192.0.2.10",
        "ESL_PORT": "9021",
        "ESL_PASSWORD": "Xy7-not-the-default",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "conf"
    assert run_fs_conf(argparse.Namespace(out=str(out))) == 0
    written = {
        p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()
    }
    assert set(written) == set(_by_path(shipped_files()))
    for path in DIALPLANS:
        assert ("socket", "192.0.2.20:9099 async full") in _actions(written[path])
    assert _params(written[EVENT_SOCKET]) | {"nat-map": None, "apply-inbound-acl": None} == {
        "listen-ip": "192.0.2.10", "listen-port": "9021", "password": "Xy7-not-the-default",
        "nat-map": None, "apply-inbound-acl": None,
    }  # fmt: skip
    for path, text in written.items():
        for default in ("8022", "8021", "ClueCon", "{{"):
            assert default not in text, (path, default)
    for path in DIALPLANS:
        assert "127.0.0.1" not in written[path]
    err = capsys.readouterr().err
    assert "admits this machine only" in err  # listen-ip is not loopback: the ACL says so
    assert "well-known default" not in err


def test_wildcard_listen_and_host_names_give_notes() -> None:
    settings = load_settings({"CALLCONTROL_ESL_LISTEN": "0.0.0.0:8022", "ESL_HOST": "pbx.local"})
    files, notes = render(settings)
    texts = _by_path(files)
    assert ("socket", "127.0.0.1:8022 async full") in _actions(texts[DIALPLANS[0]])
    assert _params(texts[EVENT_SOCKET])["listen-ip"] == "127.0.0.1"
    assert len(notes) == 3
    assert "every address" in notes[0] and "pbx.local" in notes[1]
    assert "well-known default" in notes[2]


def test_print(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("CALLCONTROL_ESL_LISTEN", "127.0.0.1:9123")
    monkeypatch.setenv("ESL_PASSWORD", "not-to-be-printed")
    assert run_fs_conf(argparse.Namespace(out=None)) == 0
    out, err = capsys.readouterr()
    assert "==> dialplan/default/90_callcontrol_ai_secretary.xml <==" in out
    assert "==> fs-conf/systemd/callcontrol.service <==" in out
    assert 'data="127.0.0.1:9123 async full"' in out
    assert f'<param name="password" value="{HIDDEN}"/>' in out
    assert "not-to-be-printed" not in out
    assert "--out DIR` writes ESL_PASSWORD" in err


def test_out_writes_then_refuses_then_force(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "conf"
    assert run_fs_conf(argparse.Namespace(out=str(out))) == 0
    target = out / DIALPLANS[0]
    assert target.read_text() == _defaults()[DIALPLANS[0]]
    assert (out / "fs-conf/autoload_configs/event_socket.conf.xml").is_file()

    target.write_text("edited by the admin")
    assert run_fs_conf(argparse.Namespace(out=str(out))) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert target.read_text() == "edited by the admin"

    assert run_fs_conf(argparse.Namespace(out=str(out), force=True)) == 0
    assert target.read_text() == _defaults()[DIALPLANS[0]]


def test_an_install_without_the_files_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "dialplan").mkdir()  # fs-conf/ is missing from this "installed package"
    monkeypatch.setattr(fsconf.resources, "files", lambda package: tmp_path)
    assert run_fs_conf(argparse.Namespace(out=str(tmp_path / "out"))) == 1
    err = capsys.readouterr().err
    assert f"this copy of callcontrol ({tmp_path}) was installed without its fs-conf/ files" in err
    assert not (tmp_path / "out").exists()


def test_refusal_writes_nothing(tmp_path: Path) -> None:
    files = shipped_files()
    existing = tmp_path / files[-1].path
    existing.parent.mkdir(parents=True)
    existing.write_text("x")
    with pytest.raises(FsConfError, match="refusing"):
        write_files(files, tmp_path)
    assert not (tmp_path / files[0].path).exists()


def test_several_boxes_get_the_first_ones_files_and_a_note_for_the_others() -> None:
    settings = load_settings({"ESL_HOST": "192.0.2.10:9021, 192.0.2.11",
                              "ESL_PASSWORD": "Xy7-not-the-default"})  # fmt: skip
    files, notes = render(settings)
    params = _params(_by_path(files)[EVENT_SOCKET])
    assert (params["listen-ip"], params["listen-port"]) == ("192.0.2.10", "9021")
    [several] = [n for n in notes if "boxes" in n]
    assert several.startswith("ESL_HOST lists 2 FreeSWITCH boxes: these files are for the "
                              "first, 192.0.2.10:9021; for each other box run fs-conf again")
