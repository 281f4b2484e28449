"""``GET /static/{name}``: the pages' stylesheet, scripts and icon, package data of
``callcontrol/api/static/`` (so a wheel carries them and ``serve`` needs no web server beside it).

Only a flat name with a known suffix is served, from that one directory, with its content type
and ``nosniff``; anything else is the API's 404. The files are read once and kept; each carries
an ETag and ``Cache-Control: no-cache``, so a browser revalidates (a 304 costs nothing) and an
upgrade is seen on the next load without renaming files.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import attrs
from starlette.requests import Request
from starlette.responses import Response

from callcontrol.api.errors import not_found

DIRECTORY = Path(__file__).with_name("static")
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(css|js|svg)")


@attrs.frozen
class Asset:
    body: bytes
    content_type: str
    etag: str


@functools.cache
def asset(name: str) -> Asset | None:
    if not _NAME.fullmatch(name):
        return None
    path = DIRECTORY / name
    if not path.is_file():
        return None
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, TYPES[path.suffix], etag)


async def static_file(request: Request) -> Response:
    found = asset(request.path_params["name"])
    if found is None:
        raise not_found("no such file")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)
