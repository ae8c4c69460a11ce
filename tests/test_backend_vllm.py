"""The vLLM backend: settings and errors without an engine, then the real engine on CPU.

Live tests (`-m live`) run vLLM with the tiny model (SmolLM2-135M, `tts models pull tiny`)
and a few tokens per sample; they skip with the reason when vLLM or the model is missing.
"""

from __future__ import annotations

import importlib.util

import pytest

from tts import models
from tts.backends import Backend
from tts.errors import BackendError, ValidationError
from tts.types import GenRequest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
requires_tiny = pytest.mark.skipif(
    not models.is_pulled("tiny") or importlib.util.find_spec("transformers") is None,
    reason="needs the tiny model's tokenizer: `bash scripts/install_cpu.sh` and "
           "`tts models pull tiny`")

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


# ---- without an engine ---------------------------------------------------------------------
def test_derive_seed_is_stable_and_spread() -> None:
    from tts.backends.vllm import derive_seed

    assert derive_seed(0, 0) == derive_seed(0, 0)
    seeds = {derive_seed(s, i) for s in range(20) for i in range(20)}
    assert len(seeds) == 400  # nearby streams never share a sample seed
    assert all(0 <= x < 2**63 for x in seeds)


@pytest.mark.parametrize("flags, dtype", [({"avx512f", "avx512_bf16"}, "bfloat16"),
                                          ({"amx_bf16"}, "bfloat16"),
                                          ({"avx2", "avx512f"}, "float32"), (set(), "float32")])
def test_cpu_dtype_follows_cpu_flags(monkeypatch, flags, dtype) -> None:
    from tts.backends import cpu as backend_mod

    monkeypatch.setattr(backend_mod, "cpu_flags", lambda: flags)
    assert backend_mod.cpu_dtype() == dtype


def test_cpu_flags_reads_proc_cpuinfo() -> None:
    from tts.backends.vllm import cpu_flags

    flags = cpu_flags()
    assert isinstance(flags, set)


def test_not_pulled_model_names_the_command(tmp_path, monkeypatch) -> None:
    from tts.backends.vllm import VLLMBackend

    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(models.ModelNotPulledError, match=r"run `tts models pull small`"):
        VLLMBackend("small")
    with pytest.raises(models.ModelNotPulledError, match=r"tts models pull large"):
        VLLMBackend("qwen2.5-coder-1.5b")


def test_bad_model_folder_and_settings(tmp_path) -> None:
    from tts.backends.vllm import VLLMBackend

    with pytest.raises(BackendError, match="neither a pulled model"):
        VLLMBackend(tmp_path / "nowhere")
    with pytest.raises(ValidationError, match="max_model_len"):
        VLLMBackend(tmp_path, max_model_len=0)
    with pytest.raises(ValidationError, match="device"):
        VLLMBackend(tmp_path, device="tpu")


@requires_tiny
def test_lazy_until_first_generate_and_prompt_tokens_without_engine() -> None:
    from tts.backends.vllm import VLLMBackend

    backend = VLLMBackend("tiny")
    assert isinstance(backend, Backend)
    assert backend.model == "smollm2-135m"
    req = GenRequest(prompt=QUESTION, max_tokens=8)
    n = backend.prompt_tokens(req)
    longer = backend.prompt_tokens(GenRequest(prompt=QUESTION, assistant_prefix="Let me think",
                                              max_tokens=8))
    assert 10 < n < longer
    assert not backend.loaded  # counting tokens needs the tokenizer only


@requires_tiny
def test_context_too_long_is_a_clear_error_before_generating() -> None:
    from tts.backends.vllm import VLLMBackend

    backend = VLLMBackend("tiny", max_model_len=64)
    with pytest.raises(BackendError, match=r"max_model_len=64"):
        backend.generate([GenRequest(prompt="word " * 200, max_tokens=8)])
    assert not backend.loaded


