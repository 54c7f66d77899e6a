"""A live session (:func:`run_live`): capture, preview, and what the shown frames go to.

Threads and hand-offs (every hand-off is a one-slot :class:`~vidrestore.live.mailbox.Mailbox` that keeps the
newest item, so nothing queues without bound and a slow consumer skips items instead of falling behind)::

    capture ──frame──► display (main thread: render, window / MJPEG server / recorder), at the source rate
       │
       └──frame──► the preview's detector and restorer threads (:mod:`vidrestore.live.preview`)

* **capture** decodes the source (:class:`~vidrestore.live.source.LiveSource`). Audio packets of the source
  go to the recorder (and to a 3-second backlog for a recording started later).
* **display** never waits for the preview's workers: :meth:`LivePreview.render` warps the cached restored
  faces onto each frame; the result goes to the window (:mod:`vidrestore.live.window`), the HTTP preview
  (:mod:`vidrestore.live.server`) and the recorder (:mod:`vidrestore.live.recorder`).

Without a display (:func:`vidrestore.live.window.display_problem`) no window is opened — OpenCV aborts the
process otherwise — and ``--serve``/``--record`` carry on alone; with neither the session stops with one line.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import OutputError, UsageError
from ..media.source import Frame
from ..util import write_atomic
from .mailbox import Mailbox
from .options import LiveOptions
from .overlay import draw_hud, hud_lines
from .preview import LivePreview, PreviewOptions
from .recorder import LiveRecorder, keep_recent
from .source import LiveSource, parse_source

__all__ = ["LiveStats", "load_models", "run_live"]


@dataclass
class LiveStats:
    """What a live session did (returned by :func:`run_live`)."""

    frames_captured: int = 0
    frames_shown: int = 0
    dropped: int = 0
    seconds: float = 0.0
    end: str = ""
    source_fps: float = 0.0  # nominal (file/stream header), else measured
    latency_ms: list[float] = field(default_factory=list)  # capture → shown, per shown frame (last 10 000)
    restore_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    restorations: int = 0
    recordings: list[Path] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    out_of_order: int = 0
    first_shown: float | None = None  # perf_counter of the first and last shown frame
    last_shown: float | None = None

    @property
    def shown_fps(self) -> float:
        """Shown frames per second between the first and the last shown frame."""
        if self.frames_shown < 2 or self.first_shown is None or self.last_shown is None:
            return 0.0
        span = self.last_shown - self.first_shown
        return (self.frames_shown - 1) / span if span > 0 else 0.0

    def count_shown(self, frame: Frame, now: float) -> None:
        self.frames_shown += 1
        if self.first_shown is None:
            self.first_shown = now
        self.last_shown = now
        if len(self.latency_ms) < 10_000:
            self.latency_ms.append(1000 * (now - frame.meta["captured"]))


class _Rate:
    """Frames per second over the last ~second of timestamps."""

    def __init__(self) -> None:
        self._t: deque = deque(maxlen=120)

    def tick(self, t: float | None = None) -> None:
        self._t.append(time.perf_counter() if t is None else t)

    def fps(self) -> float:
        if len(self._t) < 2:
            return 0.0
        now = self._t[-1]
        recent = [x for x in self._t if now - x <= 1.0] or list(self._t)[-2:]
        if len(recent) < 2:
            recent = list(self._t)[-2:]
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0


def load_models(options: LiveOptions) -> tuple[Any, Any, Any]:
    """(detector, restorer, parser) for ``options``, loaded as every door loads them (``model="none"``: Nones)."""
    from ..pipeline.build import build_models

    models = build_models(options.restore_options())
    return models.detector, models.restorer, models.parser


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for k in range(2, 10_000):
        cand = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not cand.exists():
            return cand
    raise OutputError(f"no free name beside {path}")


def _snapshot(rgb: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = _unique(folder / time.strftime("vidrestore-live-%Y%m%d-%H%M%S.png"))
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OutputError(f"cannot write the snapshot {path}")
    write_atomic(path, png.tobytes(), fsync=False)
    return path


def _window_plan(options: LiveOptions, window_factory: Callable[[], Any] | None) -> tuple[bool, str | None]:
    """(whether to open a window, the notice to give when there is no display to open it on)."""
    from .window import display_problem

    if not options.window or window_factory is not None:
        return options.window, None
    problem = display_problem()  # never reach cv2.namedWindow without a display: it aborts the process
    if problem is None:
        return True, None
    if not (options.serve or options.record):
        raise UsageError(f"{problem}: add --serve [HOST:]PORT to watch the preview in a browser "
                         "(or --record OUT.mp4 to only record)")
    return False, f"notice: {problem}: no window; " + ("the preview is served over HTTP" if options.serve
                                                       else f"recording to {options.record} only")


def _check_record(options: LiveOptions) -> None:
    if options.record:
        from ..media.sink import container_for

        container_for(Path(options.record))
        if Path(options.record).exists() and not options.overwrite:
            raise OutputError(f"{options.record} already exists; pass --overwrite to replace it")


def run_live(
    options: LiveOptions,
    *,
    detector: Any | None = None,
    restorer: Any | None = None,
    parser: Any | None = None,
    notice: Callable[[str], None] | None = None,
    on_shown: Callable[[Frame, np.ndarray], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    window_factory: Callable[[], Any] | None = None,
) -> LiveStats:
    """Run a live session until the source ends, ``q``/Esc, ``stop`` is set, ``--duration`` or Ctrl-C.

    ``detector``/``restorer``/``parser`` may be given as objects (else loaded from ``options``; a given
    ``restorer`` with no ``detector`` shows frames as they are). ``on_shown(frame, shown)`` is called for
    every shown frame; ``on_start(server_or_None)`` once everything is running. Raises
    :class:`~vidrestore.errors.VidrestoreError` (one line) for a source that cannot be opened or is lost;
    a recording under way is finished and kept in every case.
    """
    say = notice or (lambda m: print(m, file=sys.stderr, flush=True))
    use_window, headless = _window_plan(options, window_factory)
    spec = parse_source(options.source, options.format, options.source_options)
    _check_record(options)
    if restorer is None and detector is None and parser is None:
        detector, restorer, parser = load_models(options)
    source = LiveSource(spec, loop=options.loop).open()
    preview = LivePreview(detector, restorer, parser,
                          PreviewOptions(min_face=options.min_face, temporal=options.temporal))
    preview.split = options.split
    make_window = None
    if use_window:
        from .window import PreviewWindow

        make_window = window_factory or (lambda: PreviewWindow(f"vidrestore live: {spec.target}"))
    session = _Session(options, say, source, preview, stop or threading.Event(), on_shown)
    return session.run(headless, make_window, on_start)


class _Session:
    """The state of one :func:`run_live`: the capture thread's callbacks, the display loop, the recorder."""

    def __init__(self, options: LiveOptions, say: Callable[[str], None], source: LiveSource, preview: LivePreview,
                 stop: threading.Event, on_shown: Callable[[Frame, np.ndarray], None] | None) -> None:
        self.options, self.say, self.source, self.preview, self.stop = options, say, source, preview, stop
        self.on_shown = on_shown
        self.save_dir = Path(options.save_dir)
        self.stats = LiveStats(source_fps=float(source.rate) if source.rate else 0.0)
        self.display = Mailbox()
        self.src_rate, self.shown_rate = _Rate(), _Rate()
        self.audio_backlog: deque = deque()
        self.rec_lock = threading.Lock()
        self.recorder: LiveRecorder | None = None
        self.record_used = False
        self.end: str | None = None
        self.error: BaseException | None = None
        self.server: Any = None
        self.window: Any = None
        self.view: np.ndarray | None = None
        self.last_index = -1

    # -- the capture thread ---------------------------------------------------------------------------------
    def on_frame(self, frame: Frame) -> None:
        self.src_rate.tick(frame.meta["captured"])
        self.preview.submit(frame)
        self.display.put(frame)

    def on_audio(self, packet: Any, t: float) -> None:
        keep_recent(self.audio_backlog, packet, t)
        with self.rec_lock:
            rec = self.recorder
        if rec is not None:
            rec.add_audio(packet, t)

    def capture(self) -> None:
        try:
            end = self.source.run(self.on_frame, self.on_audio, self.stop)
            self.end = self.end or end
        except BaseException as exc:  # noqa: BLE001 - reported by the display loop
            self.error = exc
        finally:
            self.display.close()

    # -- recording ------------------------------------------------------------------------------------------
    def start_recording(self) -> None:
        options = self.options
        if options.record and not self.record_used:
            path = Path(options.record)
        else:
            base = Path(options.record) if options.record else self.save_dir / time.strftime(
                "vidrestore-live-%Y%m%d-%H%M%S.mp4")
            path = _unique(base)
        source = self.source
        with source.lock:
            template = source.audio_template
            rec = LiveRecorder(path, (source.width, source.height), source.rate, audio_template=template,
                               backlog=list(self.audio_backlog), notice=self.say,
                               overwrite=options.overwrite and path == Path(options.record or ""))
        self.record_used = True
        with self.rec_lock:
            self.recorder = rec
        self.say(f"recording to {path}" + ("" if rec.has_audio or template is None else " (without audio)"))

    def stop_recording(self) -> None:
        with self.rec_lock:
            rec, self.recorder = self.recorder, None
        if rec is not None:
            done = rec.close()
            if done is not None:
                self.stats.recordings.append(done)
                self.say(f"recording saved: {done} ({rec.frames} frames)")

    def status(self) -> dict[str, Any]:
        last = self.preview.stats.last_restore_ms
        return {"source_fps": round(self.src_rate.fps(), 2), "shown_fps": round(self.shown_rate.fps(), 2),
                "restore_ms": None if last is None else round(last, 1), "faces": self.preview.stats.faces_shown,
                "split": self.preview.split, "recording": self.recorder is not None}

    # -- the display (main thread) --------------------------------------------------------------------------
    def run(self, headless: str | None, make_window: Callable[[], Any] | None,
            on_start: Callable[[Any], None] | None) -> LiveStats:
        capture_thread = threading.Thread(target=self.capture, name="vidrestore-live-capture", daemon=True)
        started = time.perf_counter()
        try:
            if headless is not None:
                self.say(headless)
            self._open_outputs(make_window)
            self.preview.start()
            capture_thread.start()
            if on_start is not None:
                on_start(self.server)
            self._loop(started)
        except KeyboardInterrupt:
            self.end = "interrupted"
        finally:
            self._close(capture_thread, started)
        if self.error is not None:
            raise self.error
        self.stats.end = self.end or "end"
        return self.stats

    def _open_outputs(self, make_window: Callable[[], Any] | None) -> None:
        if self.options.serve:
            from .server import PreviewServer, parse_address

            host, port = parse_address(self.options.serve)
            self.server = PreviewServer(host, port, on_toggle=self.preview.toggle_split, status=self.status).start()
            self.say(f"serving the preview at {self.server.url} (Ctrl-C to stop)")
        if make_window is not None:
            self.window = make_window()
        if self.options.record:
            self.start_recording()

    def _loop(self, started: float) -> None:
        duration = self.options.duration
        while not self.stop.is_set():
            if duration is not None and time.perf_counter() - started >= duration:
                self.end = "duration"
                return
            frame = self.display.get(timeout=0.02 if self.window is not None else 0.1)
            action = None
            if frame is None:
                if self.display.finished:
                    return
                if self.window is not None:
                    action = self.window.poll(1)
            elif frame.index <= self.last_index:
                self.stats.out_of_order += 1
                continue
            else:
                action = self._show(frame)
            if action == "quit":
                self.end = "quit"
                return
            self._act(action)

    def _show(self, frame: Frame) -> str | None:
        """Render ``frame`` and hand it to the recorder, the server, the window; the window's key action."""
        self.last_index = frame.index
        shown = self.preview.render(frame)
        now = time.perf_counter()
        self.shown_rate.tick(now)
        self.stats.count_shown(frame, now)
        with self.rec_lock:
            rec = self.recorder
        if rec is not None:
            rec.write(shown, frame.time)
        view = shown
        if self.options.hud and (self.window is not None or self.server is not None):
            view = draw_hud(shown.copy(), hud_lines(self.status()))
        self.view = view
        if self.server is not None:
            self.server.publish(view)
        action = self.window.show(view) if self.window is not None else None
        if self.on_shown is not None:
            self.on_shown(frame, shown)
        return action

    def _act(self, action: str | None) -> None:
        if action == "split":
            self.preview.toggle_split()
        elif action == "snapshot" and self.view is not None:
            self.stats.snapshots.append(_snapshot(self.view, self.save_dir))
            self.say(f"snapshot saved: {self.stats.snapshots[-1]}")
        elif action == "record":
            if self.recorder is None:
                self.start_recording()
            else:
                self.stop_recording()

    def _close(self, capture_thread: threading.Thread, started: float) -> None:
        self.stop.set()
        if capture_thread.is_alive():
            capture_thread.join(timeout=10)
        if self.window is not None:
            self.window.close()
        if self.server is not None:
            self.server.stop()
        try:
            self.stop_recording()
        finally:
            self.source.close()
        preview = self.preview
        preview.close(timeout=1.0)
        if preview.busy:  # a daemon thread still inside torch at exit would abort the interpreter
            self.say("waiting for the restoration under way to finish...")
            preview.close(timeout=300.0)
        stats = self.stats
        stats.seconds = time.perf_counter() - started
        stats.frames_captured = self.source.frames
        stats.dropped = self.display.dropped
        stats.restore_ms = list(preview.stats.restore_ms)
        stats.detect_ms = list(preview.stats.detect_ms)
        stats.restorations = preview.stats.restorations
