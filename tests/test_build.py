"""Building banks from a backend: here a replay of real samples; live vLLM in test_backend_vllm."""

import json

import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank
from tts.build import build_bank
from tts.budgets import MOT_USD
from tts.errors import BankError, ValidationError


def _source():
    bank = tts.replay_engine().backends["small"].bank
    return bank, [bank.problems[p] for p in bank.problem_ids[:7]]


def test_build_from_backend_then_replay_and_resume(tmp_path):
    bank, problems = _source()
    backend = ReplayBackend(bank, "llama-2-13b")
    dest = tmp_path / "built"
    calls = []
    build_bank(backend, problems[:4], dest, samples=5, batch=3, cost=MOT_USD, seed=3,
               progress=lambda i, n: calls.append((i, n)))
    assert calls == [(3, 4), (4, 4)]
    build_bank(backend, problems, dest, samples=5, batch=3, cost=MOT_USD, seed=3)  # resumes
    built = load_bank(dest)
    assert built.problem_ids == [p.id for p in problems]
    lines = (dest / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 7  # nothing written twice
    expected = backend.generate([tts.GenRequest(prompt="x", n=5, seed=3, problem_id=p.id)
                                 for p in problems])
    for p, comps in zip(problems, expected):
        rec = built.record(p.id, "llama-2-13b", "sample")
        assert [(s.answer, s.tokens) for s in rec.samples] == [(c.answer, c.tokens)
                                                                 for c in comps]
    results = tts.solve_many(problems, 10_000, strategy="vote", max_samples=5, bank=dest)
    assert all(r.samples <= 5 and r.cost <= 10_000 for r in results)


def test_build_refuses_bad_settings_and_other_models(tmp_path):
    bank, problems = _source()
    backend = ReplayBackend(bank, "llama-2-13b")
    with pytest.raises(ValidationError, match="`samples` must be an integer >= 0"):
        build_bank(backend, problems, tmp_path / "b", samples=-1, cost=MOT_USD)
    with pytest.raises(ValidationError, match="nothing to generate"):
        build_bank(backend, problems, tmp_path / "b", samples=0, cost=MOT_USD)
    build_bank(backend, problems[:1], tmp_path / "b", samples=2, cost=MOT_USD)
    with pytest.raises(BankError, match="would mix models"):
        build_bank(ReplayBackend(bank, "gpt-4"), problems[:1], tmp_path / "b", samples=2,
                   cost=MOT_USD)


# ---- per-sample fields, resume, settings, forced chains (fake live backend) ----------------
import random  # noqa: E402

from tts.answers import extract_answer  # noqa: E402
from tts.bank import SAMPLES_FILE, SAMPLES_GZ  # noqa: E402
from tts.budgets import QWEN_PARAMS  # noqa: E402
from tts.types import Completion, GenRequest, Problem  # noqa: E402


class FakeLive:
    """A deterministic stand-in for a live engine: text, stop/length, logprobs, confidences.

    Sample i of a stream depends only on (prompt, prefix, seed, offset + i, temperature,
    max_tokens), like the vLLM backend."""

    top_logprobs = 5
    conf_window = 4

    def __init__(self, model: str = "smollm2-135m", max_len: int = 120):
        self.model = model
        self.max_len = max_len
        self.calls: list[list[GenRequest]] = []
        self.last_confidences: list = []

    def prompt_tokens(self, request: GenRequest) -> int:
        return len((request.prompt + request.assistant_prefix).split())

    def generate(self, requests):
        self.calls.append(list(requests))
        out, self.last_confidences = [], []
        for r in requests:
            comps, confs = [], []
            for i in range(r.n):
                rng = random.Random(f"{r.prompt}|{r.assistant_prefix}|{r.seed}|{r.offset + i}|"
                                    f"{r.temperature}")
                if r.assistant_prefix.endswith("\\boxed{"):
                    words, want = [f"{rng.randrange(10)}}}"], 1
                else:
                    want = rng.randrange(3, self.max_len)
                    words = [f"w{rng.randrange(100)}" for _ in range(want - 1)]
                    words.append(f"\\boxed{{{rng.randrange(4)}}}")
                tokens = min(want, r.max_tokens)
                text = " ".join(words[:tokens])
                conf = [round(rng.uniform(0.1, 3.0), 3) for _ in range(tokens)]
                from tts.backends.vllm import lowest_window_mean

                comps.append(Completion(
                    text=text, answer=extract_answer(r.assistant_prefix + text), tokens=tokens,
                    finish_reason="length" if want > r.max_tokens else "stop",
                    prompt_tokens=self.prompt_tokens(r),
                    mean_logprob=-sum(conf) / tokens / 3 if r.logprobs else None,
                    min_conf=lowest_window_mean(conf, self.conf_window) if r.logprobs else None))
                confs.append(conf if r.logprobs else None)
            out.append(comps)
            self.last_confidences.append(confs)
        return out


def _problems(n=6):
    return [Problem(f"What is {i} + {i}?", id=f"gsm8k-test-{400 + i}", gold=str(2 * i))
            for i in range(n)]


def _lines(dest):
    return (dest / SAMPLES_FILE).read_text().splitlines()


def _keys(dest):
    return [(d["problem_id"], d["model"], d["mode"]) for d in map(json.loads, _lines(dest))]


def test_fields_logged_and_reloaded(tmp_path):
    dest = build_bank(FakeLive(), _problems(3), tmp_path / "b", samples=4, greedy=True,
                      max_tokens=60, cost=QWEN_PARAMS, seed=2)
    bank = load_bank(dest)
    rec = bank.record("gsm8k-test-400", "smollm2-135m", "sample")
    assert len(rec.samples) == 4
    for s in rec.samples:
        assert s.text and s.finish in ("stop", "length") and s.logprob < 0 < s.min_conf
        assert s.finish == "stop" or s.tokens == 60
    assert {s.finish for r in bank.records.values() for s in r.samples} == {"stop", "length"}
    g = bank.record("gsm8k-test-401", "smollm2-135m", "greedy").samples[0]
    assert g.logprob is not None and g.text
    meta = json.loads((dest / "meta.json").read_text())
    build = meta["build"]
    assert build["settings"]["smollm2-135m"]["sample"]["samples"] == 4
    assert bank.meta.modes["smollm2-135m"] == {"sample": "4 samples, T=0.7, max 60 tokens",
                                               "greedy": "1 greedy answer (T=0), max 60 tokens"}
    assert build["settings"]["smollm2-135m"]["greedy"]["temperature"] == 0.0
    assert build["settings"]["smollm2-135m"]["sample"]["logprobs"]["top_k"] == 5
    stats = build["stats"]["smollm2-135m"]["sample"]
    assert stats["records"] == 3 and stats["tokens"] == sum(
        s.tokens for (_, _, m), r in bank.records.items() if m == "sample" for s in r.samples)
    assert stats["seconds"] >= 0 and "tokens_per_s" in stats
    assert set(build["runs"][0]["versions"]) >= {"tts", "vllm", "torch", "transformers"}
    assert build["runs"][0]["finished"]


@pytest.mark.parametrize("bad, msg", [
    ({"finish": "eos"}, r"samples\[0\]\.finish must be one of"),
    ({"logprob": "x"}, r"samples\[0\]\.logprob must be a finite number"),
    ({"min_conf": float("nan")}, r"samples\[0\]\.min_conf must be a finite number"),
    ({"min_conf": 10 ** 400}, r"samples\[0\]\.min_conf must be a finite number"),
    ({"text": 5}, r"samples\[0\]\.text must be a string"),
])
def test_bad_sample_fields_name_file_and_line(tmp_path, bad, msg):
    dest = build_bank(FakeLive(), _problems(2), tmp_path / "b", samples=2, max_tokens=30,
                      cost=QWEN_PARAMS)
    lines = _lines(dest)
    d = json.loads(lines[1])
    d["samples"][0].update(bad)
    lines[1] = json.dumps(d)
    (dest / SAMPLES_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(BankError, match=f"samples.jsonl:2: {msg}"):
        load_bank(dest)


def test_old_banks_without_new_fields_still_load(tmp_path):
    bank, problems = _source()
    dest = build_bank(ReplayBackend(bank, "llama-2-13b"), problems[:2], tmp_path / "b",
                      samples=3, cost=MOT_USD)
    s = load_bank(dest).record(problems[0].id, "llama-2-13b", "sample").samples[0]
    assert s.finish == "stop" and s.logprob is None and s.min_conf is None
    assert "logprob" not in _lines(dest)[0]


def test_torn_last_line_dropped_on_resume_and_nothing_lost(tmp_path, capsys):
    problems = _problems(6)
    full = build_bank(FakeLive(), problems, tmp_path / "full", samples=3, batch=2,
                      max_tokens=50, cost=QWEN_PARAMS, seed=1)
    part = tmp_path / "part"
    build_bank(FakeLive(), problems[:3], part, samples=3, batch=2, max_tokens=50,
               cost=QWEN_PARAMS, seed=1)
    with open(part / SAMPLES_FILE, "a") as fh:  # a writer killed mid-line
        fh.write(_lines(full)[3][:57])
    with pytest.raises(BankError, match="samples.jsonl:4"):
        load_bank(part)  # reading stays strict; resuming repairs
    build_bank(FakeLive(), problems, part, samples=3, batch=2, max_tokens=50,
               cost=QWEN_PARAMS, seed=1)
    assert "dropped a torn last line (57 bytes)" in capsys.readouterr().err
    assert _lines(part) == _lines(full)  # no loss, no duplicate, same samples


def test_mismatched_resume_is_refused_naming_setting_and_values(tmp_path):
    dest = tmp_path / "b"
    kw = dict(samples=3, max_tokens=40, temperature=0.7, seed=1, cost=QWEN_PARAMS)
    build_bank(FakeLive(), _problems(2), dest, **kw)
    before = _lines(dest)
    for change, msg in [({"samples": 4}, "`samples` is 3 in the bank but 4 now"),
                        ({"seed": 2}, "`seed` is 1 in the bank but 2 now"),
                        ({"max_tokens": 41}, "`max_tokens` is 40 in the bank but 41 now"),
                        ({"temperature": 0.8}, "`temperature` is 0.7 in the bank but 0.8 now")]:
        with pytest.raises(BankError, match=f"cannot resume smollm2-135m 'sample'.*{msg}"):
            build_bank(FakeLive(), _problems(4), dest, **{**kw, **change})
    assert _lines(dest) == before
    build_bank(FakeLive(), _problems(4), dest, **kw)  # same settings: resumes
    assert len(_lines(dest)) == 4
    # forced chains: another length is a new mode, other forcing settings are refused
    ckw = dict(samples=0, chains=2, chain_lengths=[64], answer_tokens=8, cost=QWEN_PARAMS)
    build_bank(FakeLive(), _problems(1), dest, **ckw)
    with pytest.raises(BankError, match="`samples` is 2 in the bank but 3 now"):
        build_bank(FakeLive(), _problems(2), dest, **{**ckw, "chains": 3})
    with pytest.raises(BankError, match="`answer_tokens` is 8 in the bank but 16 now"):
        build_bank(FakeLive(), _problems(2), dest, **{**ckw, "answer_tokens": 16})
    build_bank(FakeLive(), _problems(1), dest, **{**ckw, "chain_lengths": [64, 96]})
    assert load_bank(dest).modes("smollm2-135m") == ["chain-64", "chain-96", "sample"]


def test_legacy_bank_without_settings_checks_sample_counts(tmp_path):
    dest = tmp_path / "b"
    build_bank(FakeLive(), _problems(2), dest, samples=3, max_tokens=30, cost=QWEN_PARAMS)
    meta = json.loads((dest / "meta.json").read_text())
    del meta["build"]
    (dest / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match="`samples` is 3 in the bank but 5 now"):
        build_bank(FakeLive(), _problems(3), dest, samples=5, max_tokens=30, cost=QWEN_PARAMS)


def test_resume_keeps_user_edits_and_accumulates_stats(tmp_path):
    dest = tmp_path / "b"
    build_bank(FakeLive(), _problems(2), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS)
    meta = json.loads((dest / "meta.json").read_text())
    meta["cost"]["models"]["smollm2-135m"] = {"output": 7.5, "prompt": 2.5}
    meta["cost"]["source"] = "my prices"
    meta["notes"] = "edited by hand"
    meta["license"] = "CC-BY-4.0"
    meta["mine"] = {"keep": True}
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    build_bank(FakeLive(), _problems(4), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS)
    after = json.loads((dest / "meta.json").read_text())
    for key in ("cost", "notes", "license", "mine", "roles", "name", "tokenizer"):
        assert after[key] == meta[key], key
    assert load_bank(dest).meta.cost.of("smollm2-135m").output == 7.5
    stats = after["build"]["stats"]["smollm2-135m"]["sample"]
    assert stats["records"] == 4 and len(after["build"]["runs"]) == 2
    before = (dest / "meta.json").read_bytes()
    build_bank(FakeLive(), _problems(4), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS)
    assert (dest / "meta.json").read_bytes() == before  # nothing to do: no run recorded
    assert stats["tokens"] == sum(s.tokens for r in load_bank(dest).records.values()
                                  for s in r.samples)


def test_small_and_large_in_one_folder(tmp_path):
    dest = tmp_path / "b"
    build_bank(FakeLive("qwen2.5-coder-0.5b"), _problems(3), dest, samples=4, max_tokens=30,
               cost=QWEN_PARAMS, role="small")
    build_bank(FakeLive("qwen2.5-coder-1.5b"), _problems(3), dest, samples=2, greedy=True,
               max_tokens=30, cost=QWEN_PARAMS, role="large")
    bank = load_bank(dest)
    assert dict(bank.meta.roles) == {"small": "qwen2.5-coder-0.5b",
                                     "large": "qwen2.5-coder-1.5b"}
    assert bank.meta.cost.of("qwen2.5-coder-1.5b").output == pytest.approx(1.54 / 0.49)
    assert bank.modes("qwen2.5-coder-1.5b") == ["greedy", "sample"]
    with pytest.raises(BankError, match="large model is 'qwen2.5-coder-1.5b'.*would mix"):
        build_bank(FakeLive("smollm2-135m"), _problems(1), dest, samples=2, cost=QWEN_PARAMS,
                   role="large")
    only_small = tmp_path / "s"
    build_bank(FakeLive("qwen2.5-coder-0.5b"), _problems(1), only_small, samples=4,
               max_tokens=30, cost=QWEN_PARAMS)
    with pytest.raises(BankError, match="is the small model of this bank"):
        build_bank(FakeLive("qwen2.5-coder-0.5b"), _problems(1), only_small, samples=4,
                   max_tokens=30, cost=QWEN_PARAMS, role="large")
    r = tts.solve_many([bank.problems[p] for p in bank.problem_ids], 5_000, strategy="cascade",
                       bank=dest, max_samples=4)
    assert all(x.cost <= 5_000 for x in r)


def test_forced_chains_use_the_chain_strategy(tmp_path):
    fake = FakeLive(max_len=150)
    problems = _problems(5)
    dest = build_bank(fake, problems, tmp_path / "b", samples=0, chains=2,
                      chain_lengths=[64, 96], answer_tokens=8, max_waits=3, min_continue=8,
                      batch=2, cost=QWEN_PARAMS, seed=4)
    bank = load_bank(dest)
    assert bank.modes("smollm2-135m") == ["chain-64", "chain-96"]
    lines = [json.loads(x) for x in _lines(dest)]
    assert [d["mode"] for d in lines] == ["chain-64"] * 5 + ["chain-96"] * 5  # mode by mode
    forced = waited = 0
    for (pid, _, mode), rec in bank.records.items():
        length = int(mode.split("-")[1])
        a, b = rec.samples
        assert a.text != b.text  # chain k has its own seed stream
        for s in rec.samples:
            assert 0 < s.tokens <= length + 8
            assert s.answer is not None and s.logprob < 0 and s.min_conf > 0
            forced += "Time is up. The final answer is \\boxed{" in s.text
            waited += "\nWait" in s.text
        assert rec.prompt_tokens == fake.prompt_tokens(
            GenRequest(prompt=tts.prompts.format_question(bank.problems[pid].question)))
    assert forced and waited  # both kinds of forcing happened
    # every first call carries its stream seed and asks for logprobs
    firsts = [r for call in fake.calls for r in call if not r.assistant_prefix]
    assert all(r.logprobs and r.seed is not None for r in firsts)
    assert len({r.seed for r in firsts}) == 4  # 2 lengths x 2 chains
    # the forced-answer call is greedy and its tokens count
    assert any(r.temperature == 0 and r.assistant_prefix.endswith("\\boxed{")
               for call in fake.calls for r in call)
    # replay: a chain of the bank is served by Chain with one sample
    from tts.backends.replay import ReplayBackend as RB

    served = RB(bank, "smollm2-135m").generate(
        [GenRequest(prompt="x", max_tokens=200, mode="chain-96", seed=0,
                    problem_id=problems[0].id)])
    assert served[0][0].tokens in [s.tokens for s in
                                    bank.record(problems[0].id, "smollm2-135m",
                                                "chain-96").samples]
    again = build_bank(FakeLive(max_len=150), problems, tmp_path / "c", samples=0, chains=2,
                       chain_lengths=[64, 96], answer_tokens=8, max_waits=3, min_continue=8,
                       batch=5, cost=QWEN_PARAMS, seed=4)
    assert _lines(again) == _lines(dest)  # batching does not change a chain


def test_gzipped_bank_loads_and_resumes(tmp_path):
    dest = tmp_path / "b"
    build_bank(FakeLive(), _problems(3), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS,
               compress=True)
    plain = _lines(dest)
    assert (dest / SAMPLES_GZ).is_file()
    (dest / SAMPLES_FILE).unlink()
    assert len(load_bank(dest).records) == 3  # read from samples.jsonl.gz
    build_bank(FakeLive(), _problems(5), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS,
               compress=True)
    assert _lines(dest)[:3] == plain and len(_lines(dest)) == 5
    import gzip

    assert gzip.decompress((dest / SAMPLES_GZ).read_bytes()).decode().splitlines() == \
        _lines(dest)


def test_build_output_path_and_settings_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BankError, match="must be a folder"):
        build_bank(FakeLive(), _problems(1), tmp_path / "file", samples=2, cost=QWEN_PARAMS)
    with pytest.raises(ValidationError, match="chain lengths must be integers >= 64"):
        build_bank(FakeLive(), _problems(1), tmp_path / "x", chains=2, chain_lengths=[10],
                   cost=QWEN_PARAMS)
    with pytest.raises(ValidationError, match="role"):
        build_bank(FakeLive(), _problems(1), tmp_path / "x", role="medium", cost=QWEN_PARAMS)
    with pytest.raises(ValidationError, match="appears twice"):
        build_bank(FakeLive(), _problems(1) * 2, tmp_path / "x", cost=QWEN_PARAMS)
    assert not (tmp_path / "x").exists()


def test_unwritable_bank_folder_is_a_clear_error(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(BankError, match="cannot write bank"):
            build_bank(FakeLive(), _problems(1), locked / "b", samples=2, cost=QWEN_PARAMS)
    finally:
        locked.chmod(0o700)


def test_corrupt_gz_is_a_clear_error(tmp_path):
    dest = build_bank(FakeLive(), _problems(1), tmp_path / "b", samples=2, max_tokens=30,
                      cost=QWEN_PARAMS)
    (dest / SAMPLES_FILE).unlink()
    (dest / SAMPLES_GZ).write_bytes(b"not gzip")
    with pytest.raises(BankError, match="cannot write bank"):
        build_bank(FakeLive(), _problems(2), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS)
    assert not (dest / SAMPLES_FILE).exists()  # no half-unpacked file to resume from


def test_samples_without_meta_are_not_appended_to(tmp_path):
    dest = build_bank(FakeLive(), _problems(1), tmp_path / "b", samples=2, max_tokens=30,
                      cost=QWEN_PARAMS)
    (dest / "meta.json").unlink()
    with pytest.raises(BankError, match="holds samples but no meta.json"):
        build_bank(FakeLive(), _problems(2), dest, samples=2, max_tokens=30, cost=QWEN_PARAMS)
    assert len(_lines(dest)) == 1


@pytest.mark.parametrize("extra, match", [
    (["--chain-lengths", "1024,x"], "--chain-lengths must be comma-separated integers"),
    (["--start", "-1"], "--start must be >= 0"),
    (["--start", "100000"], "--start 100000 is past the"),
    (["--n", "0"], "--n must be >= 1"),
])
def test_cli_build_argument_errors_before_any_engine(tmp_path, capsys, extra, match):
    from tts.cli import main

    assert main(["bank", "build", str(tmp_path / "b"), "--model", "tiny", *extra]) == 2
    assert match in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "b" / "meta.json").exists()
