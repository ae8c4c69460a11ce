"""The consoles every command prints with and `safe`, which every untrusted text goes through
before it is printed. A leaf: the commands (`tts.cli`, `tts.bank_cli`, `tts.serving.cli`, ...)
import it, so none of them needs to import the entry point that mounts them."""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err_console", "safe"]

console = Console(emoji=False)  # ":100:" in a model's answer stays text
err_console = Console(stderr=True, emoji=False)

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI sequences: colours, cursor moves, clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC sequences: titles, hyperlinks
    r"|\x1b[@-_]?"                      # other escapes, and a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # control, bidi overrides
"""What `safe` removes: everything a terminal would act on rather than show (tab and newline
stay)."""


def safe(value: object) -> str:
    """`value` as text to print with rich: terminal control sequences and control characters
    removed, and rich markup (`[bold]`, `[/foo]`, `[link=...]`) escaped, so it shows literally.

    Everything a model wrote (answers, votes, traces) and everything read from a bank or a
    file (questions, gold answers, model names, paths) goes through this before printing.
    """
    return escape(_CONTROL.sub("", str(value)))
