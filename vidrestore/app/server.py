"""Serving the page: loopback only by default; on any other address every request must carry the token printed
at start (``?token=…`` once, then a cookie; or an ``Authorization: Bearer`` header)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from .engine import EngineOptions
from .page import build_page, upload_dir
from .service import Service, ServiceOptions

COOKIE = "vidrestore_token"


def default_workdir() -> Path:
    """``$XDG_CACHE_HOME/vidrestore/app`` (``~/.cache/vidrestore/app``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vidrestore" / "app"


@dataclass(frozen=True)
class AppOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    workdir: Path = field(default_factory=default_workdir)
    token: str | None = None  # None: a fresh one when the host is not loopback
    max_upload_mb: int = 4096
    engine: EngineOptions = EngineOptions()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_token(options: AppOptions) -> str | None:
    """The token every request must carry (None on loopback); refuses an open non-loopback server."""
    if is_loopback(options.host):
        return options.token or None
    if options.token is None:
        return secrets.token_urlsafe(24)
    if len(options.token) < 16:
        raise UsageError(
            f"--host {options.host} is reachable from other machines: it needs a token of 16 characters or more "
            "(leave --token out for a fresh one)"
        )
    return options.token


def _guard(app, token: str) -> None:
    """Every request needs the token; the first page view with ``?token=`` sets it as a cookie."""
    from starlette.responses import PlainTextResponse

    @app.middleware("http")
    async def check(request, call_next):
        given = request.query_params.get("token") or request.cookies.get(COOKIE) or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not secrets.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("vidrestore app: open the address with the token printed at start\n", 401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response


def url(options: AppOptions, token: str | None) -> str:
    host = options.host if options.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{options.port}/" + (f"?token={token}" if token else "")


def serve(options: AppOptions, say: Callable[[str], None] = print) -> None:
    """Run the app until interrupted; ``say`` is told the address once the server listens."""
    token = access_token(options)
    workdir = options.workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    upload_dir(workdir).mkdir(exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(upload_dir(workdir))  # Gradio keeps uploads there: inside the work folder
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    service = Service(ServiceOptions(workdir, options.engine, options.max_upload_mb << 20))
    service.start()
    app = FastAPI()
    if token:
        _guard(app, token)
    app = gr.mount_gradio_app(app, build_page(service), path="", allowed_paths=[str(workdir)],
                              max_file_size=options.max_upload_mb << 20, ssr_mode=False, footer_links=[])
    server = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_level="warning"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            say(f"vidrestore app: {url(options, token)}  (work folder {workdir}; Ctrl-C to stop)")

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    if not server.started:
        raise UsageError(f"cannot listen on {options.host}:{options.port} (in use, or not an address of this machine)")
