"""The command line: arguments → an options dataclass → one call into a door.

``vidrestore VIDEO`` restores a file (:mod:`.restore`); ``vidrestore batch|still|live|weights …`` run the module
of that name in this package. Every ``VidrestoreError`` becomes one line on stderr and exit status 1; usage errors
exit 2; Ctrl-C exits 130, SIGTERM 143 (each after removing the partial output). Any other exception is a bug: one
line too, exit 1 (``VIDRESTORE_DEBUG=1`` shows its traceback).

A command module has ``build_parser(prog) -> argparse.ArgumentParser`` (a :class:`Parser`, from
:mod:`.options`) and ``run(args) -> int``; :data:`COMMANDS` maps the first word to it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence

from ..errors import VidrestoreError
from .options import Parser

__all__ = ["COMMANDS", "Parser", "main"]

# first word → the module that runs it
COMMANDS = {
    "batch": "vidrestore.cli.batch",
    "still": "vidrestore.cli.still",
    "live": "vidrestore.cli.live",
    "weights": "vidrestore.cli.weights",
    "app": "vidrestore.cli.app",
}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _error(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\x1b[31m{message}\x1b[0m"
    _stderr(message)


def _dispatch(argv: list[str]) -> Callable[[], int]:
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]])
        parser = module.build_parser(prog=f"vidrestore {argv[0]}")
        if not isinstance(parser, Parser):
            parser.error = Parser.error.__get__(parser)  # type: ignore[method-assign]
        args = parser.parse_args(argv[1:])
        return lambda: module.run(args)
    from . import photo, restore

    door = photo if photo.wants(argv) else restore  # a still image goes to the photo door
    args = door.build_parser().parse_args(argv)
    return lambda: door.run(args)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run cleans up exactly as on Ctrl-C."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread (once: a second SIGTERM during the
    clean-up is ignored so the clean-up finishes). The previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller owns signals there
        return
    owner = os.getpid()
    raised = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal raised
        if os.getpid() != owner:  # a forked child inherited this handler: end as SIGTERM asks
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not raised:
            raised = True
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_as_interrupt():
            command = _dispatch(argv)
            return command()
    except VidrestoreError as exc:
        _error(f"vidrestore: {exc}")
        return 1
    except Terminated:
        _stderr("vidrestore: terminated (SIGTERM); the partial output was removed")
        return 143
    except KeyboardInterrupt:
        _stderr("vidrestore: interrupted; the partial output was removed")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug, but still one line for the user
        if os.environ.get("VIDRESTORE_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or "(no message)"
        _error(f"vidrestore: internal error: {type(exc).__name__}: {text} "
               "(please report it; VIDRESTORE_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
