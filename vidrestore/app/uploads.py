"""What the page accepts: each uploaded file is checked (size, then what it really is: a photo Pillow opens or a
video FFmpeg probes, whatever its name says) and copied under the job's folder with a safe name. The uploaded
file itself is only read."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import VidrestoreError

_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadRefused(VidrestoreError):
    """An upload the page does not take; the message names the file and says why, in one line."""


@dataclass(frozen=True)
class Upload:
    name: str  # the safe file name it is stored under
    kind: str  # photo | video
    path: Path  # its copy inside the work folder


def safe_name(name: str) -> str:
    """The last component of ``name`` (either slash), with anything but letters, digits, ``._ -`` replaced and
    no leading dots: a name that cannot leave the folder it is put in."""
    base = PureWindowsPath(PurePosixPath(str(name)).name).name
    base = _SAFE.sub("_", base).strip(" ").lstrip(".")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 110] + dot + ext[:9]) if dot else base[:120]
    return base or "upload"


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_photo(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for "not an image"
        return False


def _is_video(path: Path) -> bool:
    from ..batch.discover import NOT_VIDEO_FORMATS  # FFmpeg takes text for "tty" video, stills for 1-frame ones
    from ..media.probe import probe

    try:
        info = probe(path)
    except VidrestoreError:
        return False
    return not (info.format in NOT_VIDEO_FORMATS or info.format.endswith("_pipe"))


def classify(path: Path, shown: str, max_bytes: int) -> str:
    """``photo`` or ``video``; :class:`UploadRefused` for anything else, with the reason."""
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadRefused(f"{shown} is {size / 2**20:.0f} MiB; files up to {max_bytes / 2**20:.0f} MiB are taken")
    if size == 0:
        raise UploadRefused(f"{shown} is empty")
    if _is_photo(path):
        return "photo"
    if _is_video(path):
        return "video"
    if _looks_like_text(path):
        raise UploadRefused(f"{shown} is a text file, not a photo or a video; it was not taken")
    raise UploadRefused(f"{shown} is not a photo or a video that can be read; it was not taken")


def admit(src: str | Path, folder: Path, max_bytes: int) -> Upload:
    """Check ``src`` and copy it into ``folder`` (created) under its safe name."""
    src = Path(src)
    name = safe_name(src.name)
    kind = classify(src, name, max_bytes)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    if dst.resolve().parent != folder.resolve():  # cannot happen with a safe name; never write elsewhere
        raise UploadRefused(f"{name}: not a usable file name")
    shutil.copyfile(src, dst)
    return Upload(name, kind, dst)
