"""The weights manager against a real HTTP server on 127.0.0.1 (no mocked network code).

Every test runs with HOME, XDG_CACHE_HOME and the checkout's weights folder pointed into tmp_path, so nothing
is ever written to the real ``weights/`` folder or the real ``~/.cache``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType

import pytest

import vidrestore.weights as w
from vidrestore.cli import weights as cli_weights
from vidrestore.errors import ChecksumError, WeightsError

REPO = Path(__file__).resolve().parents[1]
FAST = w.DownloadOptions(retries=3, backoff=0.01, timeout=5.0, chunk_size=16 * 1024)
PAYLOAD = random.Random(1234).randbytes(300_000)
OTHER = random.Random(99).randbytes(50_000)


# --------------------------------------------------------------------------------------------------------------
# A small file server: Range support and a few ways to misbehave


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` by base name. Modes: normal, cut (first request stops after ``cut_after`` bytes and
    drops the connection), wrong (one byte flipped), 404, ignore_range (always a full 200 answer)."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.mode = "normal"
        self.cut_after = 0
        self.lock = threading.Lock()
        self.requests: list[dict[str, str | int | None]] = []
        self.hold: threading.Event | None = None  # when set: every answer waits for it (at most 60 s)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/releases/download/v0"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        name = self.path.rsplit("/", 1)[-1]
        rng = self.headers.get("Range")
        with srv.lock:
            record: dict[str, str | int | None] = {"path": self.path, "range": rng, "status": None}
            srv.requests.append(record)
            first = len(srv.requests) == 1
        if srv.hold is not None:
            srv.hold.wait(60)
        if srv.mode == "404" or name not in srv.files:
            record["status"] = 404
            self.send_error(404, "Not Found")
            return
        data = srv.files[name]
        if srv.mode == "wrong":
            data = data[:-1] + bytes([data[-1] ^ 0x55])
        start = 0
        if rng and srv.mode != "ignore_range":
            assert rng.startswith("bytes=") and rng.endswith("-"), rng
            start = int(rng[6:-1])
            if start >= len(data):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        record["status"] = 206 if start else 200
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        if srv.mode == "cut" and first:
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


def _fake(name: str, data: bytes, **kw: object) -> w.WeightFile:
    fields = dict(
        name=name,
        url=f"https://example.invalid/releases/download/v0/{name}",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        licence="MIT (test)",
        licence_url="https://example.invalid/LICENSE",
        used_by="tests",
    )
    fields.update(kw)
    return w.WeightFile(**fields)  # type: ignore[arg-type]


FAKE = _fake("fake.pth", PAYLOAD)
NC = _fake(
    "nc.pth", OTHER, licence="Test Non-Commercial Licence", non_commercial=True,
    notice="nc.pth: TEST TERMS, non-commercial use only",
)
MD5_ONLY = _fake("md5only.pth", OTHER, size=None, sha256=None, md5=hashlib.md5(OTHER).hexdigest())
TEST_REGISTRY = MappingProxyType({e.name: e for e in (FAKE, NC, MD5_ONLY)})


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real checkout folder, home or cache; no inherited VIDRESTORE_* variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(w.ENV_DIRS, raising=False)
    monkeypatch.delenv(w.ENV_URL, raising=False)
    monkeypatch.setattr(w.locate, "CHECKOUT_WEIGHTS_DIR", tmp_path / "checkout-absent")
    return tmp_path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    srv = FileServer({"fake.pth": PAYLOAD, "nc.pth": OTHER, "md5only.pth": OTHER})
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(w.ENV_URL, srv.base_url)
    try:
        yield srv
    finally:
        if srv.hold is not None:
            srv.hold.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def _resolve(name: str, folder: Path | None = None, **kw: object) -> Path:
    kw.setdefault("registry", TEST_REGISTRY)
    kw.setdefault("options", FAST)
    kw.setdefault("progress", False)
    return w.resolve_weights(name, folder, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Registry and manifest


def test_registry_holds_every_official_file_and_is_read_only() -> None:
    assert list(w.REGISTRY) == [
        "GFPGANv1.3.pth", "GFPGANv1.4.pth", "detection_Resnet50_Final.pth", "detection_mobilenet0.25_Final.pth",
        "parsing_parsenet.pth", "RealESRGAN_x2plus.pth", "RealESRGAN_x4plus.pth", "codeformer.pth",
        "RestoreFormer.pth",
    ]
    with pytest.raises(TypeError):
        w.REGISTRY["x"] = FAKE  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.REGISTRY["codeformer.pth"].size = 1  # type: ignore[misc]
    cf = w.REGISTRY["codeformer.pth"]
    assert cf.non_commercial and "NTU S-Lab" in cf.licence and "non-commercial" in cf.notice.lower()
    assert [e.name for e in w.WEIGHT_FILES if e.non_commercial] == ["codeformer.pth"]
    rf = w.REGISTRY["RestoreFormer.pth"]
    assert rf.sha256 is None and rf.size is None and rf.md5 == "eaeeff6c4a1caa1673977cb374e6f699"
    assert w.REGISTRY["GFPGANv1.4.pth"].size == 348_632_874
    for e in w.WEIGHT_FILES:
        assert e.url.startswith("https://github.com/") and e.url.endswith("/" + e.name)
        assert e.sha256 is None or len(e.sha256) == 64
        assert e.licence and e.licence_url and e.used_by


def test_manifest_json_equals_the_registry() -> None:
    shipped = json.loads((REPO / "weights" / "manifest.json").read_text(encoding="utf-8"))
    assert shipped == json.loads(w.manifest_json()), (
        "weights/manifest.json is stale; regenerate it with: " + w.manifest_dict()["comment"]
    )


# --------------------------------------------------------------------------------------------------------------
# Download


def test_full_download_checks_sha256_and_leaves_no_part(server: FileServer, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    path = _resolve("fake.pth", folder)
    assert path == folder / "fake.pth"
    assert path.read_bytes() == PAYLOAD
    assert not (folder / "fake.pth.part").exists()
    assert [r["range"] for r in server.requests] == [None]
    # found now, without another request; the .pth suffix may be left out
    assert _resolve("fake", folder) == path
    assert len(server.requests) == 1


def test_download_resumes_with_range_after_the_connection_is_cut(server: FileServer, tmp_path: Path) -> None:
    server.mode = "cut"
    server.cut_after = 120_000
    folder = tmp_path / "w"
    path = _resolve("fake.pth", folder)
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    first, second = server.requests
    assert first["range"] is None
    rng = second["range"]
    assert isinstance(rng, str) and rng.startswith("bytes=") and rng.endswith("-")
    assert 0 < int(rng[6:-1]) <= server.cut_after
    assert second["status"] == 206
    assert not (folder / "fake.pth.part").exists()


def test_existing_part_is_resumed(server: FileServer, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "fake.pth.part").write_bytes(PAYLOAD[:100_000])
    assert _resolve("fake.pth", folder).read_bytes() == PAYLOAD
    assert [(r["range"], r["status"]) for r in server.requests] == [("bytes=100000-", 206)]


def test_server_ignoring_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.mode = "ignore_range"
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "fake.pth.part").write_bytes(b"\0" * 5000)  # not even the right prefix
    assert _resolve("fake.pth", folder).read_bytes() == PAYLOAD
    assert [(r["range"], r["status"]) for r in server.requests] == [("bytes=5000-", 200)]


def test_part_past_the_end_is_restarted_after_416(server: FileServer, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "md5only.pth.part").write_bytes(OTHER + b"extra")  # no size known, so the server must say
    assert _resolve("md5only.pth", folder).read_bytes() == OTHER
    assert [(r["range"], r["status"]) for r in server.requests] == [(f"bytes={len(OTHER) + 5}-", 416), (None, 200)]


def test_progress_bar_does_not_disturb_the_download(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _resolve("fake.pth", tmp_path / "w", progress=True)
    assert path.read_bytes() == PAYLOAD
    captured = capsys.readouterr()
    assert captured.out == "" and "fake.pth" in captured.err


def test_checksum_mismatch_raises_and_deletes_the_partial_file(server: FileServer, tmp_path: Path) -> None:
    server.mode = "wrong"
    folder = tmp_path / "w"
    with pytest.raises(ChecksumError) as info:
        _resolve("fake.pth", folder)
    msg = str(info.value)
    assert "\n" not in msg and "sha256" in msg and "deleted" in msg and FAKE.sha256 in msg  # type: ignore[operator]
    assert not (folder / "fake.pth").exists()
    assert not (folder / "fake.pth.part").exists()


def test_longer_file_than_published_is_refused_early(server: FileServer, tmp_path: Path) -> None:
    short = dataclasses.replace(FAKE, size=100_000)
    folder = tmp_path / "w"
    with pytest.raises(ChecksumError, match="expected 100,000"):
        _resolve("fake.pth", folder, registry={"fake.pth": short})
    assert len(server.requests) == 1
    assert not (folder / "fake.pth").exists() and not (folder / "fake.pth.part").exists()


def test_404_is_one_line_with_the_url_and_the_folder(server: FileServer, tmp_path: Path) -> None:
    server.mode = "404"
    folder = tmp_path / "w"
    with pytest.raises(WeightsError) as info:
        _resolve("fake.pth", folder)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{server.base_url}/fake.pth" in msg and "404" in msg and str(folder) in msg and "fake.pth" in msg
    assert len(server.requests) == 1  # a 404 is not retried
    assert not (folder / "fake.pth").exists()


def test_server_down_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:  # an ephemeral port that nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/w"
    monkeypatch.setenv(w.ENV_URL, base)
    folder = tmp_path / "w"
    with pytest.raises(WeightsError) as info:
        _resolve("fake.pth", folder)
    msg = str(info.value)
    assert "\n" not in msg and f"{base}/fake.pth" in msg and str(folder) in msg and "4 attempts" in msg
    assert not (folder / "fake.pth").exists()


def test_non_commercial_licence_is_shown_once(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    path = _resolve("nc.pth", folder)
    assert "TEST TERMS" in capsys.readouterr().err
    path.unlink()
    _resolve("nc.pth", folder)
    assert "TEST TERMS" not in capsys.readouterr().err
    _resolve("fake.pth", folder)
    assert "licence" not in capsys.readouterr().err


def test_md5_only_file_records_its_sha256(server: FileServer, tmp_path: Path) -> None:
    folder = tmp_path / "w"
    path = _resolve("md5only.pth", folder)
    assert path.read_bytes() == OTHER
    record = json.loads((folder / w.RECORD_NAME).read_text())
    assert record["files"]["md5only.pth"]["sha256"] == hashlib.sha256(OTHER).hexdigest()
    assert record["files"]["md5only.pth"]["size"] == len(OTHER)
    ok = w.verify_file(path, MD5_ONLY)
    assert ok.ok and "recorded" in ok.reason
    # the recorded size is now checked at lookup, the recorded sha256 by verify
    path.write_bytes(OTHER[:-1] + b"x")
    bad = w.verify_file(path, MD5_ONLY)
    assert not bad.ok and "sha256" in bad.reason
    path.write_bytes(OTHER + b"x")
    with pytest.raises(ChecksumError):
        _resolve("md5only.pth", folder)


def test_md5_only_file_with_wrong_md5_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.mode = "wrong"
    folder = tmp_path / "w"
    with pytest.raises(ChecksumError, match="md5"):
        _resolve("md5only.pth", folder)
    assert not (folder / "md5only.pth").exists() and not (folder / "md5only.pth.part").exists()
    assert not (folder / w.RECORD_NAME).exists()


def test_found_md5_only_file_is_checked_once_and_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "md5only.pth").write_bytes(OTHER)
    assert _resolve("md5only.pth", folder, download=False) == folder / "md5only.pth"
    assert "md5only.pth" in json.loads((folder / w.RECORD_NAME).read_text())["files"]
    other = tmp_path / "w2"
    other.mkdir()
    (other / "md5only.pth").write_bytes(b"not it")
    with pytest.raises(ChecksumError, match="md5"):
        _resolve("md5only.pth", other, download=False)


# --------------------------------------------------------------------------------------------------------------
# Lookup order and download folder


def _put(folder: Path, name: str = "fake.pth", data: bytes = PAYLOAD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    explicit = _put(tmp_path / "explicit", "my-own.pth", b"anything at all")
    arg = _put(tmp_path / "arg").parent
    env1, env2 = tmp_path / "env1", tmp_path / "env2"
    env1.mkdir()
    in_env = _put(env2)
    checkout = tmp_path / "checkout"
    in_checkout = _put(checkout)
    in_cache = _put(tmp_path / "xdg-cache" / "vidrestore" / "weights")
    monkeypatch.setenv(w.ENV_DIRS, os.pathsep.join([str(env1), str(env2)]))
    monkeypatch.setattr(w.locate, "CHECKOUT_WEIGHTS_DIR", checkout)

    assert _resolve(str(explicit), download=False) == explicit  # explicit path: taken as it is
    assert _resolve("fake.pth", arg, download=False) == arg / "fake.pth"  # argument beats env
    assert _resolve("fake.pth", download=False) == in_env  # env (second of two folders) beats checkout
    in_env.unlink()
    assert _resolve("fake.pth", download=False) == in_checkout  # checkout beats cache
    in_checkout.unlink()
    assert _resolve("fake.pth", download=False) == in_cache
    assert w.search_dirs() == (env1, env2, checkout, in_cache.parent)
    in_cache.unlink()
    with pytest.raises(WeightsError, match="not found") as info:
        _resolve("fake.pth", download=False)
    assert "\n" not in str(info.value)


def test_bare_name_is_not_taken_from_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    _put(cwd, data=b"whatever sits here")
    monkeypatch.chdir(cwd)
    with pytest.raises(WeightsError, match="not found"):
        _resolve("fake.pth", download=False)
    assert _resolve("./fake.pth", download=False) == Path("./fake.pth")  # a path is taken as it is


def test_cache_folder_follows_home_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert w.cache_dir() == tmp_path / "home" / ".cache" / "vidrestore" / "weights"


def test_download_goes_to_the_first_writable_folder(
    server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "xdg-cache" / "vidrestore" / "weights"
    assert _resolve("fake.pth") == cache / "fake.pth"  # no env, no checkout: the cache
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setattr(w.locate, "CHECKOUT_WEIGHTS_DIR", checkout)
    assert _resolve("nc.pth") == checkout / "nc.pth"  # an existing checkout folder comes first
    env = tmp_path / "env-new"  # created on demand
    monkeypatch.setenv(w.ENV_DIRS, str(env))
    assert _resolve("md5only.pth") == env / "md5only.pth"


def test_wrong_size_file_is_not_accepted(tmp_path: Path, server: FileServer) -> None:
    folder = tmp_path / "w"
    bad = _put(folder, data=PAYLOAD[:1000])
    with pytest.raises(ChecksumError) as info:
        _resolve("fake.pth", folder)
    msg = str(info.value)
    assert str(bad) in msg and "1,000" in msg and "\n" not in msg
    assert bad.read_bytes() == PAYLOAD[:1000]  # neither used nor silently overwritten
    assert server.requests == []


def test_unknown_names_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unknown weight file 'nope.pth'.*fake.pth"):
        _resolve("nope.pth")
    with pytest.raises(WeightsError, match="does not exist"):
        _resolve(str(tmp_path / "missing" / "fake.pth"))


def test_real_registry_error_names_the_official_url(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        w.resolve_weights("GFPGANv1.4", tmp_path / "w", download=False)
    assert "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth" in str(info.value)


# --------------------------------------------------------------------------------------------------------------
# Command line


def _cli(argv: list[str], **kw: object) -> int:
    return cli_weights.run(cli_weights.build_parser().parse_args(argv), **kw)  # type: ignore[arg-type]


def test_cli_list_shows_names_and_licences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    present = _put(tmp_path / "w", "detection_mobilenet0.25_Final.pth", b"x" * 10)
    assert _cli(["list", "--weights-dir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    for name in w.REGISTRY:
        assert name in out
    for licence in ("Apache-2.0", "MIT", "BSD-3-Clause", "NTU S-Lab License 1.0", "CC BY-NC-SA 4.0"):
        assert licence in out
    assert "NON-COMMERCIAL" in out and "wrong size" in out and str(present) in out


def test_cli_verify_detects_a_corrupted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = w.REGISTRY["detection_mobilenet0.25_Final.pth"]
    folder = tmp_path / "w"
    _put(folder, entry.name, b"\0" * entry.size)  # type: ignore[operator]  # right size, wrong bytes
    assert _cli(["verify", "--weights-dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and entry.name in out and "1 mismatch" in out
    # with a registry that knows these bytes it passes
    good = _fake(entry.name, b"\0" * entry.size)  # type: ignore[operator]
    assert _cli(["verify", entry.name, "--weights-dir", str(folder)], registry={entry.name: good}) == 0
    assert "0 mismatch" in capsys.readouterr().out


def test_cli_verify_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="weights fetch codeformer.pth"):
        _cli(["verify", "codeformer", "--weights-dir", str(tmp_path / "w")])


def test_cli_fetch(server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "w"
    _put(folder, "nc.pth", b"short")  # wrong size: replaced by fetch
    args = ["fetch", "--all", "--no-progress", "--weights-dir", str(folder)]
    assert _cli(args, registry=TEST_REGISTRY, options=FAST) == 0
    assert (folder / "fake.pth").read_bytes() == PAYLOAD
    assert (folder / "nc.pth").read_bytes() == OTHER
    assert (folder / "md5only.pth").read_bytes() == OTHER
    capsys.readouterr()
    assert _cli(["fetch", "fake", "--weights-dir", str(folder)], registry=TEST_REGISTRY, options=FAST) == 0
    assert "present" in capsys.readouterr().out
    assert len(server.requests) == 3
    with pytest.raises(WeightsError, match="unknown"):
        _cli(["fetch", "nope", "--weights-dir", str(folder)], registry=TEST_REGISTRY, options=FAST)
    with pytest.raises(WeightsError, match="--all"):
        _cli(["fetch", "--weights-dir", str(folder)], registry=TEST_REGISTRY, options=FAST)


# --------------------------------------------------------------------------------------------------------------
# Two processes, one download (the lock); every missing file named at once


_CHILD = """
import sys
import vidrestore.weights as w
folder, size, sha = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entry = w.WeightFile(name="fake.pth", url="https://example.invalid/releases/download/v0/fake.pth", size=size,
                     sha256=sha, licence="MIT (test)", licence_url="https://example.invalid/LICENSE")
