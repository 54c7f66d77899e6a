"""`vidrestore app`: the web door, driven as a user drives it — the server in a subprocess on a free loopback port,
the page in headless Chromium (Playwright, Debian's /usr/bin/chromium) or through the Gradio client, with the
marker restorer and a scripted detector (``--test-fakes``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from media import Clip, make_clip, pattern

gradio = pytest.importorskip("gradio", reason="the app extra is not installed (pip install -e '.[app]')")

from vidrestore.app.server import AppOptions, access_token, is_loopback  # noqa: E402
from vidrestore.app.uploads import UploadRefused, classify, safe_name  # noqa: E402
from vidrestore.errors import UsageError  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp")
START_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """``vidrestore app`` in a subprocess; stopped (then killed) in teardown."""

    def __init__(self, workdir: Path, *args: str, host: str = "127.0.0.1", env: dict | None = None) -> None:
        self.workdir, self.port = workdir, _free_port()
        self.log = workdir.parent / f"app-{self.port}.log"
        cmd = [sys.executable, "-m", "vidrestore", "app", "--host", host, "--port", str(self.port),
               "--workdir", str(workdir), *args]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                if line.startswith("vidrestore app: http"):
                    return line.split()[2]
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the app did not start: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@pytest.fixture
def start(tmp_path):
    servers: list[Server] = []

    def run(*args: str, workdir: Path | None = None, **kw) -> Server:
        server = Server(workdir or tmp_path / "work", *args, **kw)
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


def _jobs(workdir: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (workdir / "jobs").glob("*/job.json")),
                  key=lambda d: d["created"])


def _wait_jobs(workdir: Path, n: int, until, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            jobs = _jobs(workdir)
        except ValueError:  # never: job.json is replaced atomically; a retry only guards the test
            jobs = []
        if len(jobs) == n and until(jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"jobs did not get there in {timeout} s: {_jobs(workdir)}")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _magenta(rgb: np.ndarray) -> float:
    """Share of pixels the marker restorer painted (magenta)."""
    rgb = rgb.astype(int)
    return float(((rgb[..., 0] > 180) & (rgb[..., 2] > 180) & (rgb[..., 1] < 90)).mean())


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    photo = folder / "grandma.png"
    Image.fromarray(pattern(3, 240, 180)).save(photo)
    clip = make_clip(folder / "wedding.mp4", Clip(frames=48, width=160, height=120, fps=24))  # 2 s
    text = folder / "notes.jpg"
    text.write_text("shopping list: not a photo\n")
    return {"photo": photo, "clip": clip, "text": text}


# -- pure parts -----------------------------------------------------------------------------------------------------
def test_safe_names_cannot_leave_the_folder():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\Windows\\evil.png") == "evil.png"
    assert safe_name(".bashrc") == "bashrc"
    assert safe_name("a/b/..") == "upload"
    assert safe_name("Oma & Opa (1974).jpg") == "Oma _ Opa _1974_.jpg"
    assert safe_name("x" * 300 + ".mp4").endswith(".mp4") and len(safe_name("x" * 300 + ".mp4")) <= 120


def test_uploads_are_judged_by_content(media):
    assert classify(media["photo"], "p", 1 << 30) == "photo"
    assert classify(media["clip"], "c", 1 << 30) == "video"
    with pytest.raises(UploadRefused, match="notes.jpg is a text file"):
        classify(media["text"], "notes.jpg", 1 << 30)
    noise = media["text"].with_name("tape.mp4")
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UploadRefused, match="tape.mp4 is not a photo or a video"):
        classify(noise, "tape.mp4", 1 << 30)
    with pytest.raises(UploadRefused, match="MiB"):
        classify(media["clip"], "big.mp4", 100)


def test_non_loopback_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert access_token(AppOptions(host="127.0.0.1")) is None
    assert len(access_token(AppOptions(host="0.0.0.0"))) >= 16  # a fresh one
    with pytest.raises(UsageError, match="needs a token"):
        access_token(AppOptions(host="0.0.0.0", token=""))


def test_missing_weights_are_named_without_a_download(tmp_path, monkeypatch):
    from vidrestore.app.engine import EngineOptions, Models, Settings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VIDRESTORE_WEIGHTS", raising=False)
    monkeypatch.setenv("VIDRESTORE_WEIGHTS_URL", "http://127.0.0.1:9/")  # a download attempt would fail, not hang
    models = Models(EngineOptions(weights_dir=str(tmp_path / "w")))
    started = time.monotonic()
    message = models.missing(Settings())
    assert time.monotonic() - started < 10
    assert message and "GFPGANv1.4.pth" in message and str(tmp_path / "w") in message


# -- the running app ------------------------------------------------------------------------------------------------
def test_page_restores_a_photo_and_a_clip(start, media, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    before = {k: _sha(p) for k, p in media.items()}
    server = start("--test-fakes")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.set_default_timeout(60_000)
            page.goto(server.url)
            page.get_by_text("Restore", exact=True).wait_for()
            page.screenshot(path=str(SHOTS / "vidrestore_app_before.png"), full_page=True)
            # CodeFormer shows its fidelity and its licence note where it is chosen
            page.get_by_label("CodeFormer").check()
            page.get_by_text("non-commercial use only").wait_for()
            page.screenshot(path=str(SHOTS / "vidrestore_app_codeformer.png"), full_page=True)
            page.get_by_label("GFP-GAN 1.4").check()
            page.locator("#files input[type=file]").set_input_files([str(media["photo"]), str(media["clip"]),
                                                                     str(media["text"])])
            # uploaded: the list shows each name ("notes" ".jpg" in two spans) with its size
            playwright.expect(page.locator("#files")).to_contain_text(re.compile(r"notes\s*\.jpg\s*27"), timeout=60_000)
            page.locator("#restore").click()
            page.locator("#message").get_by_text("notes.jpg is a text file").wait_for()
            jobs = _wait_jobs(server.workdir, 2, lambda js: all(j["status"] == "done" for j in js))
            page.locator("#jobs").get_by_text("done").nth(1).wait_for()
            page.locator("#pick input").click()
            page.get_by_role("option", name="grandma.png", exact=False).click()
            page.locator("#slider img").first.wait_for()
            page.screenshot(path=str(SHOTS / "vidrestore_app_after.png"), full_page=True)
            page.locator("#pick input").click()
            page.get_by_role("option", name="wedding.mp4", exact=False).click()
            page.locator("#compare video").wait_for()
            page.screenshot(path=str(SHOTS / "vidrestore_app_after_video.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SHOTS / "vidrestore_app_failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert {k: _sha(p) for k, p in media.items()} == before  # the dropped files are never changed
    by_kind = {j["kind"]: j for j in jobs}
    photo_job, video_job = by_kind["photo"], by_kind["video"]
    folder = server.workdir / "jobs"
    from PIL import Image

    out = np.asarray(Image.open(folder / photo_job["id"] / photo_job["output"]).convert("RGB"))
    assert out.shape == (180, 240, 3) and _magenta(out) > 0.002  # the fake restorer's mark was pasted back
    frames = _frames(folder / video_job["id"] / video_job["output"])
    assert len(frames) == 48 and all(_magenta(f) > 0.002 for f in frames)
    compare = _frames(folder / video_job["id"] / video_job["compare"])
    assert len(compare) == 48 and compare[0].shape == (120, 320, 3)
    assert _magenta(compare[0][:, :160]) == 0 and _magenta(compare[0][:, 160:]) > 0.002  # before | after
    assert video_job["frames_done"] == video_job["frames_total"] == 48 and video_job["s_per_frame"] is not None
    # uploads and results stay inside the work folder
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".png", ".mp4", ".jpg"):
            assert path.is_relative_to(server.workdir) or path.parent == media["photo"].parent, path


def test_zip_and_refusal_through_the_api(start, media):
    from gradio_client import Client, handle_file

    server = start("--test-fakes")
    client = Client(server.url, verbose=False)
    message = client.predict([handle_file(str(media["photo"])), handle_file(str(media["text"]))], None,
                             "gfpgan-1.4", 0.5, 1.0, 2, False, api_name="/submit")[0]
    assert "Queued 1 file" in message and "Refused: notes.jpg is a text file" in message
    (job,) = _wait_jobs(server.workdir, 1, lambda js: js[0]["status"] == "done", timeout=60)
    from PIL import Image

    with Image.open(server.workdir / "jobs" / job["id"] / job["output"]) as img:
        assert img.size == (480, 360)  # upscaled x2
    bundle = Path(client.predict(api_name="/zip"))
    import zipfile

    with zipfile.ZipFile(bundle) as z:
        assert z.namelist() == ["grandma_restored.png"]


def test_restart_resumes_an_unfinished_video(start, media, tmp_path):
    from gradio_client import Client, handle_file

    workdir = tmp_path / "work"
    args = ("--test-fakes", "--test-delay", "0.1", "--segment-seconds", "0.5")
    first = start(*args, workdir=workdir)
    Client(first.url, verbose=False).predict([handle_file(str(media["clip"]))], None, "gfpgan-1.4", 0.5, 1.0, 1,
                                              False, api_name="/submit")
    deadline = time.monotonic() + 60
    while not list(workdir.glob("jobs/*/output/.vidrestore-work/*/seg_00000.json")):
        assert time.monotonic() < deadline, "no segment finished in 60 s"
        time.sleep(0.1)
    first.stop(signal.SIGKILL)  # a crash mid-video
    (job,) = _jobs(workdir)
    assert job["status"] == "running" and job["output"] is None
    second = start(*args, workdir=workdir)
    (job,) = _wait_jobs(workdir, 1, lambda js: js[0]["status"] == "done", timeout=90)
    assert job["runs"] == 2 and job["resumed_segments"] >= 1
    assert len(_frames(workdir / "jobs" / job["id"] / job["output"])) == 48
    with urllib.request.urlopen(second.url, timeout=10) as r:
        assert r.status == 200


def test_other_hosts_need_the_token(start, tmp_path):
    refused = subprocess.run(
        [sys.executable, "-m", "vidrestore", "app", "--host", "0.0.0.0", "--token", "", "--port", str(_free_port()),
         "--workdir", str(tmp_path / "w0")], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "needs a token" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    server = start("--test-fakes", host="0.0.0.0")
    assert "?token=" in server.url
    bare = server.url.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bare, timeout=10)
    assert err.value.code == 401
    with urllib.request.urlopen(server.url, timeout=10) as r:
        assert r.status == 200 and "vidrestore_token" in r.headers.get("set-cookie", "")


def test_missing_weights_are_shown_in_the_page(start, media, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from gradio_client import Client, handle_file

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "VIDRESTORE_WEIGHTS": "",
           "VIDRESTORE_WEIGHTS_URL": "http://127.0.0.1:9/"}  # a download attempt would fail at once, not hang
    server = start("--weights-dir", str(tmp_path / "weights"), env=env)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url)
            weights = page.locator("#weights")
            playwright.expect(weights).to_contain_text("GFPGANv1.4.pth", timeout=60_000)
            playwright.expect(weights).to_contain_text(str(tmp_path / "weights"))
        finally:
            browser.close()
    Client(server.url, verbose=False).predict([handle_file(str(media["photo"]))], None, "gfpgan-1.4", 0.5, 1.0, 1,
                                              False, api_name="/submit")
    (job,) = _wait_jobs(server.workdir, 1, lambda js: js[0]["status"] == "failed", timeout=60)
    assert "GFPGANv1.4.pth" in job["error"]
