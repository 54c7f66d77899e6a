"""Where weight files are looked for and downloaded to (the lookup order of :mod:`vidrestore.weights`).

1. an explicit path to an existing file;
2. the ``weights_dir`` argument, or else every folder in the environment variable ``VIDRESTORE_WEIGHTS``
   (several folders separated by :data:`os.pathsep`);
3. the checkout's ``weights/`` folder (only when it exists, i.e. in a source checkout);
4. the user cache, ``$XDG_CACHE_HOME/vidrestore/weights`` or ``~/.cache/vidrestore/weights``.

``VIDRESTORE_WEIGHTS_URL`` replaces everything before the file name in each URL (a mirror, or a local server in
tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ..errors import WeightsError
from .registry import REGISTRY, WeightFile, lookup

__all__ = [
    "ENV_DIRS", "ENV_URL", "CHECKOUT_WEIGHTS_DIR", "cache_dir", "search_dirs", "download_dir", "weight_url",
    "find_weights",
]

ENV_DIRS: Final = "VIDRESTORE_WEIGHTS"
ENV_URL: Final = "VIDRESTORE_WEIGHTS_URL"
#: The checkout's ``weights/`` folder; searched only when it exists. Tests point this elsewhere.
CHECKOUT_WEIGHTS_DIR: Final = Path(__file__).resolve().parents[2] / "weights"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vidrestore/weights``, or ``~/.cache/vidrestore/weights``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vidrestore" / "weights"



def _explicit_dirs(weights_dir: str | os.PathLike[str] | None) -> tuple[Path, ...]:
    if weights_dir is not None:
        return (Path(weights_dir).expanduser(),)
    env = os.environ.get(ENV_DIRS, "")
    return tuple(Path(p).expanduser() for p in env.split(os.pathsep) if p.strip())



def search_dirs(weights_dir: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The folders searched, in order (see the module docstring); duplicates removed."""
    dirs = list(_explicit_dirs(weights_dir))
    checkout = CHECKOUT_WEIGHTS_DIR
    if checkout.is_dir():
        dirs.append(checkout)
    dirs.append(cache_dir())
    seen: set[str] = set()
    out: list[Path] = []
    for d in dirs:
        key = os.path.normcase(os.path.abspath(d))
        if key not in seen:
            seen.add(key)
            out.append(d)
    return tuple(out)



def _writable_dir(d: Path) -> bool:
    """True when ``d`` exists (or could be created) and files can be written into it."""
    if d.is_dir():
        return os.access(d, os.W_OK | os.X_OK)
    if d.exists():
        return False
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)



def download_dir(weights_dir: str | os.PathLike[str] | None) -> Path:
    """The first writable folder of the lookup order (the checkout's only when it already exists)."""
    candidates = list(_explicit_dirs(weights_dir))
    if CHECKOUT_WEIGHTS_DIR.is_dir():
        candidates.append(CHECKOUT_WEIGHTS_DIR)
    candidates.append(cache_dir())
    for d in candidates:
        if _writable_dir(d):
            return d
    raise WeightsError(
        "no writable folder for weight files among " + ", ".join(str(d) for d in candidates)
        + f"; set {ENV_DIRS} or pass --weights-dir with a writable folder"
    )



def weight_url(entry: WeightFile) -> str:
    """The URL to fetch ``entry`` from, honouring ``VIDRESTORE_WEIGHTS_URL``."""
    base = os.environ.get(ENV_URL, "").strip()
    if base:
        return base.rstrip("/") + "/" + entry.name
    return entry.url



def find_weights(
    name: str,
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    registry: Mapping[str, WeightFile] = REGISTRY,
) -> Path | None:
    """The first file called ``name`` in the search folders, or ``None``; no size check."""
    entry = lookup(name, registry)
    for d in search_dirs(weights_dir):
        p = d / entry.name
        if p.is_file():
            return p
    return None