# ---- the real engine -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    if not HAS_VLLM:
        pytest.skip("vLLM is not installed; run `bash scripts/install_cpu.sh`")
    if not models.is_pulled("tiny"):
        pytest.skip("the tiny model is not pulled; run `tts models pull tiny`")
    from tts.backends.vllm import VLLMBackend

    backend = VLLMBackend("tiny", max_model_len=1024)
    yield backend.load()
    backend.close()


def _texts(completions):
    return [c.text for c in completions]


@pytest.mark.live
def test_seeds_reproduce_and_streams_split_into_waves(tiny) -> None:
    req = GenRequest(prompt=QUESTION, n=6, max_tokens=24, temperature=0.8, seed=11)
    a, b = tiny.generate([req, req])
    assert _texts(a) == _texts(b)
    assert len(set(_texts(a))) > 1  # the n samples of one stream differ
    first = GenRequest(prompt=QUESTION, n=2, max_tokens=24, temperature=0.8, seed=11)
    rest = GenRequest(prompt=QUESTION, n=4, offset=2, max_tokens=24, temperature=0.8, seed=11)
    w1, w2 = tiny.generate([rest, first])  # order in the call does not matter either
    assert _texts(w2) + _texts(w1) == _texts(a)
    (other,) = tiny.generate([GenRequest(prompt=QUESTION, n=6, max_tokens=24, temperature=0.8,
                                         seed=12)])
    assert _texts(other) != _texts(a)


def _child_names() -> list[str]:
    """Command names of this process's direct children (Linux /proc)."""
    import os
    from pathlib import Path

    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        if int(rest.split()[1]) == os.getpid():
            names.append(name)
    return names


@pytest.mark.live
def test_cpu_engine_runs_in_this_process(tiny) -> None:
    """On CPU the engine core runs in the calling process, where it does not busy-poll a
    separate worker (bench/cpu_engine.py measures the speed-up); a user's own
    VLLM_ENABLE_V1_MULTIPROCESSING would win, and the settings say which it was."""
    import os

    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0") != "0":
        pytest.skip("VLLM_ENABLE_V1_MULTIPROCESSING is set to another value here")
    assert tiny.settings["engine_process"] == "in-process"
    assert not [n for n in _child_names() if n.startswith("VLLM")], _child_names()
    (out,) = tiny.generate([GenRequest(prompt=QUESTION, n=2, max_tokens=8, seed=3)])
    assert all(c.tokens > 0 for c in out)


@pytest.mark.live
def test_progress_events_report_generation(tiny) -> None:
    """The progress hook (what `tts demo --live` shows) goes through vLLM's tqdm stand-in,
    which vLLM also calls around the requests it adds: both must work."""
    events: list[dict] = []
    tiny.progress = events.append
    try:
        (out,) = tiny.generate([GenRequest(prompt=QUESTION, n=3, max_tokens=8, seed=1)])
    finally:
        tiny.progress = None
    assert len(out) == 3
    ticks = [e for e in events if e["event"] == "generate"]
    assert ticks and ticks[0]["done"] == 0 and ticks[-1]["done"] == ticks[-1]["total"] == 3
    assert all(e["model"] == tiny.model for e in ticks)


@pytest.mark.live
def test_token_counts_are_the_engines(tiny) -> None:
    from vllm import SamplingParams

    from tts.backends.vllm import derive_seed

    req = GenRequest(prompt=QUESTION, n=3, max_tokens=20, temperature=0.7, seed=5)
    (completions,) = tiny.generate([req])
    ids = tiny.prompt_ids(req)
    raw = tiny._llm.generate([{"prompt_token_ids": ids}] * 3,
                             [SamplingParams(max_tokens=20, temperature=0.7,
                                             seed=derive_seed(5, i)) for i in range(3)],
                             use_tqdm=False)
    for c, r in zip(completions, raw):
        assert c.text == r.outputs[0].text
        assert c.tokens == len(r.outputs[0].token_ids)
        assert c.prompt_tokens == len(r.prompt_token_ids) == tiny.prompt_tokens(req)
        assert 1 <= c.tokens <= 20
        assert (c.finish_reason == "length") == (c.tokens == 20)


