"""``vidrestore weights list | fetch | verify``: see, download and check the model weight files.

Wired by the main command line (:data:`vidrestore.cli.COMMANDS`) as ``run(build_parser().parse_args(argv))``. Problems are raised as
:class:`~vidrestore.errors.WeightsError`; ``run`` returns the exit status (1 when ``verify`` finds a bad file).
``fetch`` tries every file it was asked for, then lists the ones that failed with their URL and the folder to
put them in, and raises one :class:`~vidrestore.errors.WeightsError` naming them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import weights as w
from ..errors import WeightsError
from .options import Parser

__all__ = ["build_parser", "run"]


def build_parser(prog: str = "vidrestore weights") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--weights-dir",
        metavar="DIR",
        default=None,
        help=f"folder searched first and downloaded into (default: ${w.ENV_DIRS}, then the checkout's "
        "weights/, then ~/.cache/vidrestore/weights)",
    )
    parser = Parser(
        prog=prog,
        description="List, download and verify the model weight files vidrestore uses.",
        epilog=f"Environment: {w.ENV_DIRS} (folders separated by '{os.pathsep}') is searched before the defaults; "
        f"{w.ENV_URL} replaces the download URL up to the file name (a mirror).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("list", parents=[common], help="show every known file, where it is, and its licence")
    fetch = sub.add_parser("fetch", parents=[common], help="download files that are missing")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="file names (the .pth may be left out)")
    fetch.add_argument("--all", action="store_true", help="download every known file")
    progress = fetch.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show one")
    verify = sub.add_parser("verify", parents=[common], help="check the sha256 of the files present")
    verify.add_argument("names", nargs="*", metavar="NAME", help="file names (default: every file present)")
    return parser


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=1000)  # piped: one row per line, easy to grep
    return console


def _human(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _entries(names: Sequence[str], registry: Mapping[str, w.WeightFile]) -> list[w.WeightFile]:
    out: list[w.WeightFile] = []
    for n in names:
        entry = w.lookup(n, registry)
        if entry not in out:
            out.append(entry)
    return out


def _cmd_list(args: argparse.Namespace, registry: Mapping[str, w.WeightFile]) -> int:
    console = _console()
    dirs = w.search_dirs(args.weights_dir)
    table = Table(title="vidrestore weight files", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("present", overflow="fold")
    table.add_column("licence", overflow="fold")
    table.add_column("used by", overflow="fold")
    for entry in registry.values():
        path = w.find_weights(entry.name, args.weights_dir, registry=registry)
        if path is None:
            where = "[dim]no[/dim]"
        else:
            actual = path.stat().st_size
            if entry.size is not None and actual != entry.size:
                where = f"[red]wrong size ({actual:,} B)[/red]: {path}"
            else:
                where = f"[green]yes[/green]: {path}"
        licence = entry.licence
        if entry.non_commercial:
            licence = f"[bold red]NON-COMMERCIAL[/bold red] {licence}"
        table.add_row(entry.name, _human(entry.size), where, licence, entry.used_by)
    console.print(table)
    console.print("searched, in order: " + ", ".join(str(d) for d in dirs), highlight=False)
    return 0


def _cmd_fetch(
    args: argparse.Namespace, registry: Mapping[str, w.WeightFile], options: w.DownloadOptions | None
) -> int:
    if args.all and args.names:
        raise WeightsError("give file names or --all, not both")
    if not args.all and not args.names:
        raise WeightsError("name the files to fetch (see `vidrestore weights list`) or pass --all")
    entries = list(registry.values()) if args.all else _entries(args.names, registry)
    console = _console()
    failed: list[tuple[w.WeightFile, Path | None, str]] = []
    for entry in entries:
        try:
            _fetch_one(entry, args, registry, options, console)
        except WeightsError as exc:  # ChecksumError included: note it and go on with the next file
            console.print(f"{entry.name}: [red]failed[/red]: {exc}", highlight=False)
            failed.append((entry, _target_folder(args.weights_dir), str(exc)))
    if failed:
        console.print(f"\n{len(failed)} of {len(entries)} file(s) could not be fetched; put each one there yourself:",
                      highlight=False)
        for entry, folder, _ in failed:
            where = str(folder) if folder is not None else f"a folder listed in ${w.ENV_DIRS}"
            console.print(f"  {entry.name}: download {w.weight_url(entry)} into {where}", highlight=False)
        raise WeightsError(
            f"{len(failed)} of {len(entries)} weight file(s) could not be fetched: "
            + ", ".join(e.name for e, _, _ in failed) + " (the list above says what to put where)"
        )
    return 0


def _target_folder(weights_dir: str | None) -> Path | None:
    try:
        return w.download_dir(weights_dir)
    except WeightsError:
        return None


def _fetch_one(
    entry: w.WeightFile,
    args: argparse.Namespace,
    registry: Mapping[str, w.WeightFile],
    options: w.DownloadOptions | None,
    console: Console,
) -> None:
    path = w.find_weights(entry.name, args.weights_dir, registry=registry)
    if path is not None and (entry.size is None or path.stat().st_size == entry.size):
        console.print(f"{entry.name}: present at {path}", highlight=False)
        return
    if path is not None and os.access(path.parent, os.W_OK | os.X_OK):
        folder = path.parent  # replace the wrong-size file where it is, once the new one checks out
    elif path is not None:
        raise WeightsError(
            f"{path} has the wrong size and its folder is not writable; remove it or fix {w.ENV_DIRS}"
        )
    else:
        folder = w.download_dir(args.weights_dir)
    console.print(f"{entry.name}: downloading {w.weight_url(entry)} into {folder}", highlight=False)
    final = w.download_weights(entry, folder, progress=args.progress, options=options, registry=registry)
    console.print(f"{entry.name}: ok, {final}", highlight=False)


def _cmd_verify(args: argparse.Namespace, registry: Mapping[str, w.WeightFile]) -> int:
    entries = _entries(args.names, registry) if args.names else list(registry.values())
    dirs = w.search_dirs(args.weights_dir)
    console = _console()
    table = Table(title="verify", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("result", overflow="fold")
    bad = 0
    checked = 0
    for entry in entries:
        copies = [d / entry.name for d in dirs if (d / entry.name).is_file()]
        if not copies:
            if args.names:
                raise WeightsError(
                    f"{entry.name} is not in any of {', '.join(str(d) for d in dirs)}; "
                    f"run `vidrestore weights fetch {entry.name}`"
                )
            continue
        for path in copies:
            result = w.verify_file(path, entry)
            checked += 1
            if result.ok:
                table.add_row(entry.name, str(path), f"[green]ok[/green] ({result.reason})")
            else:
                bad += 1
                table.add_row(entry.name, str(path), f"[bold red]MISMATCH[/bold red]: {result.reason}")
    if checked:
        console.print(table)
    console.print(
        f"{checked} file(s) checked, {bad} mismatch(es)" + ("" if checked else "; no weight files present"),
        highlight=False,
    )
    return 1 if bad else 0


def run(
    args: argparse.Namespace,
    *,
    registry: Mapping[str, w.WeightFile] = w.REGISTRY,
    options: w.DownloadOptions | None = None,
) -> int:
    """Run one ``vidrestore weights`` command; returns the exit status."""
    if args.command == "list":
        return _cmd_list(args, registry)
    if args.command == "fetch":
        return _cmd_fetch(args, registry, options)
    if args.command == "verify":
        return _cmd_verify(args, registry)
    raise WeightsError(f"unknown weights command {args.command!r}")  # pragma: no cover - argparse prevents it


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vidrestore.cli.weights``)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
