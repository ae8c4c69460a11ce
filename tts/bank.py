"""Sample banks: logged real generations per (problem, model, mode), for replay.

A bank is a folder with two files:

- `meta.json`: `{"format": "tts-bank/1", "name", "source", "license", "tokenizer", "roles":
  {"small": model, "large": model}, "cost": CostModel dict, "notes"}`
- `samples.jsonl` (or `samples.jsonl.gz`, read when the plain file is absent; a folder
  holding both is refused unless they hold the same bytes): one record per line, `{"problem_id", "question", "gold", "model", "mode", "prompt_tokens", "samples":
  [{"answer": str|null, "tokens": int, "text"?: str, "finish"?: "stop"|"length"|"error",
  "logprob"?: float, "min_conf"?: float}]}` (optional sample fields may be absent or null)

Replay draws a record's samples without replacement in a seeded order (`sample_order`), so
strategies, sweeps and tuning run over real generations in milliseconds and identically
every time. Writing is append-and-flush per record (`BankWriter`) so an interrupted build
loses nothing and can resume.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from tts.budgets.budget import MAX_COUNT
from tts.budgets.cost import CostModel
from tts.errors import BankError, ValidationError
from tts.files import gzip_holds, gzip_is_prefix, open_regular, read_json_file
from tts.types import Problem, shown

FORMAT = "tts-bank/1"
META_FILE = "meta.json"
SAMPLES_FILE = "samples.jsonl"
SAMPLES_GZ = SAMPLES_FILE + ".gz"
"""Compressed copy of the samples (committed form); read when `samples.jsonl` is absent."""
FINISH_REASONS = ("stop", "length", "error")

_RECORD_KEYS = {"problem_id", "question", "gold", "model", "mode", "prompt_tokens", "samples"}


def is_greedy_mode(mode: str) -> bool:
    """Whether a bank mode holds one greedy (temperature 0) answer: "greedy", or "greedy-<rep>"
    for another representation (e.g. MoT's "greedy-pot")."""
    return mode == "greedy" or mode.startswith("greedy-")


@dataclass(frozen=True, slots=True)
class Sample:
    """One logged generation: its extracted answer and generated token count, plus optional
    text, finish reason, mean token logprob and lowest sliding-window confidence (DeepConf)."""

    answer: str | None
    tokens: int
    text: str | None = None
    finish: str | None = None
    """"stop" (ended by itself), "length" (cut at its token cap) or "error"."""
    logprob: float | None = None
    """Mean log-probability of the generated tokens."""
    min_conf: float | None = None
    """Lowest sliding-window confidence (see `tts.types.Completion.min_conf`)."""


@dataclass(frozen=True, slots=True)
class Record:
    """All logged samples of one model in one mode on one problem."""

    problem_id: str
    model: str
    mode: str
    prompt_tokens: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class BankMeta:
    name: str
    roles: Mapping[str, str]
    """Which model plays "small" and which "large" by default."""
    cost: CostModel
    tokenizer: str
    """The tokenizer that counted `tokens` and `prompt_tokens`."""
    source: str = ""
    license: str = ""
    notes: str = ""
    ladder: tuple[str, ...] = ()
    """Every model of the bank, cheapest first (empty: the small and large roles)."""
    modes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per model, what each mode holds (e.g. {"pot": "program of thought, prompts 1+2"})."""

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "name": self.name, "roles": dict(self.roles),
             "cost": self.cost.to_dict(), "tokenizer": self.tokenizer, "source": self.source,
             "license": self.license, "notes": self.notes}
        if self.ladder:
            d["ladder"] = list(self.ladder)
        if self.modes:
            d["modes"] = {m: dict(v) for m, v in self.modes.items()}
        return d

    @property
    def models_cheapest_first(self) -> tuple[str, ...]:
        """The bank's ladder, or (small, large) when it names none."""
        if self.ladder:
            return tuple(self.ladder)
        return tuple(dict.fromkeys(self.roles[r] for r in ("small", "large") if r in self.roles))


@dataclass
class SampleBank:
    """Problems and their logged samples, indexed for replay."""

    meta: BankMeta
    problems: dict[str, Problem] = field(default_factory=dict)
    records: dict[tuple[str, str, str], Record] = field(default_factory=dict)
    path: Path | None = None
    _by_question: dict[str, str] = field(default_factory=dict, repr=False)

    # ---- queries -------------------------------------------------------------------------
    @property
    def problem_ids(self) -> list[str]:
        return list(self.problems)

    @property
    def models(self) -> list[str]:
        return sorted({m for _, m, _ in self.records})

    def modes(self, model: str) -> list[str]:
        return sorted({mode for _, m, mode in self.records if m == model})

    def role_model(self, role: str = "small") -> str:
        """The model playing `role` ("small" or "large") per meta.json's `roles`; a clear
        BankError naming meta.json when the bank names none, or holds no samples of it."""
        where = f"{self.path / META_FILE}" if self.path else f"bank {self.meta.name!r}"
        model = self.meta.roles.get(role)
        if model is None:
            raise BankError(f"{where}: `roles` names no {role} model (it has "
                            f"{dict(self.meta.roles)}); add \"{role}\": MODEL with one of the "
                            f"bank's models {self.models}, or pick models with `ladder`.")
        if model not in self.models:
            raise BankError(f"{where}: the {role} model {model!r} in `roles` has no samples in "
                            f"the bank; it has {self.models}.")
        return model

    def find(self, question: str) -> Problem:
        """The bank problem whose question is `question` (whitespace-insensitive)."""
        pid = self._by_question.get(_norm(question))
        if pid is None:
            where = f" {self.path}" if self.path else ""
            raise BankError(f"question not found in bank{where} ({len(self.problems)} problems): "
                            f"{question[:80]!r}. Replay can only answer questions it has samples "
                            f"for; use a live backend (--live) or `tts bank build` for new "
                            f"questions.")
        return self.problems[pid]

    def record(self, problem_id: str, model: str, mode: str) -> Record:
        rec = self.records.get((problem_id, model, mode))
        if rec is not None:
            return rec
        if problem_id not in self.problems:
            raise BankError(f"problem {problem_id!r} is not in bank {self.meta.name!r}.")
        if model not in self.models:
            raise BankError(f"bank {self.meta.name!r} has no samples of model {model!r}; it has "
                            f"{self.models}.")
        raise BankError(f"bank {self.meta.name!r} has no {mode!r} samples of {model} for problem "
                        f"{problem_id!r} (modes of {model}: {self.modes(model)}).")

    def require(self, model: str, mode: str | None = None) -> None:
        """Raise a clear BankError unless the bank holds `model` (in `mode`) samples."""
        if model not in self.models:
            raise BankError(f"bank {self.meta.name!r} has no samples of model {model!r}; it has "
                            f"{self.models}.")
        if mode is not None and mode not in self.modes(model):
            raise BankError(f"bank {self.meta.name!r} has no {mode!r} samples of {model}; it has "
                            f"modes {self.modes(model)}. A {mode!r} strategy needs them: build "
                            f"them with `tts bank build` (e.g. --chain-tokens 2048).")

    # ---- building --------------------------------------------------------------------------
    def add_problem(self, problem: Problem) -> None:
        if problem.id is None:
            raise BankError("bank problems need an id.")
        self.problems[problem.id] = problem
        self._by_question.setdefault(_norm(problem.question), problem.id)

    def add_record(self, record: Record) -> None:
        self.records[(record.problem_id, record.model, record.mode)] = record

    def subset(self, problem_ids: Iterable[str]) -> SampleBank:
        """A bank with only the given problems (for train / held-out splits)."""
        keep = list(problem_ids)
        out = SampleBank(self.meta, path=self.path)
        for pid in keep:
            out.add_problem(self.problems[pid])
        wanted = set(keep)
        for key, rec in self.records.items():
            if key[0] in wanted:
                out.records[key] = rec
        return out


def sample_order(problem_id: str, model: str, mode: str, seed: int | None,
                 size: int) -> np.ndarray:
    """The order in which replay serves a record's `size` samples for stream `seed`.

    seed None keeps the stored order. The permutation depends only on its arguments, so the
    vectorised evaluator and the replay backend agree exactly.
    """
    if seed is None:
        return np.arange(size)
    key = zlib.crc32(f"{problem_id}\x00{model}\x00{mode}".encode())
    return np.random.default_rng([seed & 0xFFFFFFFF, key]).permutation(size)


# ---- persistence -------------------------------------------------------------------------
def bank_path(path: object, parameter: str = "bank") -> Path:
    """`path` as a Path when it names a folder by a str or os.PathLike; anything else (None,
    a number, bytes) is a ValidationError naming `parameter`."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"`{parameter}` must be the path of a bank folder (a str or "
                              f"Path), got {type(path).__name__} {shown(path)}.",
                              parameter=parameter, value=path)
    return Path(text)


def load_bank(path: str | Path) -> SampleBank:
    """Read a bank folder, validating every line; errors name the file and line."""
    root = bank_path(path, "path")
    if not root.exists():
        raise BankError(f"bank {root} does not exist.")
    if root.is_file():
        raise BankError(f"bank {root} must be a folder holding {META_FILE} and {SAMPLES_FILE}.")
    meta = _load_meta(root / META_FILE)
    bank = SampleBank(meta, path=root)
    samples_path = samples_file(root)
    if samples_path is None:
        for name in (SAMPLES_FILE, SAMPLES_GZ):
            if (root / name).is_dir():
                raise BankError(f"bank {root}: {root / name} is a folder, not a file.")
        raise BankError(f"bank {root} has no {SAMPLES_FILE} (nor {SAMPLES_GZ}).")
    first_line: dict[object, int] = {}  # problem id / record key -> line that introduced it
    try:
        with open_regular(samples_path) as raw, (
                gzip.GzipFile(fileobj=raw, mode="rb") if samples_path.name == SAMPLES_GZ
                else raw) as fh:
            for lineno, line_bytes in enumerate(fh, 1):
                try:
                    line = line_bytes.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BankError(f"{samples_path}:{lineno}: not UTF-8 text (byte "
                                    f"{line_bytes[exc.start]:#04x} at column "
                                    f"{exc.start + 1}).") from None
                if not line.strip():
                    continue
                problem, record = _parse_line(line, samples_path, lineno)
                _check_consistent(bank, problem, record, first_line, samples_path, lineno)
                if problem.id not in bank.problems:
                    bank.add_problem(problem)
                bank.add_record(record)
    except OSError as exc:  # unreadable, not gzip
        raise BankError(f"cannot read {samples_path}: {exc.strerror or exc}.") from None
    except EOFError:
        raise BankError(f"{samples_path}: the gzip file is cut short (truncated).") from None
    except zlib.error as exc:
        raise BankError(f"{samples_path}: corrupt gzip data ({exc}); rebuild the file or "
                        f"restore it from a good copy.") from None
    if not bank.records:
        raise BankError(f"bank {root} has no records in {SAMPLES_FILE}.")
    return bank


def samples_file(root: Path) -> Path | None:
    """The samples file of a bank folder: `samples.jsonl`, else `samples.jsonl.gz`.

    Both may be present when `tts bank build --gzip` keeps the compressed copy next to the
    file it appends to; then they must hold the same bytes (checked with the gzip trailer's
    CRC-32 and size, `gzip_holds`), since reading one would silently ignore the other.
    """
    plain, packed = root / SAMPLES_FILE, root / SAMPLES_GZ
    if plain.is_file() and packed.is_file():
        if not gzip_holds(packed, plain):
            raise BankError(f"bank {root} holds both {plain} and {packed}, and they differ: "
                            f"replay would read {SAMPLES_FILE} and ignore the other. Delete "
                            f"the stale one (`tts bank build --gzip` on the bank, or "
                            f"`BankWriter.compress`, rewrites {SAMPLES_GZ} from "
                            f"{SAMPLES_FILE}).")
        return plain
    for path in (plain, packed):
        if path.exists() and not path.is_dir() and not path.is_file():
            open_regular(path).close()  # a FIFO or device: its clear error
        if path.is_file():
            return path
    return None


def _check_consistent(bank: SampleBank, problem: Problem, record: Record,
                      first_line: dict[object, int], path: Path, lineno: int) -> None:
    """Refuse a second record for one (problem, model, mode) and a problem id whose question
    (or gold) differs from its first line's: either would silently replay the wrong samples."""
    key = (record.problem_id, record.model, record.mode)
    if key in first_line:
        raise BankError(f"{path}:{lineno}: duplicate record for problem {key[0]!r}, model "
                        f"{key[1]!r}, mode {key[2]!r} (first at line {first_line[key]}); keep "
                        f"one of them.")
    first_line[key] = lineno
    known = bank.problems.get(problem.id)  # type: ignore[arg-type]
    if known is None:
        first_line[("problem", problem.id)] = lineno
        return
    at = first_line.get(("problem", problem.id), "?")
    if _norm(known.question) != _norm(problem.question):
        raise BankError(f"{path}:{lineno}: problem {problem.id!r} has a different question than "
                        f"at line {at} ({problem.question[:60]!r} vs {known.question[:60]!r}); "
                        f"one problem id must name one question.")
    if known.gold != problem.gold:
        raise BankError(f"{path}:{lineno}: problem {problem.id!r} has gold {problem.gold!r}, but "
                        f"{known.gold!r} at line {at}.")


def save_bank(bank: SampleBank, path: str | Path) -> Path:
    root = Path(path)
    with BankWriter(root, bank.meta, resume=False) as writer:
        for (pid, _, _), rec in bank.records.items():
            writer.write(bank.problems[pid], rec)
    return root


class BankWriter:
    """Appends records to a bank folder, flushing each, so builds survive interruption.

    With `resume=True` an existing bank is kept: its `meta.json` is left as it is (prices or
    notes a user edited survive; pass the meta of a new bank only), a torn last line left by a
    killed writer is dropped with a note on stderr, a bank holding only `samples.jsonl.gz` is
    unpacked to `samples.jsonl` first (and a `samples.jsonl.gz` an interrupted build left
    behind its `samples.jsonl` is refreshed), and `done` lists the (problem, model, mode) keys
    already written, so a restarted build skips them; `existing` is the bank as loaded (None
    when new). Each record goes to the file in one `write` of its whole line.
    """

    def __init__(self, path: str | Path, meta: BankMeta, *, resume: bool = True):
        self.root = Path(path)
        if self.root.exists() and not self.root.is_dir():
            raise BankError(f"bank {self.root} must be a folder, but a file is in the way.")
        self.done: set[tuple[str, str, str]] = set()
        self.existing: SampleBank | None = None
        self.dropped: int = 0
        """Bytes of a torn last line dropped on resume."""
        try:
            self._fd: int | None = self._open(meta, resume)
        except (OSError, EOFError, zlib.error) as exc:
            raise BankError(f"cannot write bank {self.root}: "
                            f"{getattr(exc, 'strerror', None) or exc} "
                            f"({getattr(exc, 'filename', None) or self.root}).") from None

    def _open(self, meta: BankMeta, resume: bool) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        samples_path = self.root / SAMPLES_FILE
        meta_path = self.root / META_FILE
        gz_path = self.root / SAMPLES_GZ
        if resume and not meta_path.exists() and (samples_path.exists() or gz_path.exists()):
            raise BankError(f"{self.root} holds samples but no {META_FILE}; restore it (or "
                            f"move the samples away) before resuming, so nothing is written "
                            f"twice.")
        if resume and meta_path.exists():
            if not samples_path.exists() and gz_path.is_file():
                tmp = samples_path.with_name(samples_path.name + ".tmp")
                with gzip.open(gz_path, "rb") as src, open(tmp, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        dst.write(chunk)
                os.replace(tmp, samples_path)
            if samples_path.exists():
                self.dropped = drop_torn_line(samples_path)
                if self.dropped:
                    print(f"note: dropped a torn last line ({self.dropped} bytes) of "
                          f"{samples_path}, left by an interrupted writer; it is rebuilt.",
                          file=sys.stderr)
                if gz_path.is_file() and not gzip_holds(gz_path, samples_path) \
                        and gzip_is_prefix(gz_path, samples_path):
                    self.compress()  # an interrupted build wrote records after its last copy
                if samples_path.stat().st_size:
                    self.existing = load_bank(self.root)
                    self.done = set(self.existing.records)
        if not (resume and meta_path.exists()):
            _write_atomic(meta_path, json.dumps(meta.to_dict(), indent=2) + "\n")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if resume else os.O_TRUNC)
        return os.open(samples_path, flags, 0o644)

    def write(self, problem: Problem, record: Record) -> None:
        line = {"problem_id": record.problem_id, "question": problem.question,
                "gold": problem.gold, "model": record.model, "mode": record.mode,
                "prompt_tokens": record.prompt_tokens,
                "samples": [_sample_dict(s) for s in record.samples]}
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        assert self._fd is not None, "BankWriter is closed"
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.done.add((record.problem_id, record.model, record.mode))

    def compress(self) -> Path:
        """Write `samples.jsonl.gz` (atomically, reproducible bytes) from `samples.jsonl`."""
        out = self.root / SAMPLES_GZ
        tmp = out.with_name(out.name + ".tmp")
        with open(self.root / SAMPLES_FILE, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                               compresslevel=9) as gz:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    gz.write(chunk)
        os.replace(tmp, out)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BankWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drop_torn_line(path: Path) -> int:
    """Cut an incomplete last line (no trailing newline: a killed writer) off `path`; return
    the number of bytes dropped (0 when the file ends cleanly)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        pos = size
        keep = 0
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = pos + nl + 1
                break
        fh.truncate(keep)
    return size - keep


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sample_dict(s: Sample) -> dict:
    d: dict = {"answer": s.answer, "tokens": s.tokens}
    if s.text is not None:
        d["text"] = s.text
    if s.finish is not None:
        d["finish"] = s.finish
    if s.logprob is not None:
        d["logprob"] = s.logprob
    if s.min_conf is not None:
        d["min_conf"] = s.min_conf
    return d


def _load_meta(path: Path) -> BankMeta:
    if not path.exists() and not path.is_symlink():
        raise BankError(f"bank metadata {path} is missing.")
    data = read_json_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BankError(f"{path}: expected \"format\": \"{FORMAT}\", got "
                        f"{data.get('format') if isinstance(data, dict) else data!r}.")
    roles = data.get("roles")
    if not isinstance(roles, dict) or not all(isinstance(m, str) and m for m in roles.values()):
        raise BankError(f"{path}: `roles` must map a role (\"small\", \"large\") to a model "
                        f"name, got {str(roles)[:80]}.")
    try:
        return BankMeta(name=str(data["name"]), roles=dict(roles),
                        cost=CostModel.from_dict(data["cost"]), tokenizer=str(data["tokenizer"]),
                        source=str(data.get("source", "")), license=str(data.get("license", "")),
                        notes=str(data.get("notes", "")), ladder=_ladder_of(data, path),
                        modes=_modes_of(data, path))
    except (KeyError, TypeError, ValueError) as exc:
        raise BankError(f"{path}: bad metadata ({exc}).") from None


def _ladder_of(data: dict, path: Path) -> tuple[str, ...]:
    ladder = data.get("ladder", [])
    if not isinstance(ladder, list) or not all(isinstance(m, str) and m for m in ladder) \
            or len(set(ladder)) != len(ladder):
        raise BankError(f"{path}: `ladder` must be a list of distinct model names, cheapest "
                        f"first, got {ladder!r}.")
    return tuple(ladder)


def _modes_of(data: dict, path: Path) -> dict[str, dict[str, str]]:
    modes = data.get("modes", {})
    if not isinstance(modes, dict) or not all(
            isinstance(v, dict) and all(isinstance(k, str) and isinstance(d, str)
                                        for k, d in v.items()) for v in modes.values()):
        raise BankError(f"{path}: `modes` must map model -> {{mode: description}}, got "
                        f"{modes!r}.")
    return {m: dict(v) for m, v in modes.items()}


def _parse_line(line: str, path: Path, lineno: int) -> tuple[Problem, Record]:
    where = f"{path}:{lineno}"
    try:
        d = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BankError(f"{where}: not valid JSON ({exc.msg}).") from None
    except RecursionError:
        raise BankError(f"{where}: JSON nested too deeply to read.") from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise BankError(f"{where}: unreadable JSON value ({exc}).") from None
    if not isinstance(d, dict):
        raise BankError(f"{where}: expected a JSON object, got {type(d).__name__}.")
    missing = _RECORD_KEYS - d.keys()
    if missing:
        raise BankError(f"{where}: missing field(s) {sorted(missing)}.")
    for key in ("problem_id", "question", "model", "mode"):
        if not isinstance(d[key], str) or not d[key]:
            raise BankError(f"{where}: `{key}` must be a non-empty string, got {d[key]!r}.")
    if d["gold"] is not None and not isinstance(d["gold"], str):
        raise BankError(f"{where}: `gold` must be a string or null, got {d['gold']!r}.")
    if not _is_count(d["prompt_tokens"]):
        raise BankError(f"{where}: `prompt_tokens` must be an integer in [0, {MAX_COUNT:.0e}], "
                        f"got {_short(d['prompt_tokens'])}.")
    if not isinstance(d["samples"], list) or not d["samples"]:
        raise BankError(f"{where}: `samples` must be a non-empty list.")
    samples = []
    for i, s in enumerate(d["samples"]):
        if not isinstance(s, dict) or "tokens" not in s or "answer" not in s:
            raise BankError(f"{where}: samples[{i}] must be an object with `answer` and `tokens`.")
        if not _is_count(s["tokens"]):
            raise BankError(f"{where}: samples[{i}].tokens must be an integer in [0, "
                            f"{MAX_COUNT:.0e}], got {_short(s['tokens'])}.")
        if s["answer"] is not None and not isinstance(s["answer"], str):
            raise BankError(f"{where}: samples[{i}].answer must be a string or null, got "
                            f"{s['answer']!r}.")
        text, finish = s.get("text"), s.get("finish")
        if text is not None and not isinstance(text, str):
            raise BankError(f"{where}: samples[{i}].text must be a string or null, got "
                            f"{type(text).__name__}.")
        if finish is not None and finish not in FINISH_REASONS:
            raise BankError(f"{where}: samples[{i}].finish must be one of {list(FINISH_REASONS)} "
                            f"or null, got {finish!r}.")
        numbers = {}
        for key in ("logprob", "min_conf"):
            v = s.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not _finite(v)):
                raise BankError(f"{where}: samples[{i}].{key} must be a finite number or null, "
                                f"got {str(v)[:40]}.")
            numbers[key] = None if v is None else float(v)
        samples.append(Sample(s["answer"], s["tokens"], text, finish, numbers["logprob"],
                              numbers["min_conf"]))
    try:
        problem = Problem(d["question"], id=d["problem_id"], gold=d["gold"])
    except ValidationError as exc:
        raise BankError(f"{where}: `question`: {exc}") from None
    record = Record(d["problem_id"], d["model"], d["mode"], d["prompt_tokens"], tuple(samples))
    return problem, record


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def _norm(question: str) -> str:
    return " ".join(question.split())