@pytest.mark.live
def test_stop_logprobs_greedy_and_assistant_prefix(tiny) -> None:
    greedy = GenRequest(prompt=QUESTION, max_tokens=16, temperature=0, logprobs=True)
    stop = GenRequest(prompt=QUESTION, n=4, max_tokens=40, temperature=1.0, seed=3,
                      stop=(" ",))
    prefix = GenRequest(prompt=QUESTION, max_tokens=8, temperature=0,
                        assistant_prefix="The final answer is \\boxed{")
    g, s, p = tiny.generate([greedy, stop, prefix])
    assert g[0].mean_logprob is not None and g[0].mean_logprob <= 0
    (g2,) = tiny.generate([greedy])
    assert g2[0].text == g[0].text
    assert all(" " not in c.text for c in s)
    assert any(c.finish_reason == "stop" for c in s)
    assert p[0].prompt_tokens == tiny.prompt_tokens(prefix) > g[0].prompt_tokens
    if "}" in p[0].text:  # the answer is read from prefix + continuation
        assert p[0].answer is not None


@pytest.mark.live
def test_budget_is_never_exceeded_with_live_generation(tiny) -> None:
    from tts.budgets import Budget
    from tts.engine import Engine

    engine = Engine(tiny, count_prompt=True, seed=1)
    questions = [QUESTION, "What is 12 * 3?", "A train goes 60 km in 1 hour. How far in 3 hours?"]
    for limit in (150.0, 600.0):
        results = engine.solve_many(questions, Budget(tokens=limit), strategy="vote",
                                    max_samples=8, wave=4, max_tokens=32)
        for r in results:
            assert r.cost <= limit
            assert r.status in ("answered", "abstained", "insufficient_budget")
            if r.status != "insufficient_budget":
                assert r.tokens[tiny.model] > 0
    again = engine.solve_many(questions, Budget(tokens=600.0), strategy="vote", max_samples=8,
                              wave=4, max_tokens=32)
    assert [r.votes for r in again] == [r.votes for r in results]


@pytest.mark.live
def test_chain_budget_forcing_live(tiny) -> None:
    from tts.engine import Engine
    from tts.strategies import Chain

    engine = Engine(tiny, seed=0)
    per_token = engine.cost.of(tiny.model).output
    # Cut at 24 tokens: the answer is forced with up to 10 greedy tokens.
    cut = Chain(max_tokens=24, min_tokens=8, answer_tokens=10)
    r = engine.solve(QUESTION, 1000.0, strategy=cut)
    assert any("forcing the final answer" in t for t in r.trace)
    assert r.tokens[tiny.model] <= 24 + 10
    assert r.cost <= 1000.0
    # A budget too small for chain + held-back answer is refused before generating.
    tight = engine.solve(QUESTION, (8 + 10) * per_token - 1e-9, strategy=cut)
    assert tight.status == "insufficient_budget" and tight.cost == 0
    # A chain that stops early is told "Wait" and continues within its share.
    wait = Chain(max_tokens=200, min_tokens=8, max_waits=1, min_continue=8, temperature=0.7)
    r = engine.solve(QUESTION, 1000.0, strategy=wait)
    if any("'Wait'" in t for t in r.trace):
        assert r.tokens[tiny.model] <= 200
    assert r.cost <= 1000.0
    # Forcing off: one call, same as a replayed chain.
    one = engine.solve(QUESTION, 1000.0, strategy=Chain(max_tokens=24, min_tokens=8))
    assert len(one.trace) == 1 and one.tokens[tiny.model] <= 24


