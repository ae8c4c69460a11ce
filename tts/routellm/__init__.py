"""RouteLLM's evaluation logs (lm-sys/RouteLLM `evals/*`: one True/False column per model, a
`prompt` column, optional response texts) imported as banks: `tts bank import-routellm SRC
DEST`. Modules: `layout` (reading the CSVs), `importer` (the bank), `cli` (the command).
"""

from __future__ import annotations

from tts.routellm.importer import (LOGGED_RIGHT, LOGGED_WRONG, ROUTELLM_PRICES, ROUTELLM_USD,
                                   group_of, import_routellm)
from tts.routellm.layout import Log, Row, read_log

__all__ = ["import_routellm", "read_log", "Log", "Row", "group_of", "LOGGED_RIGHT",
           "LOGGED_WRONG", "ROUTELLM_PRICES", "ROUTELLM_USD"]
