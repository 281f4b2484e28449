"""The outbound dialer's channel: the caller's leg as the dialplan ``socket`` app leaves it.

A FusionPBX call reaches the socket app as a SIP leg (``sofia/internal/<caller>@<domain>``,
PCMU/8000 by default) carrying ``domain_uuid``, ``domain_name`` and, from our dialplan entry,
``voice_secretary_uuid``. The socket app fires CHANNEL_EXECUTE socket before it connects;
it parks the channel once ``connect`` is answered (``FreeSwitchSim.socket_connected``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcontrol.testing.freeswitch._channel import Channel

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

_CALLER_IP = "192.0.2.50"


def caller_channel(sim: FreeSwitchSim, number: str, name: str, dest: str,
                   variables: dict[str, str], *, codec: str, rate: int,
                   uuid: str | None) -> Channel:
    uuid = uuid or sim.new_uuid()
    chan_name = f"sofia/internal/{number}@{sim.domain}"
    ch = Channel(
        uuid=uuid, name=chan_name, direction="inbound", caller_id_name=name,
        caller_id_number=number, destination_number=dest,
        context=variables.get("domain_name", sim.domain), username=number,
        network_addr=_CALLER_IP, read_codec=codec, read_rate=rate, created=sim.now(),
        call_state="DOWN",
    )
    ch.variables.update({
        "direction": "inbound", "uuid": uuid, "session_id": str(sim.next_session_id()),
        "sip_from_user": number, "sip_from_host": sim.domain, "sip_to_user": dest,
        "sip_to_host": sim.domain, "channel_name": chan_name,
        "sip_call_id": f"{uuid[:8]}@{_CALLER_IP}", "sip_network_ip": _CALLER_IP,
        "read_codec": codec, "read_rate": str(rate), "write_codec": codec,
        "write_rate": str(rate), "domain_uuid": sim.domain_uuid, "domain_name": sim.domain,
        "call_uuid": uuid,
    })
    ch.variables.update(variables)
    sim.add_channel(ch)
    return ch


def run_socket_app(sim: FreeSwitchSim, ch: Channel, socket_address: str, *,
                   full: bool) -> None:
    ch.controlled = True
    data = f"{socket_address} async full" if full else f"{socket_address} async"
    sim.flow.fire("CHANNEL_CREATE", ch)
    ch.set_state("CS_EXECUTE")
    ch.call_state = "RINGING"
    sim.flow.start_app(ch, "socket", data, "", host=True)
    ch.variables["socket_host"] = socket_address.rsplit(":", 1)[0]
