"""vidrestore live: pacing, the non-blocking preview, recording, the HTTP preview, the window, lost sources.

Every test is bounded: sessions run with ``--duration`` or a stop event, subprocesses with timeouts, HTTP
reads with socket timeouts. The window test needs Xvfb (apt: xvfb; xdotool and x11-apps for keys and the
screenshot), the page test Chromium; each skips cleanly where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidrestore.errors import MediaError, UsageError
from vidrestore.faces.align import align_face
from vidrestore.faces.face import Face
from vidrestore.live import (
    LiveOptions,
    LivePreview,
    Mailbox,
    box_mask,
    parse_source,
    reproject,
    run_live,
)
from vidrestore.live.server import parse_address
from vidrestore.live.window import display_problem
from vidrestore.media.source import Frame
from vidrestore.testing import NoiseIdentityRestorer, SquareDetector

from media import Audio, Clip, make_clip, pattern

REPO = Path(__file__).resolve().parents[1]
W, H, FPS = 160, 120, 24


# ------------------------------------------------------------------------------------------------ fakes


class SlowInverter:
    """A restorer that takes ``delay`` seconds per call and returns the negative of each face."""

    device = "cpu"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    def restore(self, faces):
        time.sleep(self.delay)
        self.calls += 1
        return 255 - faces


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("live") / "clip.mp4",
                     Clip(frames=2 * FPS, width=W, height=H, fps=FPS, audio=[Audio()]))


def _frame(i: int, rgb: np.ndarray) -> Frame:
    from fractions import Fraction

    f = Frame(index=i, pts=i * 1000, time_base=Fraction(1, 24000), duration=1000, rgb=rgb)
    f.meta["captured"] = time.perf_counter()
    return f


# ------------------------------------------------------------------------------------------------ pure parts


def test_mailbox_keeps_only_the_newest():
    box = Mailbox()
    for i in range(5):
        box.put(i)
    assert box.get(timeout=0.1) == 4 and box.dropped == 4
    assert box.get(timeout=0.01) is None
    box.put(7)
    box.close()
    assert box.get(timeout=0.01) == 7 and box.finished


def test_reproject_puts_the_crop_back_where_it_came_from():
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (9, 9), 3)
    lm = np.array([[140, 110], [180, 110], [160, 135], [145, 160], [175, 160]], np.float32)
    crop, aff = align_face(frame, lm)
    out = np.zeros_like(frame)
    assert reproject(out, crop, np.ones((512, 512), np.float32), aff)
    core = (slice(115, 150), slice(145, 175))
    assert np.abs(out[core].astype(int) - frame[core]).mean() < 3.0
    assert out[:20, :20].max() == 0  # far from the face nothing is touched
    m = box_mask()
    assert m.shape == (512, 512) and m[256, 256] == pytest.approx(1.0) and m[0, 0] < 1e-3


def test_preview_reprojects_the_cached_face_onto_the_current_frame():
    rgbs = [pattern(i, W, H) for i in range(12)]
    preview = LivePreview(SquareDetector(), SlowInverter(0.0), threaded=False)
    for i, rgb in enumerate(rgbs[:6]):
        preview.submit(_frame(i, rgb))
    shown = preview.render(_frame(5, rgbs[5]))
    square = (rgbs[5] > 240).all(axis=-1)
    # the white square is restored (inverted) where it is now; far away the frame is untouched
    assert shown[square].mean() < 60
    assert np.array_equal(shown[-10:, :], rgbs[5][-10:, :])
    preview.toggle_split()
    split = preview.render(_frame(5, rgbs[5]))
    assert np.array_equal(split[:, : W // 2 - 1], rgbs[5][:, : W // 2 - 1])


class ScriptedFaces:
    """A detector that follows a script: track k is a face at slot ``k % 6`` for ``life`` frames from frame ``every*k``.

    At most ``ceil(life / every)`` scripted faces are on screen at once; ``tracks`` faces come and go in all.
    """

    def __init__(self, tracks: int = 50, every: int = 4, life: int = 10) -> None:
        self.tracks, self.every, self.life = tracks, every, life
        self.frame = 0

    def on_screen(self, i: int) -> list[int]:
        return [k for k in range(self.tracks) if self.every * k <= i < self.every * k + self.life]

    @property
    def frames(self) -> int:
        return self.every * (self.tracks - 1) + self.life

    def detect(self, frames):
        out = []
        for _ in frames:
            faces = []
            for k in self.on_screen(self.frame):
                x0, y0 = 10 + 50 * (k % 6), 40
                lm = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]]) * 40 + [x0, y0]
                faces.append(Face(box=[x0, y0, x0 + 40, y0 + 40], landmarks=lm, score=0.99))
            out.append(faces)
            self.frame += 1
        return out


class OnesParser:
    def face_masks(self, crops):
        return np.ones((len(crops), 512, 512), np.float32)


def _assert_bounded(preview: LivePreview, threaded: bool) -> dict:
    sizes = preview.per_track_entries()
    live = sizes.pop("live_tracks")
    assert live <= 5, sizes  # <= 3 faces on screen at once, plus tracks coasting before they end
    for name, n in sizes.items():
        if threaded:  # the restorer may hold the tracks of the job under way (<= 3) besides those it kept
            assert n <= 5 + 3, (name, n, live, sizes)
        else:
            assert n <= live + 2, (name, n, live, sizes)
    return sizes


@pytest.mark.parametrize("threaded", [False, True])
def test_per_track_state_stays_bounded_as_50_tracks_come_and_go(threaded):
    detector, restorer = ScriptedFaces(tracks=50), NoiseIdentityRestorer()
    preview = LivePreview(detector, restorer, OnesParser(), threaded=threaded)
    rgb = np.full((240, 320, 3), 100, np.uint8)
    cut_at = detector.frames // 2
    peak: dict = {}
    deadline = time.monotonic() + 120
    with preview:
        for i in range(detector.frames + 12):  # + frames without faces: every track ends
            frame = _frame(i, rgb)
            if i == cut_at:
                frame.meta["cut"] = True  # a scene cut while faces are on screen
            preview.submit(frame)
            if threaded:  # let the workers keep up with the script (bounded)
                while preview._to_detect._full and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(0.004)
            preview.render(frame)
            for name, n in _assert_bounded(preview, threaded).items():
                peak[name] = max(peak.get(name, 0), n)
            if i == cut_at and not threaded:  # nothing of the previous scene survives the cut
                assert preview.per_track_entries()["cache"] == 0
        assert time.monotonic() < deadline, "the workers did not keep up"
        if threaded:  # the restorer drops the state of ended tracks on its own, without a new face
            end = time.monotonic() + 10
            while preview.per_track_entries()["held"] and time.monotonic() < end:
                time.sleep(0.01)
    assert not preview.busy
    assert len(restorer.seen) >= (30 if threaded else 50)  # ~50 different tracks were restored (threaded: some skipped)
    assert peak["noise"] >= 2 and peak["blend"] >= 2 and peak["masks"] >= 2  # the state was really used
    final = preview.per_track_entries()
    assert all(n == 0 for n in final.values()), final


@pytest.mark.parametrize("width", [160, 640, 1280])
def test_hud_text_is_clean_and_legible(width):
    """One pass of white text on a dark panel: no stray dark glyphs (OpenCV 5 garbled the thick-outline HUD)."""
    from vidrestore.live import draw_hud, hud_lines

    lines = hud_lines({"source_fps": 25.0, "shown_fps": 24.9, "restore_ms": 512.3, "faces": 2,
                        "split": True, "recording": True})
    frame = np.full((width * 3 // 4, width, 3), 200, np.uint8)
    hud = draw_hud(frame.copy(), lines)
    ys, xs = np.nonzero((hud != frame).any(axis=-1))
    assert xs.max() < min(width, 300) and ys.max() < 60  # only a small corner is touched
    panel = hud[: ys.max() + 1, : xs.max() + 1]
    assert np.median(panel) < 100  # a dark panel behind the text
    text = (panel >= 150).all(axis=-1)
    assert text.sum() > 200 * len(lines) * min(1.0, width / 640)  # the text is there
    # no dark glyphs beside the white ones (OpenCV 5 draws a thick outline with wider glyphs: black blobs)
    near_text = cv2.dilate((hud >= 150).all(axis=-1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not ((hud < 30).all(axis=-1) & ~near_text).any()
    # the lines do not overlap: rows holding text form one band per line, with a gap between them
    rows = text.any(axis=1).astype(np.int8)
    assert int((np.diff(rows) == 1).sum() + rows[0]) == len(lines)
    # a view (not contiguous) is drawn on a copy and returned, not lost
    view = frame[:, ::-1]
    drawn = draw_hud(view, lines)
    assert np.array_equal(drawn, hud) and (view == 200).all()


def test_parse_source_and_address(tmp_path):
    assert parse_source("0", platform="linux").target == "/dev/video0"
    assert parse_source("2", platform="linux").format == "v4l2"
    assert parse_source("0", platform="darwin").format == "avfoundation"
    with pytest.raises(UsageError, match="dshow"):
        parse_source("0", platform="win32")
    rtsp = parse_source("rtsp://cam.local/stream")
    assert rtsp.kind == "stream" and ("rtsp_transport", "tcp") in rtsp.options
    assert parse_source("http://127.0.0.1:9/x.mjpg").kind == "stream"
    with pytest.raises(MediaError, match="no such file"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_source("0", options=["oops"])
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:81") == ("0.0.0.0", 81)
    assert parse_address("[::1]:82") == ("::1", 82)
    with pytest.raises(UsageError):
        parse_address("host:port")
    assert display_problem({}, "linux") is not None
    assert display_problem({"DISPLAY": ":1"}, "linux") is None
    assert "XWayland" in display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert display_problem({}, "darwin") is None


# ------------------------------------------------------------------------------------------------ sessions


def test_file_plays_in_real_time_in_order_and_records_with_audio(clip, tmp_path):
    shown = []
    out = tmp_path / "rec.mp4"
    stats = run_live(LiveOptions(source=str(clip), window=False, model="none", record=str(out)),
                     on_shown=lambda f, s: shown.append(f.index), notice=lambda m: None)
    assert stats.end == "end"
    assert 1.8 <= stats.seconds <= 2.8, stats.seconds  # the clip lasts 2 s
    assert shown == sorted(shown) and len(set(shown)) == len(shown) and stats.out_of_order == 0
    assert len(shown) >= 2 * FPS - 2
    assert stats.recordings == [out] and not list(tmp_path.glob(".*partial*"))
    with av.open(str(out)) as c:
        kinds = {s.type: s for s in c.streams}
        assert set(kinds) == {"video", "audio"}
        assert kinds["video"].frames == len(shown)
        assert float(kinds["audio"].duration * kinds["audio"].time_base) == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize("suffix,codec", [(".mp4", "aac"), (".mkv", "pcm_s16le")])
def test_recording_takes_the_sinks_audio_rules(tmp_path, suffix, codec):
    """PCM audio cannot go into MP4 as it is: the recorder converts it to AAC with the file door's notice
    (it used to drop it); Matroska holds it, so it is copied."""
    src = make_clip(tmp_path / "pcm.mkv", Clip(frames=FPS, width=W, height=H, fps=FPS,
                                               audio=[Audio(codec="pcm_s16le")]))
    out = tmp_path / f"rec{suffix}"
    notices: list[str] = []
    stats = run_live(LiveOptions(source=str(src), window=False, model="none", record=str(out)),
                     notice=notices.append)
    assert stats.end == "end" and stats.recordings == [out]
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == codec
        samples = sum(f.samples for f in c.decode(audio))
    assert samples / audio.rate == pytest.approx(1.0, abs=0.1)
    converted = [m for m in notices if "converting it to AAC" in m]
    assert len(converted) == (1 if codec == "aac" else 0), notices
    assert not any("without audio" in m for m in notices)


def test_slow_restorer_does_not_slow_the_preview(clip):
    restorer = SlowInverter(0.25)
    shown, changed = [], []

    def on_shown(frame, rgb):
        shown.append(frame.index)
        changed.append(not np.array_equal(rgb, frame.rgb))

    stats = run_live(LiveOptions(source=str(clip), window=False), detector=SquareDetector(), restorer=restorer,
                     on_shown=on_shown, notice=lambda m: None)
    assert shown == sorted(shown) and len(set(shown)) == len(shown)
    assert len(shown) >= 0.9 * 2 * FPS  # shown at the source rate although each restoration takes 6 frames
    assert stats.shown_fps == pytest.approx(FPS, rel=0.15)
    assert 2 <= restorer.calls <= 10
    assert min(stats.restore_ms) >= 250
    assert sum(changed) >= len(shown) // 2  # the cached face is pasted between restorations
    assert float(np.median(stats.latency_ms)) < 30  # capture → shown, never waiting for the model


def test_http_preview_serves_mjpeg_and_toggles(clip):
    stop = threading.Event()
    started = threading.Event()
    holder: dict = {}

    def on_start(server):
        holder["server"] = server
        started.set()

    def session():
        try:
            holder["stats"] = run_live(LiveOptions(source=str(clip), loop=True, window=False, model="none",
                                                   serve="127.0.0.1:0", duration=20),
                                       stop=stop, on_start=on_start, notice=lambda m: None)
        except BaseException as exc:  # noqa: BLE001
            holder["error"] = exc
            started.set()

    t = threading.Thread(target=session, daemon=True)
    t.start()
    try:
        assert started.wait(15) and "error" not in holder
        url = holder["server"].url
        assert url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "/stream.mjpg" in page and "/toggle" in page
        with urllib.request.urlopen(url + "stream.mjpg", timeout=5) as resp:
            assert resp.headers.get_content_type() == "multipart/x-mixed-replace"
            assert "boundary=frame" in resp.headers["Content-Type"]
            for _ in range(3):
                assert resp.readline().strip() == b"--frame"
                headers = {}
                while (line := resp.readline().strip()):
                    k, v = line.decode().split(":", 1)
                    headers[k.lower()] = v.strip()
                assert headers["content-type"] == "image/jpeg"
                jpeg = resp.read(int(headers["content-length"]))
                img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert img is not None and img.shape == (H, W, 3)
                assert resp.readline() == b"\r\n"
        req = urllib.request.Request(url + "toggle", method="POST", data=b"")
        assert json.loads(urllib.request.urlopen(req, timeout=5).read())["split"] is True
        status = json.loads(urllib.request.urlopen(url + "status", timeout=5).read())
        assert status["split"] is True and status["source_fps"] > 0
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive() and "error" not in holder
    with pytest.raises(OSError):  # the socket is closed
        urllib.request.urlopen(url, timeout=2)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_page_renders_in_headless_chromium(clip, tmp_path):
    stop = threading.Event()
    started = threading.Event()
    holder: dict = {}

    def session():
        holder["stats"] = run_live(LiveOptions(source=str(clip), loop=True, window=False, model="none",
                                               serve="127.0.0.1:0", duration=40),
                                   stop=stop, on_start=lambda s: (holder.update(server=s), started.set()),
                                   notice=lambda m: None)

    t = threading.Thread(target=session, daemon=True)
    t.start()
    shot = tmp_path / "page.png"
    try:
        assert started.wait(15)
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
               "--window-size=400,300", "--timeout=3000", f"--screenshot={shot}", holder["server"].url]
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    finally:
        stop.set()
        t.join(10)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 100
    # the stream's colourful frame is on the page (the page itself is grey on black)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    assert (hsv[..., 1] > 80).mean() > 0.05


def test_truncated_source_stops_with_a_message(tmp_path):
    path = make_clip(tmp_path / "long.mp4", Clip(frames=3 * FPS, width=W, height=H, fps=FPS))
    size = path.stat().st_size

    def cut():
        time.sleep(0.4)
        os.truncate(path, size // 3)

    threading.Thread(target=cut, daemon=True).start()
    shown = []
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="stopped") as info:
        run_live(LiveOptions(source=str(path), window=False, model="none", record=str(tmp_path / "r.mkv")),
                 on_shown=lambda f, s: shown.append(f.index), notice=lambda m: None)
    assert time.perf_counter() - t0 < 5
    assert "\n" not in str(info.value)
    assert 0 < len(shown) < 3 * FPS
    assert (tmp_path / "r.mkv").is_file()  # what was shown is kept


def test_deleted_source_stops_at_the_loop_with_a_message(tmp_path):
    path = make_clip(tmp_path / "short.mp4", Clip(frames=FPS // 2, width=W, height=H, fps=FPS))

    def remove():
        time.sleep(0.2)
        path.unlink()

    threading.Thread(target=remove, daemon=True).start()
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="reopened"):
        run_live(LiveOptions(source=str(path), loop=True, window=False, model="none"), notice=lambda m: None)
    assert time.perf_counter() - t0 < 5


def test_loop_keeps_times_increasing(clip):
    times = []
    stats = run_live(LiveOptions(source=str(clip), loop=True, window=False, model="none", duration=2.6),
                     on_shown=lambda f, s: times.append(f.time), notice=lambda m: None)
    assert stats.end == "duration" and stats.frames_captured > 2 * FPS
    assert all(b > a for a, b in zip(times, times[1:]))


def _env_without_display() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def _live_command() -> list[str]:
    """The command as users type it: ``vidrestore live``."""
    return [sys.executable, "-m", "vidrestore", "live"]


def test_no_display_prints_one_line(clip):
    proc = subprocess.run(_live_command() + ["--source", str(clip), "--model", "none"],
                          env=_env_without_display(), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--serve" in lines[0] and "display" in lines[0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_works_without_a_display(clip, sig):
    """The README's example, ``vidrestore live --source clip.mp4 --serve PORT``, with no display and no --no-window."""
    port = _free_port()
    proc = subprocess.Popen(_live_command() + ["--source", str(clip), "--loop", "--model", "none",
                                               "--serve", f"127.0.0.1:{port}", "--duration", "90"],
                            env=_env_without_display(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        page, deadline = None, time.monotonic() + 60  # imports are slow on a busy 2-core machine
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        assert page is not None, f"no page at {url}; exit {proc.poll()}"
        assert "/stream.mjpg" in page
        jpeg = urllib.request.urlopen(url + "snapshot.jpg", timeout=5).read()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (H, W, 3) and img.max() > 100
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "no display" in err and "no window" in err
    assert f"serving the preview at {url}" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted:" if sig == signal.SIGINT else "stopped:"), err
    assert " frames shown in " in last


# ------------------------------------------------------------------------------------------------ the window


def _read_xwd(data: bytes) -> np.ndarray:
    """An ``xwd -root`` dump (ZPixmap, 24/32 bpp TrueColor) → RGB array."""
    hdr = struct.unpack(">25I", data[:100])
    header_size, width, height = hdr[0], hdr[4], hdr[5]
    bpp, bpl, ncolors = hdr[11], hdr[12], hdr[19]
    red_mask, green_mask, blue_mask = hdr[14], hdr[15], hdr[16]
    byte_order = hdr[7]
    start = header_size + 12 * ncolors
    nbytes = bpp // 8
    assert nbytes in (3, 4), f"unexpected xwd depth {bpp}"
    raw = np.frombuffer(data[start : start + bpl * height], np.uint8).reshape(height, bpl)
    raw = raw[:, : width * nbytes].reshape(height, width, nbytes).astype(np.uint32)
    order = range(nbytes) if byte_order == 0 else range(nbytes - 1, -1, -1)  # 0: LSBFirst
    px = sum(raw[..., b] << (8 * k) for k, b in enumerate(order))

    def chan(mask):
        shift = (mask & -mask).bit_length() - 1
        return ((px & mask) >> shift).astype(np.uint8)

    return np.stack([chan(red_mask), chan(green_mask), chan(blue_mask)], axis=-1)


@pytest.fixture
def xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install -y xvfb xdotool x11-apps)")
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        ready = b""
        deadline = time.monotonic() + 10
        while not ready.endswith(b"\n") and time.monotonic() < deadline:
            import select

            if select.select([r], [], [], 0.5)[0]:
                chunk = os.read(r, 16)
                if not chunk:
                    break
                ready += chunk
        if not ready.strip():
            pytest.skip("Xvfb did not start")
        yield f":{ready.decode().strip()}"
    finally:
        os.close(r)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _screen(display: str) -> np.ndarray:
    dump = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True,
                          timeout=20, check=True).stdout
    return _read_xwd(dump)


