"""The model weight files: a registry of known files, where to find them, how to download and verify them.

Rooms: :mod:`.registry` (the data), :mod:`.locate` (folders and URLs), :mod:`.verify` (hashes and the
``.verified.json`` record), :mod:`.download` (lock, resume, retry), :mod:`.resolve` (find or download what a run
needs). The command line is ``vidrestore weights list | fetch | verify`` (:mod:`vidrestore.cli.weights`).

Lookup order for :func:`resolve_weights` (the first folder that holds a file of that name decides):

1. an explicit path to an existing file;
2. the ``weights_dir`` argument, or else every folder in the environment variable ``VIDRESTORE_WEIGHTS``
   (several folders separated by :data:`os.pathsep`, so an existing ``GFPGAN/gfpgan/weights`` and
   ``facexlib/weights`` can be used as they are);
3. the checkout's ``weights/`` folder (only when it exists, i.e. in a source checkout);
4. the user cache, ``$XDG_CACHE_HOME/vidrestore/weights`` or ``~/.cache/vidrestore/weights``.

A file found there is accepted when its size is the registry's (a cheap check); the full sha256 check is
:func:`verify_file` (``vidrestore weights verify``) and runs after every download. A missing file is
downloaded into the first writable folder of the same order: streamed to ``<name>.part``, resumed with an
HTTP Range request, retried with exponential backoff, checked (size and sha256) and only then renamed into
place. ``VIDRESTORE_WEIGHTS_URL`` replaces everything before the file name in each URL (a mirror, or a
local server in tests).

Downloads are serialised per file by a lock file, ``<folder>/.<name>.lock``: when two processes ask for the
same missing file, one downloads it while the other waits, then verifies the finished file and uses it.

Where the registry knows no sha256 (``RestoreFormer.pth``) the md5 is checked instead, and the sha256 of
the first file that passes is recorded in ``<folder>/.verified.json``; later checks use that sha256. The same
record remembers which non-commercial licences were already shown.
"""

from __future__ import annotations

from .download import LOCK_NOTICE_AFTER, DownloadOptions, download_weights
from .locate import CHECKOUT_WEIGHTS_DIR, ENV_DIRS, ENV_URL, cache_dir, download_dir, find_weights, search_dirs, weight_url
from .registry import REGISTRY, WEIGHT_FILES, WeightFile, lookup, manifest_dict, manifest_json
from .resolve import resolve_many, resolve_weights
from .verify import RECORD_NAME, VerifyResult, verify_file

__all__ = [
    "WeightFile",
    "DownloadOptions",
    "VerifyResult",
    "WEIGHT_FILES",
    "REGISTRY",
    "ENV_DIRS",
    "ENV_URL",
    "RECORD_NAME",
    "CHECKOUT_WEIGHTS_DIR",
    "LOCK_NOTICE_AFTER",
    "search_dirs",
    "cache_dir",
    "weight_url",
    "lookup",
    "find_weights",
    "download_dir",
    "resolve_weights",
    "resolve_many",
    "download_weights",
    "verify_file",
    "manifest_dict",
    "manifest_json",
]