@pytest.mark.live
def test_a_wave_larger_than_one_engine_step(tiny) -> None:
    # More prompt tokens than one scheduler step takes (4096): with chunked prefill, vLLM's
    # CPU sampler crashed on seeded requests ("CPU Generator does not use offset").
    long_q = QUESTION + " Explain every step of the reasoning carefully." * 6
    reqs = [GenRequest(prompt=f"{i}. {long_q}", n=2, max_tokens=2, seed=i) for i in range(30)]
    assert sum(tiny.prompt_tokens(r) * r.n for r in reqs) > 4096
    out = tiny.generate(reqs)
    assert [len(c) for c in out] == [2] * 30
    assert all(1 <= s.tokens <= 2 for c in out for s in c)


@pytest.mark.live
def test_build_bank_with_live_engine_then_replay(tiny, tmp_path) -> None:
    import tts
    from tts.bank import load_bank
    from tts.budgets import QWEN_PARAMS
    from tts.build import build_bank
    from tts.prompts import format_question

    bundled = load_bank(tts.BUNDLED_BANK)
    problems = [bundled.problems[p] for p in bundled.problem_ids[:2]]
    dest = build_bank(tiny, problems, tmp_path / "live", samples=3, greedy=True,
                      max_tokens=12, cost=QWEN_PARAMS, seed=5)
    built = load_bank(dest)
    rec = built.record(problems[0].id, "smollm2-135m", "sample")
    assert len(rec.samples) == 3 and all(0 < s.tokens <= 12 and s.text for s in rec.samples)
    assert rec.prompt_tokens == tiny.prompt_tokens(
        GenRequest(prompt=format_question(problems[0].question)))
    assert built.record(problems[1].id, "smollm2-135m", "greedy").samples[0].text
    engine = tts.replay_engine(dest)
    result = engine.solve(problems[0], 1_000, strategy="vote", max_samples=3, max_tokens=12)
    assert result.tokens["smollm2-135m"] == sum(s.tokens for s in rec.samples)
    assert "vote: " in result.trace[-1] and result.cost <= 1_000


# ---- DeepConf confidences and the bank build on the real engine -----------------------------
class _LP:
    def __init__(self, logprob, rank):
        self.logprob, self.rank = logprob, rank


def test_token_confidence_is_minus_mean_of_top_k() -> None:
    from tts.backends.vllm import token_confidences

    # the sampled token (rank 7) comes along with the top-k and is left out
    position = {1: _LP(-0.1, 1), 2: _LP(-2.0, 2), 3: _LP(-3.0, 3), 9: _LP(-9.0, 7)}
    assert token_confidences([position], 3) == [pytest.approx((0.1 + 2.0 + 3.0) / 3)]
    assert token_confidences([position], 2) == [pytest.approx(1.05)]
    assert token_confidences([{1: _LP(float("-inf"), 1)}], 5) == [100.0]  # stays finite


def test_lowest_window_mean() -> None:
    from tts.backends.vllm import lowest_window_mean

    assert lowest_window_mean([], 3) is None
    assert lowest_window_mean([4.0, 2.0], 3) == 3.0  # shorter than a window: the mean
    assert lowest_window_mean([5.0, 1.0, 1.0, 4.0, 6.0], 2) == 1.0
    assert lowest_window_mean([5.0, 1.0, 2.0, 4.0, 6.0], 3) == pytest.approx(7 / 3)


def test_confidence_settings_are_validated(tmp_path) -> None:
    from tts.backends.vllm import VLLMBackend

    with pytest.raises(ValidationError, match="top_logprobs"):
        VLLMBackend("tiny", top_logprobs=0)
    with pytest.raises(ValidationError, match="conf_window"):
        VLLMBackend("tiny", conf_window=True)