def test_window_under_xvfb_shows_frames_and_takes_keys(clip, tmp_path, xvfb):
    env = _env_without_display()
    env["DISPLAY"] = xvfb
    env["QT_LOGGING_RULES"] = "*.debug=false;qt.qpa.*=false"
    keys = shutil.which("xdotool") is not None
    proc = subprocess.Popen(
        _live_command() + ["--source", str(clip), "--loop", "--model", "none",
         "--save-dir", str(tmp_path), "--duration", "40" if keys else "10"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if shutil.which("xwd"):  # the screen shows the window's frames within 40 s (imports are slow on 2 cores)
            deadline = time.monotonic() + 40
            lit = 0.0
            while time.monotonic() < deadline and proc.poll() is None:
                screen = _screen(xvfb)
                assert screen.shape[:2] == (480, 640)
                lit = (screen.max(axis=-1) > 30).mean()
                if lit > 0.02:
                    break
                time.sleep(0.5)
            if proc.poll() is not None:
                pytest.fail(f"vidrestore live exited early: {proc.stderr.read()[-500:]}")
            assert lit > 0.02, "the screen stayed black: no window content"
        if keys:
            xdo = ["xdotool", "search", "--sync", "--onlyvisible", "--name", "vidrestore live"]
            wid = subprocess.run(xdo, env=env, capture_output=True, text=True, timeout=40).stdout.split()
            assert wid, "no vidrestore window"
            time.sleep(0.5)
            for key in ("s", "q"):
                # no window manager under Xvfb: focus the window directly (windowactivate needs a WM)
                subprocess.run(["xdotool", "windowfocus", "--sync", wid[-1], "key", key], env=env,
                               capture_output=True, timeout=10)
                time.sleep(0.7)
        out, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    if keys:
        assert "quit:" in err, err
        shots = sorted(tmp_path.glob("vidrestore-live-*.png"))
        assert shots, err
        img = cv2.imread(str(shots[0]))
        assert img.shape == (H, W, 3) and img.max() > 100
