"""Where the recording of a ticket's call is, and whether this host may hand it out.

FusionPBX records a call when its inbound route, extension or domain says so, and writes where
to in its CDR: ``v_xml_cdr.record_path`` and ``record_name`` (the call's own UUID is the CDR's
``xml_cdr_uuid``). A ticket may also carry a ``recording_path`` a helpdesk or an earlier
release stored. The agent's page plays it through ``GET /api/callbacks/{id}/recording``, so the
file never has to be published anywhere else, but only a file that is really under the
recordings folder (``CALLCONTROL_RECORDINGS_DIR``, FreeSWITCH's ``recordings_dir``) is served:
a path from a table is text anyone with database access could have written, and ``..`` or a
symbolic link must not turn it into ``/etc/shadow``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
}


def stored_path(recording_path: str | None, record_path: str | None,
                record_name: str | None) -> str | None:  # fmt: skip
    """The recording's path as the tables give it: the ticket's own, else the CDR's folder and
    file name (FusionPBX keeps them apart)."""
    if recording_path and recording_path.strip():
        return recording_path.strip()
    if record_name and record_name.strip():
        name = record_name.strip()
        if record_path and record_path.strip() and not name.startswith("/"):
            return str(PurePosixPath(record_path.strip()) / name)
        return name
    return None


def servable(path: str | None, root: Path | None) -> Path | None:
    """The file to send for ``path``, or None: no folder configured, not an audio file, not
    under the folder once every link and ``..`` is resolved, or not there."""
    if not path or root is None or "\x00" in path:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    if candidate.suffix.lower() not in AUDIO_TYPES:
        return None
    try:
        real, base = candidate.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(base) or not real.is_file():
        return None
    return real


def media_type(path: Path) -> str:
    return AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
