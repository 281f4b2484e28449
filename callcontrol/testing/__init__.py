"""Test doubles shipped with callcontrol, like ``trio.testing``: a simulated FreeSWITCH that
speaks real ESL bytes, a scripted realtime AI server, and database fixtures."""
