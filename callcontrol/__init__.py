"""callcontrol: a FreeSWITCH call-control server for an AI voice secretary."""

__version__ = "0.1.0"