@pytest.mark.live
def test_logprobs_give_mean_logprob_and_min_conf(tiny) -> None:
    req = GenRequest(prompt=QUESTION, n=3, max_tokens=40, temperature=0.7, seed=2,
                     logprobs=True)
    plain = GenRequest(prompt=QUESTION, n=3, max_tokens=40, temperature=0.7, seed=2)
    (with_lp, without) = tiny.generate([req, plain])
    confs = tiny.last_confidences
    assert [c.text for c in with_lp] == [c.text for c in without]  # same samples
    for c, conf in zip(with_lp, confs[0]):
        assert c.mean_logprob is not None and c.mean_logprob <= 0
        assert len(conf) == c.tokens and all(x >= 0 for x in conf)
        assert c.min_conf == pytest.approx(min(
            sum(conf[i:i + tiny.conf_window]) / tiny.conf_window
            for i in range(len(conf) - tiny.conf_window + 1)) if len(conf) > tiny.conf_window
            else sum(conf) / len(conf))
    assert all(c.mean_logprob is None and c.min_conf is None for c in without)
    assert confs[1] == [None, None, None]


def _build_cmd(dest, questions, *extra):
    import sys

    return [sys.executable, "-m", "tts.cli", "bank", "build", str(dest), "--model", "tiny",
            "--questions", str(questions), "--start", "1", "--n", "5", "--samples", "3",
            "--max-tokens", "24", "--batch", "1", "--chains", "2", "--chain-lengths", "64",
            "--answer-tokens", "8", "--max-waits", "2", "--seed", "7", "--no-prefix-caching",
            *extra]


def _run(cmd, **kw):
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, **kw)


