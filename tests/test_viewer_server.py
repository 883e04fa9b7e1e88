"""The viewer's HTTP server and command: API errors as 400 with a one-line JSON body, no file
outside viewer/ ever served (traversal, encoded dots, absolute paths, symlinks), loopback by
default, static pages refused above their size limit, and a clean Ctrl-C."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import osvtrace
from osvtrace.cli.main import main
from osvtrace.model import Model
from osvtrace.viewer import static
from osvtrace.viewer.api import Api
from osvtrace.viewer.server import VIEWER_DIR, ViewerServer, host_of
from tests.conftest import ROOT


@pytest.fixture
def server(story_file):
    srv = ViewerServer(Api(Model(osvtrace.open(story_file))), "127.0.0.1", 0)
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv: ViewerServer, path: str, host: str | None = None, method: str = "GET") -> tuple[int, bytes, dict]:
    """A raw request: the path goes on the wire exactly as given (no client-side cleaning)."""
    c = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    c.putheader("Host", host or f"127.0.0.1:{srv.server_address[1]}")
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body, dict(r.getheaders())


def test_serves_the_page_and_the_api(server):
    status, body, h = get(server, "/")
    assert status == 200 and b"osvtrace" in body and h["Content-Type"].startswith("text/html")
    status, body, _ = get(server, "/vendor/plotly-cartesian.min.js")
    assert status == 200 and len(body) > 1_000_000
    status, body, h = get(server, "/api/meta")
    assert status == 200 and json.loads(body)["cpus"] == 2 and h["Content-Type"].startswith("application/json")
    status, body, _ = get(server, "/api/view?t0=100&t1=800&px=100")
    assert status == 200 and json.loads(body)["px"] == 100
    assert "default-src 'self'" in h["Content-Security-Policy"] and "unsafe-eval" not in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "/api/view?t0=100&t1=800",
    "/api/view?t0=abc&t1=800&px=10",
    "/api/view?t0=800&t1=100&px=10",
    "/api/view?t0=100&t1=800&px=-5",
    "/api/view?t0=100&t1=800&px=10&lanes=cpu:0,nope",
    "/api/item?lane=cpu:0&t=%00",
    "/api/report?name=../../etc/passwd",
    "/api/unknown",
    "/api/view?" + "&".join(f"x{i}=1" for i in range(100)),
])
def test_bad_api_requests_are_400_with_one_line(server, path):
    status, body, _ = get(server, path)
    assert status == 400
    assert body.count(b"\n") == 0 and set(json.loads(body)) == {"error"}
    assert json.loads(body)["error"]


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/js/../../pyproject.toml", "/js/%2e%2e/%2e%2e/pyproject.toml",
    "/..%2fpyproject.toml", "//etc/passwd", "/etc/passwd", "/%2fetc%2fpasswd", "/" + str(ROOT / "pyproject.toml"),
    "http://127.0.0.1/etc/passwd", "/viewer/../pyproject.toml", "/index.html/../../pyproject.toml", "/.git/config",
    "/js/main.js%00.html", "\\..\\pyproject.toml",
])
def test_nothing_outside_viewer_is_served(server, path):
    status, body, _ = get(server, path)
    assert status == 404, path
    assert b"[build-system]" not in body and b"root:" not in body


def test_symlinks_are_not_followed(story_file, tmp_path):
    site = tmp_path / "viewer"
    shutil.copytree(VIEWER_DIR, site)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (site / "leak.txt").symlink_to(secret)
    (site / "outside").symlink_to(tmp_path)
    (site / "js" / "inside.js").symlink_to(site / "js" / "main.js")  # even one that stays inside
    srv = ViewerServer(Api(Model(osvtrace.open(story_file))), "127.0.0.1", 0, viewer_dir=site)
    srv.start()
    try:
        for path in ("/leak.txt", "/outside/secret.txt", "/js/inside.js"):
            status, body, _ = get(srv, path)
            assert status == 404 and b"secret" not in body, path
        assert get(srv, "/js/main.js")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_loopback_server_checks_the_host_header(server):
    assert get(server, "/api/meta", host="evil.example:80")[0] == 403
    assert get(server, "/api/meta", host="localhost")[0] == 200
    assert host_of("[::1]:8000") == "[::1]" and host_of("127.0.0.1:80") == "127.0.0.1"


def test_only_get(server):
    assert get(server, "/api/meta", method="POST")[0] == 405
    assert get(server, "/api/meta", method="HEAD")[0] == 200


# ---------------------------------------------------------------- the command

def test_view_refuses_a_public_host_without_the_flag(story_file, capsys):
    assert main(["view", str(story_file), "--host", "0.0.0.0", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "--i-know-this-is-exposed" in err and err.count("\n") == 1


def test_static_page_is_self_contained(story_file, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["view", str(story_file), "--static", "-o", str(out)]) == 0
    html = out.read_text()
    assert 'id="osv-data"' in html and "Plotly" in html
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # the HTML around the inlined code
    assert not re.search(r"""(src|href)=["'](?!data:)""", markup)  # nothing fetched (the browser test checks too)
    assert not re.search(r"""<script[^>]+src=""", html) and "viewer.css" not in markup
    assert "wrote" in capsys.readouterr().out


def test_static_refuses_big_traces(story_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(static, "MAX_EVENTS", 10)
    assert main(["view", str(story_file), "--static", "-o", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err
    assert "19 events" in err and "at most 10" in err and "osvtrace view story.osvt" in err
    assert not (tmp_path / "p.html").exists()
    assert main(["view", str(story_file), "--static"]) == 2  # no -o
    assert "-o" in capsys.readouterr().err


@pytest.mark.parametrize("extra,host", [
    (["--no-open"], "127.0.0.1"),
    (["--no-open", "--host", "0.0.0.0", "--i-know-this-is-exposed"], "0.0.0.0"),
    ([], "127.0.0.1"),  # no display: says so instead of starting a browser
])
def test_view_serves_until_ctrl_c(story_file, extra, host):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    p = subprocess.Popen([sys.executable, "-m", "osvtrace.cli.main", "view", str(story_file), "--port", "0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = ""
        deadline = time.time() + 30
        while "http://" not in line and time.time() < deadline:
            line = p.stdout.readline()
        m = re.search(r"http://([0-9.]+):(\d+)/", line)
        assert m and m.group(1) == host, line
        c = http.client.HTTPConnection("127.0.0.1", int(m.group(2)), timeout=10)
        c.request("GET", "/api/meta")
        assert c.getresponse().status == 200
        c.close()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0
        err = p.stderr.read()
        assert "viewer stopped" in err and "Traceback" not in err
        assert ("WARNING" in err) == (host != "127.0.0.1")
        assert ("no graphical display" in err) == ("--no-open" not in extra)
    finally:
        if p.poll() is None:
            p.kill()
