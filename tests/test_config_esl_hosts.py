"""ESL_HOST with several FreeSWITCH boxes (issue 8): the list as an admin writes it, and one
clear message for each way of writing it wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.config import ConfigError, EslBox, load_settings, parse_esl_hosts

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,6}){0,2}", fullmatch=True)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.none() | st.integers(1, 65535)
spaces = st.sampled_from(["", " ", "  ", "\t"])


def _written(host: str, port: int | None) -> str:
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@given(
    entries=st.lists(st.tuples(names | ipv4 | ipv6, ports), min_size=1, max_size=5,
                     unique_by=lambda e: e[0]),
    default=st.integers(1, 65535),
    around=st.lists(st.tuples(spaces, spaces), min_size=5, max_size=5),
)
def test_a_list_is_read_back_in_its_order_with_the_default_port(entries, default, around):
    text = ",".join(f"{before}{_written(h, p)}{after}"
                    for (h, p), (before, after) in zip(entries, around, strict=False))
    boxes = parse_esl_hosts(text, default)
    assert boxes == tuple(EslBox(h, default if p is None else p) for h, p in entries)
    # what the logs and doctor call them is read back as the same boxes
    assert parse_esl_hosts(",".join(b.name for b in boxes), 1) == boxes


@given(host=names | ipv4, port=st.integers(1, 65535))
def test_one_host_is_what_it_was(host, port):
    settings = load_settings({"ESL_HOST": host, "ESL_PORT": str(port)})
    assert settings.esl_host == host and settings.esl_boxes == (EslBox(host, port),)


@given(
    good=st.lists(names, min_size=1, max_size=4, unique=True),
    where=st.integers(0, 4),
    bad=st.sampled_from(["", "fs1:abc", "fs1:0", "fs1:70000", "tcp://fs1", "fs 1", "fs1:",
                         "[::1", "[::1]x", "::g"]),
)
def test_a_wrong_entry_is_named_by_its_number(good, where, bad):
    entries = [f"ok-{n}" for n in good]
    where = min(where, len(entries))
    entries.insert(where, bad)
    with pytest.raises(ValueError, match=rf"^entry {where + 1} "):
        parse_esl_hosts(",".join(entries), 8021)


def test_each_mistake_is_said_in_the_admins_words():
    cases = {
        "fs1,,fs2": "entry 2 of 3 is empty (a comma too many?)",
        "fs1,": "entry 2 of 2 is empty (a comma too many?)",
        "fs1,fs2:abc": "entry 2 ('fs2:abc'): port must be a whole number, got 'abc'",
        "fs1,fs2:0": "entry 2 ('fs2:0'): port must be between 1 and 65535",
        "fs1,tcp://fs2": "entry 2 ('tcp://fs2'): write HOST or HOST:PORT, without a scheme "
                         "or a path",
        "fs1:8021,FS1": "FS1:8021 is listed twice (entries 1 and 2)",
        "fs1:": "the port after ':' is missing",
        "[::1": "write an IPv6 address with a port as [ADDRESS]:PORT",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as raised:
            load_settings({"ESL_HOST": text})
        assert raised.value.problems == [f"ESL_HOST={text!r}: {message}"]


def test_the_default_port_can_make_a_duplicate_and_that_is_said_with_it():
    with pytest.raises(ConfigError) as raised:
        load_settings({"ESL_HOST": "fs1, fs1:9000", "ESL_PORT": "9000"})
    assert raised.value.problems == [
        "ESL_HOST='fs1, fs1:9000' with ESL_PORT=9000: fs1:9000 is listed twice (entries 1 "
        "and 2)"]
    assert load_settings({"ESL_HOST": "fs1, fs1:9000"}).esl_boxes == (
        EslBox("fs1", 8021), EslBox("fs1", 9000))


def test_ipv6_with_and_without_a_port():
    assert parse_esl_hosts("::1, [2001:db8::7]:8022", 8021) == (
        EslBox("::1", 8021), EslBox("2001:db8::7", 8022))
    assert [b.name for b in parse_esl_hosts("::1", 8021)] == ["[::1]:8021"]


def test_one_password_for_every_box_commas_and_all():
    settings = load_settings({"ESL_HOST": "fs1,fs2", "ESL_PASSWORD": "a,b"})
    assert settings.esl_password == "a,b"
    assert len(settings.esl_boxes) == 2


def test_a_toml_file_may_list_the_boxes_as_an_array(tmp_path):
    conf = tmp_path / "callcontrol.toml"
    conf.write_text('[esl]\nhost = ["fs1.example.com:8021", "fs2.example.com"]\nport = 8022\n')
    settings = load_settings({"CALLCONTROL_CONFIG": str(conf)})
    assert settings.esl_boxes == (EslBox("fs1.example.com", 8021), EslBox("fs2.example.com", 8022))
    conf.write_text('[esl]\nhost = ["fs1", ""]\n')
    with pytest.raises(ConfigError) as raised:
        load_settings({"CALLCONTROL_CONFIG": str(conf)})
    assert raised.value.problems == [
        f"{conf}: esl.host='fs1,': entry 2 of 2 is empty (a comma too many?)"]
