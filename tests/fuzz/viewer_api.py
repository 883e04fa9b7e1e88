"""Fuzz the viewer's request handling: any request target, with a loopback or a foreign Host
header, answered by the real server's `answer` over a small trace with every lane kind.

Properties: the answer is 200, 400, 403 or 404, never a 500; a JSON answer parses (no NaN);
an error is {"error": one line}; no answer is larger than the cap that bounds a response.

    python -m tests.fuzz.harness viewer [libFuzzer options] [corpus dir]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MAX_BODY = 64 << 20  # the viewer's biggest file is ~4.5 MB; a view is at most MAX_CELLS cells
HOSTS = ("127.0.0.1:8737", "localhost", "[::1]:80", "evil.example", "", "127.0.0.1.evil.example:80")
_SERVER = None


def prepare() -> None:
    """A server over a small trace (the seeds' first), bound to loopback port 0, not serving:
    `answer` is called directly."""
    global _SERVER
    import osvtrace
    from osvtrace.model import Model
    from osvtrace.viewer import prepare_indexes
    from osvtrace.viewer.api import Api
    from osvtrace.viewer.server import ViewerServer
    from tests.fuzz import seeds

    d = Path(tempfile.mkdtemp(prefix="osvtrace-fuzz-"))
    p = d / "viewer.osvt"
    p.write_bytes(seeds.traces()[1])
    api = Api(Model(osvtrace.open(p)))
    prepare_indexes(api)
    _SERVER = ViewerServer(api, "127.0.0.1", 0)
    os.unlink(p)
    os.rmdir(d)


def check_answer(path: str, host: str) -> tuple[int, bytes]:
    if _SERVER is None:
        prepare()
    status, body, ctype = _SERVER.answer(path, host)  # type: ignore[union-attr]
    assert status in (200, 400, 403, 404), f"{path!r}: status {status}: {body[:300]!r}"
    assert len(body) <= MAX_BODY, f"{path!r}: {len(body)} bytes"
    if ctype.startswith("application/json"):
        data = json.loads(body)  # strict: NaN and Infinity are not JSON
        if status != 200:
            assert set(data) == {"error"} and data["error"] and "\n" not in data["error"], data
    return status, body


def one_input(data: bytes) -> None:
    if not data:
        return
    host = HOSTS[data[0] % len(HOSTS)]
    # http.server hands the handler the request target decoded as ISO-8859-1
    check_answer(data[1:].decode("latin-1"), host)
