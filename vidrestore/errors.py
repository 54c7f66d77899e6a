"""The exceptions vidrestore raises on purpose.

Every error a user can cause (bad input, a missing weight file, an option that makes no sense) is a
``VidrestoreError``; the command line catches that base class, prints its message as one line and exits
with status 1. Anything else that escapes is a bug.

::

    VidrestoreError
    ├── UsageError        options that contradict each other or the file system (output == input, …)
    ├── MediaError        a file that cannot be opened, probed, decoded or encoded as video
    ├── OutputError       the output cannot be written (folder missing or read-only, exists without --overwrite)
    ├── WeightsError      a model file that is missing, cannot be downloaded or fails its checksum
    │   └── ChecksumError     the downloaded bytes are not the published file
    ├── CheckpointError   a file that is not a checkpoint of the expected architecture
    └── DeviceError       a requested device or precision that this machine does not have

Messages are written to stand alone on one line and to say what to do next where there is something to do.
"""

from __future__ import annotations

__all__ = [
    "VidrestoreError",
    "UsageError",
    "MediaError",
    "OutputError",
    "WeightsError",
    "ChecksumError",
    "CheckpointError",
    "DeviceError",
]


class VidrestoreError(Exception):
    """Base class of every error vidrestore raises on purpose."""


class UsageError(VidrestoreError):
    """Options that contradict each other or the file system."""


class MediaError(VidrestoreError):
    """A file that cannot be opened, probed, decoded or encoded as video."""


class OutputError(VidrestoreError):
    """The output cannot be written where it was asked for."""


class WeightsError(VidrestoreError):
    """A model weight file that is missing, cannot be fetched, or is not the published file."""


class ChecksumError(WeightsError):
    """Downloaded or found bytes whose size or sha256 differ from the registry's."""


class CheckpointError(VidrestoreError):
    """A file that is not a checkpoint of the architecture it was loaded for."""


class DeviceError(VidrestoreError):
    """A device or precision that this machine cannot provide."""