@pytest.mark.live
def test_killed_build_resumes_without_loss_or_duplicates(tmp_path) -> None:
    """A real `tts bank build` killed (SIGKILL) once its first records are on disk, then
    rerun: no record lost or written twice, every problem and mode the build asks for; a
    resume with other settings is refused naming the setting and both values; prices a user
    set survive."""
    import json
    import os
    import signal
    import subprocess
    import time

    if not HAS_VLLM or not models.is_pulled("tiny"):
        pytest.skip("needs vLLM and the tiny model")
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    rows = [{"question": f"Sam has {i} pens and buys {i + 3} more. How many pens now?",
             "answer": f"#### {2 * i + 3}"} for i in range(8)]
    questions = folder / "test.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    killed = tmp_path / "killed"
    samples = killed / "samples.jsonl"
    proc = subprocess.Popen(_build_cmd(killed, questions), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 1800  # a guard against hangs, not a timing check
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and samples.read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the build ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the build and its engine processes
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    written = samples.read_text().splitlines()
    assert 1 <= len(written) < 10  # killed mid-run: 5 problems x (sample + chain-64)
    with samples.open("a") as fh:  # and as if the kill had cut a line in half
        fh.write('{"problem_id": "gsm8k-test-9", "quest')
    resumed = _run(_build_cmd(killed, questions))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "dropped a torn last line" in resumed.stderr
    a = samples.read_text().splitlines()
    assert a[:len(written)] == written  # nothing rewritten
    keys = [(d["problem_id"], d["mode"]) for d in map(json.loads, a)]
    assert len(keys) == len(set(keys)) == 10  # no duplicates, no loss
    # Every record an uninterrupted build writes: problems 1-5, 3 samples and 2 chains each.
    # Compared by shape, not bit for bit: on CPU the engine's floats depend on how a resumed
    # run batches the remaining prompts, so a sampled token can differ.
    shape = sorted((d["problem_id"], d["mode"], len(d["samples"])) for d in map(json.loads, a))
    assert shape == sorted([(f"gsm8k-test-{i}", "sample", 3) for i in range(1, 6)]
                           + [(f"gsm8k-test-{i}", "chain-64", 2) for i in range(1, 6)])
    assert [k[0] for k in keys if k[1] == "sample"] == [f"gsm8k-test-{i}" for i in range(1, 6)]
    for d in map(json.loads, a):
        for s in d["samples"]:
            assert s["finish"] in ("stop", "length") and s["text"] is not None
            assert s["logprob"] <= 0 and s["min_conf"] >= 0
    meta = json.loads((killed / "meta.json").read_text())
    stats = meta["build"]["stats"]["smollm2-135m"]
    assert stats["sample"]["records"] >= 5 and stats["chain-64"]["records"] == 5
    # user edits survive; other settings are refused with both values named
    meta["cost"]["models"]["smollm2-135m"] = {"output": 0.5, "prompt": 0.25}
    meta["license"] = "mine"
    (killed / "meta.json").write_text(json.dumps(meta))
    bad = _run(_build_cmd(killed, questions, "--temperature", "0.9"))
    assert bad.returncode == 2
    assert "`temperature` is 0.7 in the bank but 0.9 now" in bad.stdout + bad.stderr
    again = _run(_build_cmd(killed, questions))  # nothing left to do: no engine start
    assert again.returncode == 0, again.stderr[-2000:]
    after = json.loads((killed / "meta.json").read_text())
    assert after["cost"] == meta["cost"] and after["license"] == "mine"
    assert samples.read_text().splitlines() == a


# ---- shared machines and pipes -----------------------------------------------------------
@pytest.mark.live
def test_threads_are_chosen_before_each_generate(tiny, monkeypatch) -> None:
    """Each generate computes with the threads the core meter chose (one per core other
    processes leave free, tests/test_backend_cpu.py); TTS_CPU_THREADS fixes the number."""
    import torch

    from tts.backends.cpu import THREADS_ENV, allowed_cores

    monkeypatch.delenv(THREADS_ENV, raising=False)
    tiny.generate([GenRequest(prompt=QUESTION, n=2, max_tokens=8, seed=5)])
    assert 1 <= tiny.settings["threads"] <= len(allowed_cores())
    assert tiny.settings["threads"] == tiny._meter.chosen == torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    (out,) = tiny.generate([GenRequest(prompt=QUESTION, n=2, max_tokens=8, seed=5)])
    assert all(c.tokens > 0 for c in out)
    assert tiny.settings["threads"] == torch.get_num_threads() == 1


@pytest.mark.live
def test_piped_live_solve_shows_progress_and_no_library_warnings() -> None:
    """Piped (nohup, CI), `tts solve --live` prints its progress as plain lines on the
    terminal's streams (not into vLLM's log) and none of the libraries' warnings."""
    import re
    import sys

    if not HAS_VLLM or not models.is_pulled("tiny"):
        pytest.skip("needs vLLM and the tiny model")
    run = _run([sys.executable, "-m", "tts.cli", "solve", QUESTION, "--budget", "1000",
                "--live", "--small", "tiny", "--large", "none", "--strategy", "vote",
                "-o", "max_samples=4", "-o", "max_tokens=64"])
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout + run.stderr
    assert "loaded smollm2-135m (vLLM) in" in text
    assert re.search(r"smollm2-135m: \d+/\d+ samples", run.stdout), run.stdout
    assert "Warning" not in text and "warn(" not in text, text


@pytest.mark.live
def test_lean_embeddings_change_no_output(tiny, monkeypatch) -> None:
    """The engine built with one copy of each vocabulary matrix (tts.backends.cpu.
    lean_embeddings, the default in-process on CPU) generates exactly what vLLM's own
    packing does: same texts, same logprobs."""
    import contextlib

    from tts.backends import vllm as backend_mod

    if tiny.settings.get("engine_process") != "in-process":
        pytest.skip("lean embeddings apply to in-process engines")
    reqs = [GenRequest(prompt=QUESTION, n=2, max_tokens=16, temperature=0.8, seed=21,
                       logprobs=True)]
    got = tiny.generate(reqs)
    monkeypatch.setattr(backend_mod, "lean_embeddings", contextlib.nullcontext)
    # Not closed: closing one in-process engine tears down vLLM's process-wide groups.
    plain = backend_mod.VLLMBackend("tiny", max_model_len=1024)
    expected = plain.generate(reqs)
    assert [c.text for c in got[0]] == [c.text for c in expected[0]]
    assert [c.mean_logprob for c in got[0]] == [c.mean_logprob for c in expected[0]]
