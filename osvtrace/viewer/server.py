"""The viewer's HTTP server: the JSON API under /api/, and the files of viewer/, nothing else.

Standard library only (ThreadingHTTPServer). The files are read into memory when the server
starts, from a walk of viewer/ that follows no symlink, so no request path (`..`, encoded
dots, absolute paths, symlinks) can reach a file outside it: a path is either one of those
files or a 404. When bound to loopback, requests must name a loopback host (a defence against
DNS rebinding: a web page elsewhere cannot talk to the viewer through a name it controls).

Every answer is built by :meth:`ViewerServer.answer` from the path and the Host header alone
(the fuzz harness calls it directly). A connection idle for ``idle_timeout`` seconds is closed
and at most ``max_connections`` are served at once, so idle or slow clients cannot use up the
server; request bodies are never read (the connection is closed after the answer).
"""

from __future__ import annotations

import json
import mimetypes
import os
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from osvtrace import resources
from osvtrace.viewer.api import Api, ApiError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_QUERY = 64 * 1024
IDLE_TIMEOUT = 20.0  # seconds a connection may stay silent (or not read) before it is closed
MAX_CONNECTIONS = 128  # connections served at once; more get a 503 and are closed


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def host_of(header: str) -> str:
    """The host part of a Host header: "127.0.0.1:8000" -> "127.0.0.1", "[::1]:80" -> "[::1]"."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def load_files(root: Path) -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) for every regular file under root; symlinks skipped."""
    root = root.resolve()
    files: dict[str, tuple[bytes, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            p = Path(dirpath) / name
            if name.startswith(".") or p.is_symlink() or not p.is_file():
                continue
            real = p.resolve()
            if root not in real.parents:
                continue
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
                ctype += "; charset=utf-8"
            files["/" + real.relative_to(root).as_posix()] = (real.read_bytes(), ctype)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


class Handler(BaseHTTPRequestHandler):
    server: "ViewerServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: do not hold the body back

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet unless asked
        if self.server.verbose:
            sys.stderr.write("osvtrace view: " + (fmt % args) + "\n")

    def _send(self, status: int, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                         "script-src 'self'; connect-src 'self'")
        self.end_headers()
        if not head:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):  # the page moved on, or stopped reading
                self.close_connection = True

    def _json(self, status: int, data: Any, head: bool = False) -> None:
        self._send(status, _json_body(data), JSON_TYPE, head)

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # StreamRequestHandler applies it to the socket
        super().setup()

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        if self._has_body():
            # NOTE: a body is never read: answering and closing keeps its bytes from being
            # taken for the next request on a kept-alive connection.
            self.close_connection = True
            self._json(413, {"error": "request bodies are not accepted"}, head)
            return
        status, body, ctype = self.server.answer(self.path, self.headers.get("Host") or "")
        self._send(status, body, ctype, head)

    def _has_body(self) -> bool:
        length = self.headers.get("Content-Length")
        return bool(self.headers.get("Transfer-Encoding")) or (length is not None and length.strip() != "0")

    def _refuse(self) -> None:
        self.close_connection = True
        self._json(405, {"error": "only GET and HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


def _json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


JSON_TYPE = "application/json; charset=utf-8"


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # listen backlog: a page opens several connections at once (the default 5 drops SYNs)

    def __init__(self, api: Api, host: str = "127.0.0.1", port: int = 0, *, viewer_dir: Path | None = None,
                 verbose: bool = False, idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
        self.address_family = __import__("socket").AF_INET6 if ":" in host else __import__("socket").AF_INET
        super().__init__((host.strip("[]"), port), Handler)
        self.api = api
        viewer_dir = viewer_dir or resources.viewer_dir()
        self.files = load_files(viewer_dir)
        if "/index.html" not in self.files:
            self.server_close()
            raise resources.ResourceMissing(f"{viewer_dir}: no index.html: this osvtrace lacks the viewer's files")
        self.verbose = verbose
        self.loopback_only = is_loopback(host.strip("[]")) or host.strip("[]") == "::1"
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)

    def answer(self, path: str, host: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of `path` with this Host header."""
        if self.loopback_only and not is_loopback(host_of(host)):
            return 403, _json_body({"error": "this viewer answers only requests to a loopback address"}), JSON_TYPE
        try:
            url = urlsplit(path)
        except ValueError:  # "//host[" and the like: not a path this server has
            return 400, _json_body({"error": "bad request target"}), JSON_TYPE
        if len(url.query) > MAX_QUERY:
            return 400, _json_body({"error": "query too long"}), JSON_TYPE
        if url.path.startswith("/api/"):
            try:
                q = parse_qs(url.query, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
                data = self.api.handle(url.path[len("/api/"):], q)
            except ApiError as e:
                return 400, _json_body({"error": str(e)}), JSON_TYPE
            except ValueError as e:  # parse_qs limits and the like
                return 400, _json_body({"error": str(e).splitlines()[0] if str(e) else "bad request"}), JSON_TYPE
            except Exception as e:  # a bug: say so in one line, keep the traceback on stderr
                traceback.print_exc()
                return 500, _json_body({"error": f"internal error: {type(e).__name__}: {e}"[:300]}), JSON_TYPE
            return 200, _json_body(data), JSON_TYPE
        f = self.files.get(url.path)
        if f is None:
            return 404, _json_body({"error": "not found"}), JSON_TYPE
        return 200, f[0], f[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        # NOTE: one thread per connection; the cap keeps a flood of idle connections from
        # becoming a flood of threads. The slot is released when the connection ends.
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, timeout) is routine: no traceback for it."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        sys.stderr.write(f"osvtrace view: error serving {client_address[0]}: {type(exc).__name__}: {exc}\n")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, benchmarks); stop with shutdown()."""
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="osvtrace-view",
                             daemon=True)
        t.start()
        return t
