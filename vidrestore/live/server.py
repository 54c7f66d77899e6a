"""The HTTP preview of ``vidrestore live --serve``: an MJPEG stream and a small page (one job: serve frames).

Endpoints (``ThreadingHTTPServer``, one daemon thread per client):

* ``GET /`` — an HTML page showing the stream, a before/after split button and the HUD figures;
* ``GET /stream.mjpg`` — ``multipart/x-mixed-replace; boundary=frame``, each part one JPEG
  (``cv2.imencode``) of the newest shown frame; a slow client skips frames, it never queues them;
* ``GET /snapshot.jpg`` — the newest frame as one JPEG;
* ``POST /toggle`` (GET works too) — toggles the split view, answers ``{"split": true|false}``;
* ``GET /status`` — the HUD figures as JSON.

Each shown frame is encoded at most once, by the first client that asks for it. :meth:`PreviewServer.stop`
wakes every streaming client, shuts the server down and closes its socket.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from ..errors import UsageError

__all__ = ["PreviewServer", "parse_address", "PAGE"]

BOUNDARY = "frame"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidrestore live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { background: #111; color: #ddd; font: 14px sans-serif; margin: 0; padding: 12px; }
#view { display: block; max-width: 100%; min-width: 320px; background: #000; image-rendering: auto; }
button { font: inherit; margin: 8px 8px 0 0; padding: 4px 12px; }
#status { font-family: monospace; }
</style></head>
<body>
<img id="view" src="/stream.mjpg" alt="vidrestore live preview">
<div><button id="split" type="button">before / after</button><span id="status"></span></div>
<script>
const split = document.getElementById("split");
const status = document.getElementById("status");
function show(s) {
  split.textContent = s.split ? "before / after: on" : "before / after: off";
}
split.onclick = () => fetch("/toggle", {method: "POST"}).then(r => r.json()).then(show);
function poll() {
  fetch("/status").then(r => r.json()).then(s => {
    show(s);
    status.textContent = " source " + s.source_fps.toFixed(1) + " fps, shown " + s.shown_fps.toFixed(1)
      + " fps, restore " + (s.restore_ms === null ? "-" : s.restore_ms.toFixed(0) + " ms")
      + ", faces " + s.faces + (s.recording ? ", REC" : "");
  }).catch(() => {});
}
poll();
setInterval(poll, 1000);
</script>
</body></html>
"""


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` → (host, port); the host defaults to loopback."""
    text = text.strip()
    host, port_text = default_host, text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise UsageError(f"--serve {text!r}: write an IPv6 address as [ADDR]:PORT")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        host = host or default_host
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--serve {text!r}: expected PORT or HOST:PORT (e.g. 8080 or 0.0.0.0:8080)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--serve {text!r}: port must be 0-65535")
    return host, port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    preview: "PreviewServer"


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        preview = self.server.preview
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/stream.mjpg":
                self._stream(preview)
            elif path == "/snapshot.jpg":
                jpeg = preview.wait_jpeg(0, timeout=2.0)
                if jpeg is None:
                    self._send(503, b"no frame yet\n", "text/plain")
                else:
                    self._send(200, jpeg[1], "image/jpeg")
            elif path == "/toggle":
                self.do_POST()
            elif path == "/status":
                self._send(200, json.dumps(preview.status()).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass

    def do_POST(self) -> None:
        preview = self.server.preview
        path = self.path.split("?", 1)[0]
        try:
            if path == "/toggle":
                if preview.on_toggle is not None:
                    preview.on_toggle()
                self._send(200, json.dumps(preview.status()).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self, preview: "PreviewServer") -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        seq = 0
        while not preview.stopped:
            got = preview.wait_jpeg(seq, timeout=0.5)
            if got is None:
                continue
            seq, jpeg = got
            self.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            )
            self.wfile.write(jpeg)
            self.wfile.write(b"\r\n")
            self.wfile.flush()


class PreviewServer:
    """Serve published frames over HTTP. ``start()``, then ``publish(rgb)`` per shown frame, then ``stop()``.

    ``on_toggle`` is called (from a server thread) by ``/toggle``; ``status`` returns the dict ``/status``
    serves (``split`` among its keys).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_toggle: Callable[[], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        quality: int = 80,
    ) -> None:
        self.host, self.port = host, port
        self.on_toggle = on_toggle
        self._status = status
        self.quality = int(quality)
        self._cond = threading.Condition()
        self._rgb: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] | None = None
        self.stopped = False
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "PreviewServer":
        cls = _Server6 if ":" in self.host else _Server
        try:
            httpd = cls((self.host, self.port), _Handler)
        except OSError as exc:
            raise UsageError(f"--serve: cannot listen on {self.host}:{self.port} ({exc.strerror or exc})") from None
        httpd.preview = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="vidrestore-live-http", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def publish(self, rgb: np.ndarray) -> None:
        """Offer a new frame (RGB uint8); it is JPEG-encoded only if some client asks for it."""
        with self._cond:
            self._rgb = rgb
            self._seq += 1
            self._cond.notify_all()

    def wait_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame as (sequence number, JPEG) once it is newer than ``after``; None on timeout/stop."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.stopped or self._seq > after, timeout):
                return None
            if self.stopped or self._rgb is None:
                return None
            if self._jpeg is None or self._jpeg[0] != self._seq:
                ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(self._rgb[..., ::-1]),
                                       [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:  # pragma: no cover - imencode of a uint8 BGR image does not fail
                    return None
                self._jpeg = (self._seq, buf.tobytes())
            return self._jpeg

    def status(self) -> dict[str, Any]:
        base: dict[str, Any] = {"source_fps": 0.0, "shown_fps": 0.0, "restore_ms": None, "faces": 0,
                                "split": False, "recording": False}
        if self._status is not None:
            base.update(self._status())
        return base

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "PreviewServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
