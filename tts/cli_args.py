"""The command line's shared flags and the checks behind them: `--bank`, `--budgets`,
`--seeds`, `--out`, `--policy`, `--seed`, `--count-prompt`, `--no-progress`, declared once for
every command (`tts solve`, `demo`, `sweep`, `tune`, `serve`), plus the parsers and checks
those flags need (budget lists, writable output folders, the command line for reports).

Every check here raises a `ValidationError` naming the flag before any work starts.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Iterable, Sequence

from tts.budgets import check_budget
from tts.errors import ValidationError

__all__ = ["add_import", "add_bank", "add_budgets", "add_seeds", "add_out", "add_policy", "add_seed",
           "add_count_prompt", "add_no_progress", "progress_bar", "check_budgets",
           "parse_budgets", "check_writable", "command_line", "BANK_HELP"]

BANK_HELP = "replay bank folder (default: the bundled MoT GSM8K bank)"


# ---- flags ----------------------------------------------------------------------------------
def add_import(bsub, name: str, help: str, description: str,
               gold_help: str) -> argparse.ArgumentParser:
    """A `tts bank import-*` command: SRC (the logs), DEST (the new bank), `--gold`."""
    p = bsub.add_parser(name, help=help, description=description)
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--gold", type=Path, default=None, help=gold_help)
    return p


def add_bank(p: argparse.ArgumentParser) -> None:
    """`--bank FOLDER` (default None: the bundled MoT GSM8K bank)."""
    p.add_argument("--bank", type=Path, default=None, help=BANK_HELP)


def add_budgets(p: argparse.ArgumentParser, help: str) -> None:
    """`--budgets 512,2048,...` as text (parse it with `parse_budgets`)."""
    p.add_argument("--budgets", default=None, help=help)


def add_seeds(p: argparse.ArgumentParser, default: int, help: str) -> None:
    """`--seeds N`: how many seeded sample orders."""
    p.add_argument("--seeds", type=int, default=default, help=help)


def add_out(p: argparse.ArgumentParser, default: str, help: str) -> None:
    """`--out FOLDER` (check it early with `check_writable`)."""
    p.add_argument("--out", type=Path, default=Path(default), help=help)


def add_policy(p: argparse.ArgumentParser, help: str = "tuned policy JSON") -> None:
    p.add_argument("--policy", type=Path, default=None, help=help)


def add_seed(p: argparse.ArgumentParser, help: str = "seed of the sample streams") -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_count_prompt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count-prompt", action="store_true",
                   help="also charge prompt tokens, once per prompt per model")


def add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def progress_bar(disable: bool = False):
    """A transient rich progress bar on stderr (description, bar, n/total, elapsed)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=disable,
                    transient=True)


# ---- checks ---------------------------------------------------------------------------------
def check_budgets(budgets: Iterable[float]) -> tuple[float, ...]:
    """The budgets as floats, if they are a non-empty, strictly increasing list of valid
    budgets; else a ValidationError naming the first problem."""
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Iterable):
        raise ValidationError(f"`budgets` must be a list of numbers, got {budgets!r}.",
                              parameter="budgets", value=budgets)
    items = list(budgets)
    if not items:
        raise ValidationError("`budgets` must list at least one budget, got an empty list.",
                              parameter="budgets", value=items)
    out = tuple(check_budget(b, f"budgets[{i}]") for i, b in enumerate(items))
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            word = "repeats" if out[i] == out[i - 1] else "comes after"
            raise ValidationError(f"`budgets` must be strictly increasing: {out[i]:g} {word} "
                                  f"{out[i - 1]:g} (position {i}); sort them and drop "
                                  f"duplicates.", parameter="budgets", value=items)
    return out


def parse_budgets(text: str) -> tuple[float, ...]:
    """Parse "512,1024,2048" (underscores and 1e5 notation allowed) and check it."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValidationError("--budgets must list at least one budget, got an empty list.",
                              parameter="budgets", value=text)
    values = []
    for p in parts:
        try:
            v = float(p.replace("_", ""))
        except ValueError:
            raise ValidationError(f"--budgets must be comma-separated numbers, got {p!r} in "
                                  f"{text!r}.", parameter="budgets", value=text) from None
        values.append(int(v) if v.is_integer() else v)
    return check_budgets(values)


def check_writable(folder: str | Path, files: Sequence[str] = (), *,
                   what: str = "--out") -> Path:
    """Make sure `folder` is (or can be made) a folder that accepts new files, and that none of
    `files` inside it is something else than a file; else a ValidationError naming the path.

    Called before any work starts, so a sweep does not run for minutes and then fail writing.
    Creates the folder (as writing would) and probes it with a temporary file.
    """
    import tempfile

    root = Path(folder)
    for parent in (root, *root.parents):  # the first one that exists must be a folder
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                why = "is a file, not a folder" if parent == root else \
                    f"cannot be created: {parent} is not a folder"
                raise ValidationError(f"{what} {root} {why}.", parameter="out", value=str(root))
            break
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".tts-write-test-"):
            pass
    except OSError as exc:
        raise ValidationError(f"{what} {root} is not writable ({exc.strerror or exc}); choose "
                              f"another folder.", parameter="out", value=str(root)) from None
    for name in files:
        target = root / name
        if target.exists() and not target.is_file():
            raise ValidationError(f"{what}: {target} exists and is not a file; move it away or "
                                  f"choose another folder.", parameter="out", value=str(target))
        if target.exists():
            try:
                with target.open("ab"):
                    pass
            except OSError as exc:
                raise ValidationError(f"{what}: {target} is not writable "
                                      f"({exc.strerror or exc}).", parameter="out",
                                      value=str(target)) from None
    return root


def command_line(command: str) -> str:
    """The `tts COMMAND ...` line this process was started with, for reports ("tts COMMAND
    (API)" when it was called from Python)."""
    if sys.argv[1:2] == [command]:
        return "tts " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"tts {command} (API)"
