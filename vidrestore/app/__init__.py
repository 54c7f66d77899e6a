"""The web door: ``vidrestore app`` serves a local page where photos and films are dropped, restored and compared.

Gradio is an optional extra (``pip install -e ".[app]"``); nothing here imports it until the app starts.
Modules: :mod:`.server` (address, token, serving), :mod:`.page` (the Gradio page), :mod:`.service` (what the page
asks for), :mod:`.jobs` (the queue kept in the work folder), :mod:`.engine` (models shared by the jobs, the runs),
:mod:`.uploads` (what is accepted).
"""

from __future__ import annotations

from .engine import EngineOptions, Settings
from .server import AppOptions, default_workdir, is_loopback, serve

__all__ = ["AppOptions", "EngineOptions", "Settings", "default_workdir", "is_loopback", "serve"]