opts = w.DownloadOptions(retries=1, backoff=0.01, timeout=30.0, chunk_size=16 * 1024)
print(w.resolve_weights("fake.pth", folder, registry={entry.name: entry}, progress=False, options=opts))
"""


def _drain(stream: object, lines: list[str], seen: threading.Event, marker: str) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        if marker in line:
            seen.set()


def test_two_processes_fetching_one_file_download_it_once(server: FileServer, tmp_path: Path) -> None:
    folder = tmp_path / "shared-weights"
    server.hold = threading.Event()  # the first answer waits until the other process is seen waiting
    args = [sys.executable, "-c", _CHILD, str(folder), str(FAKE.size), FAKE.sha256]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for _ in range(2)
    ]
    out: list[list[str]] = [[], []]
    err: list[list[str]] = [[], []]
    waiting = threading.Event()
    done = threading.Event()
    readers = [
        threading.Thread(target=_drain, args=(p.stdout, out[i], done, "fake.pth"), daemon=True)
        for i, p in enumerate(procs)
    ] + [
        threading.Thread(target=_drain, args=(p.stderr, err[i], waiting, "waiting for another process"), daemon=True)
        for i, p in enumerate(procs)
    ]
    for t in readers:
        t.start()
    try:
        assert waiting.wait(60), f"no process waited for the other: {err}"
        assert len(server.requests) == 1  # the first is still held inside its download
        server.hold.set()
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        server.hold.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    for t in readers:
        t.join(10)
        assert not t.is_alive()
    assert codes == [0, 0], err
    assert len(server.requests) == 1 and server.requests[0]["status"] == 200
    paths = {"".join(o).strip() for o in out}
    assert paths == {str(folder / "fake.pth")}
    assert (folder / "fake.pth").read_bytes() == PAYLOAD
    assert not (folder / "fake.pth.part").exists()


def test_a_lock_held_elsewhere_is_waited_for_then_the_file_is_verified(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from filelock import FileLock

    folder = tmp_path / "w"
    folder.mkdir()
    held = threading.Event()

    def finish_elsewhere() -> None:  # what the other process does while it holds the lock
        with FileLock(str(folder / ".fake.pth.lock")):
            held.set()
            time.sleep(w.LOCK_NOTICE_AFTER + 0.3)
            (folder / "fake.pth").write_bytes(PAYLOAD)

    t = threading.Thread(target=finish_elsewhere, daemon=True)
    t.start()
    assert held.wait(10)
    assert w.download_weights(FAKE, folder, progress=False, options=FAST) == folder / "fake.pth"
    t.join(10)
    assert server.requests == []  # nothing downloaded: the finished file passed its sha256 check
    assert "waiting for another process that is downloading fake.pth" in capsys.readouterr().err


def test_a_bad_file_left_by_another_process_is_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    folder = _put(tmp_path / "w", "fake.pth", bytes(len(PAYLOAD))).parent  # right size, wrong bytes
    assert w.download_weights(FAKE, folder, progress=False, options=FAST).read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_missing_files_are_all_named_in_one_message(server: FileServer, tmp_path: Path) -> None:
    server.mode = "404"
    folder = tmp_path / "w"
    _put(folder, "nc.pth", OTHER)  # present: not named
    with pytest.raises(WeightsError) as info:
        w.resolve_many(["fake", "nc.pth", "md5only.pth"], folder, registry=TEST_REGISTRY, options=FAST,
                       progress=False)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("2 weight file(s) missing")
    for name in ("fake.pth", "md5only.pth"):
        assert f"{name} from {server.base_url}/{name}" in msg
    assert "nc.pth" not in msg.split("(problems")[0].replace("md5only", "")
    assert f"Put each in {folder}" in msg and "weights fetch fake.pth md5only.pth" in msg and "HTTP 404" in msg
    assert len(server.requests) == 2  # each missing file was tried; the present one was not fetched
    found = w.resolve_many(["nc"], folder, registry=TEST_REGISTRY, download=False)
    assert found == {"nc": folder / "nc.pth"}


def test_a_run_resolves_every_file_it_needs_before_starting(server: FileServer, tmp_path: Path) -> None:
    from vidrestore.restorers import resolve_run_weights, run_weight_files

    needed = run_weight_files("gfpgan-1.4", "retinaface_resnet50", parse=True, upscale=2)
    assert needed == ["RealESRGAN_x2plus.pth", "GFPGANv1.4.pth", "detection_Resnet50_Final.pth",
                      "parsing_parsenet.pth"]
    assert run_weight_files("codeformer", str(tmp_path / "mine.pth"), upscale=4) == [
        "RealESRGAN_x4plus.pth", "codeformer.pth"]
    assert run_weight_files("none", None, parse=False, upscale=2, bg_upsampler="lanczos") == []
    assert run_weight_files(None, "retinaface_mobile0.25") == ["detection_mobilenet0.25_Final.pth"]
    with pytest.raises(WeightsError) as info:  # nothing served: all four named in one message
        resolve_run_weights(tmp_path / "w", model="gfpgan-1.4", detector="retinaface_resnet50", parse=True,
                            upscale=2)
    msg = str(info.value)
    assert msg.startswith("4 weight file(s) missing") and "\n" not in msg
    for name in needed:
        assert f"{server.base_url}/{name}" in msg
    assert len(server.requests) == 4


def test_cli_fetch_all_offline_tries_every_file_and_lists_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused, like a machine offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(w.ENV_URL, f"http://127.0.0.1:{port}/x")
    folder = tmp_path / "w"
    _put(folder, "nc.pth", OTHER)
    with pytest.raises(WeightsError) as info:
        _cli(["fetch", "--all", "--no-progress", "--weights-dir", str(folder)], registry=TEST_REGISTRY,
             options=FAST)
    assert str(info.value).startswith("2 of 3 weight file(s) could not be fetched: fake.pth, md5only.pth")
    out = capsys.readouterr().out
    assert "nc.pth: present" in out
    for name in ("fake.pth", "md5only.pth"):
        assert f"  {name}: download http://127.0.0.1:{port}/x/{name} into {folder}" in out


def test_load_detector_takes_a_checkpoint_path(tmp_path: Path) -> None:
    import torch

    from vidrestore.errors import CheckpointError
    from vidrestore.faces.detect import load_detector
    from vidrestore.models.retinaface import RetinaFace

    torch.manual_seed(0)
    own = tmp_path / "my detectors" / "tuned.pth"  # a user's own file: its name says nothing about the backbone
    own.parent.mkdir()
    torch.save(RetinaFace("mobile0.25").state_dict(), own)
    det = load_detector(str(own), device="cpu", backend="torch")  # a string, as the command line passes it
    assert det.backbone == "mobile0.25"
    assert torch.equal(det.model.state_dict()["body.stage1.0.0.weight"],
                       torch.load(own, weights_only=True)["body.stage1.0.0.weight"])
    with pytest.raises(CheckpointError, match="no such detector checkpoint file"):
        load_detector(str(tmp_path / "absent.pth"), device="cpu")
    with pytest.raises(WeightsError, match="retinaface_resnet50.*or give a RetinaFace .pth file"):
        load_detector("retinaface_resnet18", device="cpu")
