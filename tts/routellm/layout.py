"""Reading RouteLLM's evaluation logs: CSV files with a `prompt` column, one True/False column
per model (was its single greedy answer right?) and optional `<model>_response` columns with
its text, plus an optional `contaminated_prompts.jsonl` listing prompts to leave out.

Accepted layouts: a CSV file; a folder of CSVs; a folder whose `responses/` holds them (MMLU:
`responses/mmlu_<subject>.csv`). Each CSV is a group (its file stem, e.g. a subject); every
CSV must name the same models.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tts.errors import BankError

RESPONSE_SUFFIX = "_response"
CONTAMINATED = "contaminated_prompts.jsonl"
_BOOLS = {"true": True, "false": False}
_EXPECTED = ("a CSV with a `prompt` column and one True/False column per model (optionally "
             "`<model>_response` text columns), a folder of such CSVs, or a folder whose "
             "responses/ holds them")


@dataclass(frozen=True)
class Row:
    prompt: str
    group: str
    index: int
    """Row number within its CSV (0-based, header excluded)."""
    correct: dict[str, bool]
    responses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Log:
    """Every row of a RouteLLM-format source, in file order (files sorted by name)."""

    models: tuple[str, ...]
    """Model columns in the order of the first CSV."""
    rows: tuple[Row, ...]
    contaminated: frozenset[str]
    files: tuple[Path, ...]

    @property
    def has_responses(self) -> bool:
        return all(r.responses for r in self.rows)


def read_log(src: str | Path) -> Log:
    """Read a RouteLLM-format source; BankError naming the file (and row) on anything else."""
    src = Path(src)
    files = _csv_files(src)
    folder = src if src.is_dir() else src.parent
    models: tuple[str, ...] | None = None
    rows: list[Row] = []
    for path in files:
        found, file_rows = _read_csv(path)
        if models is None:
            models = found
        elif set(found) != set(models):
            raise BankError(f"{path} names models {list(found)}, but {files[0]} names "
                            f"{list(models)}; every CSV of one source must name the same "
                            f"models.")
        rows += file_rows
    if not rows:
        raise BankError(f"{src}: the CSV files hold no rows.")
    return Log(models or (), tuple(rows), _contaminated(folder / CONTAMINATED), tuple(files))


def _csv_files(src: Path) -> list[Path]:
    if src.is_file():
        if src.suffix.lower() != ".csv":
            raise BankError(f"{src} is not a CSV file; expected {_EXPECTED}.")
        return [src]
    if not src.is_dir():
        raise BankError(f"{src} does not exist; expected {_EXPECTED}.")
    for folder in (src, src / "responses"):
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if files:
            return files
    listing = sorted(p.name + ("/" if p.is_dir() else "") for p in src.iterdir())[:20]
    raise BankError(f"{src} holds no CSV files: expected {_EXPECTED}; found {listing}.")


def _read_csv(path: Path) -> tuple[tuple[str, ...], list[Row]]:
    csv.field_size_limit(min(sys.maxsize, 1 << 28))
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise BankError(f"{path} is empty; expected {_EXPECTED}.")
            models, cols = _columns(path, header)
            rows = []
            for i, cells in enumerate(reader):
                if not cells:
                    continue
                where = f"{path}:{i + 2}"
                if len(cells) != len(header):
                    raise BankError(f"{where}: {len(cells)} cells, the header has "
                                    f"{len(header)}.")
                prompt = cells[cols["prompt"]]
                if not prompt.strip():
                    raise BankError(f"{where}: empty prompt.")
                correct = {}
                for m in models:
                    value = _BOOLS.get(cells[cols[m]].strip().lower())
                    if value is None:
                        raise BankError(f"{where}: column {m!r} must be True or False, got "
                                        f"{cells[cols[m]][:40]!r}.")
                    correct[m] = value
                responses = {m: cells[cols[m + RESPONSE_SUFFIX]] for m in models
                             if m + RESPONSE_SUFFIX in cols}
                rows.append(Row(prompt, path.stem, i, correct, responses))
    except UnicodeDecodeError as exc:
        raise BankError(f"{path}: not UTF-8 text ({exc.reason}).") from None
    except csv.Error as exc:
        raise BankError(f"{path}: not a readable CSV ({exc}).") from None
    except OSError as exc:
        raise BankError(f"cannot read {path}: {exc.strerror or exc}.") from None
    return models, rows


def _columns(path: Path, header: list[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    cols = {name: i for i, name in enumerate(header)}
    if len(cols) != len(header):
        raise BankError(f"{path}: the header repeats a column name ({header}).")
    if "prompt" not in cols:
        raise BankError(f"{path}: no `prompt` column (header {header[:8]}); expected "
                        f"{_EXPECTED}.")
    models = tuple(h for h in header if h != "prompt" and not h.endswith(RESPONSE_SUFFIX))
    if not models:
        raise BankError(f"{path}: no model columns besides `prompt` (header {header[:8]}); "
                        f"expected {_EXPECTED}.")
    orphans = [h for h in header if h.endswith(RESPONSE_SUFFIX)
               and h[:-len(RESPONSE_SUFFIX)] not in cols]
    if orphans:
        raise BankError(f"{path}: response column(s) {orphans} name no model column.")
    return models, cols


def _contaminated(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    prompts = set()
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BankError(f"{path}:{i}: not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict) or not isinstance(row.get("eval_prompt"), str):
                raise BankError(f"{path}:{i}: expected an object with an `eval_prompt` "
                                f"string.")
            prompts.add(row["eval_prompt"])
    return frozenset(prompts)
