"""Budget sweep: oracle bound, CIs, exact regeneration, resume, derived measures, bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import tts
from tts.answers import is_correct
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank, save_bank
from tts.cli import main
from tts.errors import BankError, UnknownNameError, ValidationError
from tts.policy import DefaultPolicy
from tts.strategies import Vote
from tts.cli_args import check_budgets, parse_budgets
from tts.measures import area_under_curve, gap_closed, tokens_to_match
from tts.sweep import SweepResult, markdown, run_sweep
from tts.sweep.evaluator import Evaluator

from .conftest import make_bank

BUDGETS = [512, 2048, 131072]


def first_questions(n: int):
    """The first `n` questions of the bundled real bank."""
    bank = load_bank(tts.BUNDLED_BANK)
    return bank.subset(bank.problem_ids[:n])


@pytest.fixture(scope="module")
def mot_small():
    return first_questions(40)


@pytest.fixture(scope="module")
def mot_small_path(mot_small, tmp_path_factory):
    return save_bank(mot_small, tmp_path_factory.mktemp("bank") / "mot40")


@pytest.fixture(scope="module")
def result(mot_small) -> SweepResult:
    return run_sweep(mot_small, BUDGETS, seeds=2, bootstrap=100, progress=False)


def test_rows_cover_every_plan_and_budget(result):
    assert result.names == ("vote@1", "vote@2", "vote@4", "vote@8", "vote@16", "vote@20", "vote",
                            "chain", "escalate", "cascade", "policy", "oracle")
    assert len(result.rows) == len(BUDGETS) * len(result.names)
    assert result.unavailable == {"chain": result.row(512, "chain").note}
    assert "no 'chain' samples" in result.unavailable["chain"]
    assert not result.heldout and result.n_questions == 40


def test_oracle_bounds_every_plan_and_cis_hold_the_estimate(result):
    for b in BUDGETS:
        oracle = result.row(b, "oracle")
        for name in result.available_names:
            r = result.row(b, name)
            assert r.accuracy <= oracle.accuracy + 1e-12, (b, name)
            assert r.ci_low <= r.accuracy <= r.ci_high, (b, name)
            assert 0 <= r.spend_mean <= r.spend_p95 <= b + 1e-9
            spent = sum(mean for mean, _ in r.spend_by_model.values())
            assert math.isclose(spent, r.spend_mean, rel_tol=1e-4, abs_tol=1e-3)


def test_budget_limits_and_escalation(result):
    # One GPT-4 call reserves 512 x 240 units: impossible below that, always right-ish above.
    esc_low, esc_high = result.row(2048, "escalate"), result.row(131072, "escalate")
    assert esc_low.accuracy == 0 and esc_low.insufficient == 1 and esc_low.spend_mean == 0
    assert esc_high.escalated == 1 and esc_high.accuracy > 0.9
    # Votes grow with budget; vote@1 does not.
    assert result.row(512, "vote@20").accuracy == result.row(512, "vote@1").accuracy
    assert result.row(2048, "vote@20").spend_mean > result.row(512, "vote@20").spend_mean
    assert result.row(131072, "vote@1").spend_mean == result.row(512, "vote@1").spend_mean


def test_matches_solve_many_directly(mot_small):
    engine = tts.Engine(ReplayBackend(mot_small, "llama-2-13b"),
                        ReplayBackend(mot_small, "gpt-4"), cost=mot_small.meta.cost, seed=1)
    problems = [mot_small.problems[p] for p in mot_small.problem_ids]
    rs = engine.solve_many(problems, 2048,
                           strategy=Vote(max_samples=8, wave=8, confidence=1.0))
    acc = np.mean([is_correct(r.answer, p.gold) for r, p in zip(rs, problems)])
    one = run_sweep(mot_small, [2048], strategies=["vote@8"], seeds=[1], bootstrap=0,
                    progress=False)
    assert one.row(2048, "vote@8").accuracy == pytest.approx(acc, abs=1e-6)
    assert one.row(2048, "vote@8").spend_mean == pytest.approx(np.mean([r.cost for r in rs]),
                                                                rel=1e-5)


def test_chain_runs_when_the_bank_has_chains():
    bank = make_bank(n_problems=12, n_small=18)
    r = run_sweep(bank, [300, 3000], seeds=2, bootstrap=20, progress=False)
    assert "chain" in r.available_names and "vote@18" in r.names and "vote@32" not in r.names
    for b in (300, 3000):
        assert all(r.row(b, n).accuracy <= r.row(b, "oracle").accuracy
                   for n in r.available_names)


def test_heldout_ids_and_policy_training_split(mot_small):
    ids = mot_small.problem_ids[30:]
    r = run_sweep(mot_small, [2048], strategies=["vote@4", "policy", "oracle"], seeds=1,
                  bootstrap=10, heldout_ids=ids, progress=False)
    assert r.heldout and r.n_questions == 10 and r.total_questions == 40
    assert "held-out: 10 of 40" in r.split_note
    assert "held-out 10/40" in markdown(r.report()) or "held-out: 10 of 40" in markdown(r.report())

    class TrainedPolicy(DefaultPolicy):
        train_ids = mot_small.problem_ids[:25]

    r2 = run_sweep(mot_small, [2048], strategies=["policy"], policy=TrainedPolicy(), seeds=1,
                   bootstrap=10, progress=False)
    assert r2.heldout and r2.n_questions == 15
    with pytest.raises(ValidationError, match="training split"):
        run_sweep(mot_small, [2048], policy=TrainedPolicy(),
                  heldout_ids=ids[:1] + [mot_small.problem_ids[0]], progress=False)
    with pytest.raises(BankError, match="not in bank"):
        run_sweep(mot_small, [2048], heldout_ids=["nope"], progress=False)


# ---- derived measures ------------------------------------------------------------------------
def test_tokens_to_match_interpolates_in_log_spend():
    t = tokens_to_match([100, 1000, 4000], [0.3, 0.5, 0.6], [10, 100, 1000], [0.4, 0.5, 0.7])
    assert t.target == 0.6 and t.reference_spend == 4000
    assert t.candidate_spend == pytest.approx(math.exp(math.log(100) + 0.5 * math.log(10)))
    assert t.ratio == pytest.approx(4000 / t.candidate_spend) and t.reached
    never = tokens_to_match([1, 2], [0.5, 0.9], [1, 2], [0.1, 0.2])
    assert not never.reached and math.isnan(never.ratio)
    first = tokens_to_match([1, 8], [0.5, 0.6], [2, 4], [0.7, 0.8])
    assert first.candidate_spend == 2 and first.ratio == 4


def test_gap_closed_and_auc():
    g = gap_closed([0.5, 0.9, 0.4, 0.7], [0.5, 0.8, 0.5, 0.7], [0.7, 1.0, 0.6, 0.7])
    assert g[0] == 0 and g[1] == pytest.approx(0.5) and g[2] == pytest.approx(-1)
    assert math.isnan(g[3])
    assert area_under_curve([1, 10, 100], [0.2, 0.4, 0.4]) == pytest.approx(0.35)
    assert area_under_curve([5], [0.3]) == 0.3
    with pytest.raises(ValidationError):
        area_under_curve([1, 1], [0.1, 0.2])


def test_result_derived_measures(result):
    t = result.tokens_to_match("best-vote", "oracle")
    assert t.reached and t.ratio > 1  # the oracle beats any fixed vote at a fraction of the cost
    gaps = result.gap_closed("policy")
    assert gaps.shape == (3,)
    assert 0 <= result.auc("oracle") <= 1
    assert result.auc("oracle") >= max(result.auc(n) for n in result.available_names)


# ---- regeneration, outputs and resume --------------------------------------------------------
def _cli(path, out, *extra):
    return main(["sweep", "--bank", str(path), "--budgets", "512,2048,131072", "--seeds", "2",
                 "--bootstrap", "50", "--out", str(out), "--no-progress", *extra])


def test_cli_writes_outputs_and_regenerates_exactly(mot_small_path, tmp_path, capsys):
    assert _cli(mot_small_path, tmp_path / "a") == 0
    assert _cli(mot_small_path, tmp_path / "b") == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "all 40 questions" in out
    a, b = (tmp_path / d / "sweep.csv" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
    md = (tmp_path / "a" / "sweep.md").read_text()
    assert "tts sweep --bank" in md and "--budgets 512,2048,131072" in md
    assert "![accuracy vs spend](sweep.png)" in md and "chain: unavailable" in md
    assert (tmp_path / "a" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # Re-running on a finished folder resumes everything and rewrites the same CSV.
    assert _cli(mot_small_path, tmp_path / "a") == 0
    assert a.read_bytes() == b.read_bytes()
    assert "3 budgets resumed" in capsys.readouterr().out


def test_resume_after_interruption(mot_small, tmp_path, monkeypatch):
    full = run_sweep(mot_small, BUDGETS, seeds=2, bootstrap=50, progress=False)
    full.write(tmp_path / "full")
    ckpt = tmp_path / "part" / "sweep.csv"
    real_run, calls = Evaluator.run, []

    def flaky(self, entry, budget):
        if budget == BUDGETS[1] and entry.name == "vote@8":
            raise KeyboardInterrupt
        calls.append(budget)
        return real_run(self, entry, budget)

    monkeypatch.setattr(Evaluator, "run", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(mot_small, BUDGETS, seeds=2, bootstrap=50, progress=False, checkpoint=ckpt)
    lines = ckpt.read_text().splitlines()
    assert len(lines) == 1 + len(full.names)  # header + the finished budget only
    monkeypatch.setattr(Evaluator, "run", real_run)
    calls.clear()

    def counting(self, entry, budget):
        calls.append(budget)
        return real_run(self, entry, budget)

    monkeypatch.setattr(Evaluator, "run", counting)
    resumed = run_sweep(mot_small, BUDGETS, seeds=2, bootstrap=50, progress=False,
                        checkpoint=ckpt)
    assert BUDGETS[0] not in calls and set(calls) == set(BUDGETS[1:])
    assert resumed.resumed_budgets == (BUDGETS[0],)
    resumed.write(tmp_path / "part")
    assert ckpt.read_bytes() == (tmp_path / "full" / "sweep.csv").read_bytes()
    # A checkpoint from other settings is refused rather than silently mixed in.
    with pytest.raises(ValidationError, match="other settings"):
        run_sweep(mot_small, BUDGETS, seeds=3, bootstrap=50, progress=False, checkpoint=ckpt)


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("budgets, match", [
    ("", "at least one budget"),
    (",", "at least one budget"),
    ("512,256", "strictly increasing: 256 comes after 512"),
    ("512,512", "512 repeats 512"),
    ("-5,10", r"budgets\[0\]` must be > 0"),
    ("0", "must be > 0"),
    ("abc,1", "comma-separated numbers, got 'abc'"),
    ("nan", "NaN"),
    ("1e13", "check the unit"),
])
def test_cli_bad_budgets(budgets, match, mot_small_path, tmp_path, capsys):
    code = main(["sweep", "--bank", str(mot_small_path), f"--budgets={budgets}",
                 "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 2 and "error:" in err and re.search(match, err), err
    assert "Traceback" not in err


def test_cli_bad_strategy_bank_and_files(mot_small_path, tmp_path, capsys):
    def run(*argv):
        code = main(["sweep", "--budgets", "512", "--out", str(tmp_path / "o"), "--no-progress",
                     *argv])
        return code, capsys.readouterr().err.replace("\n", " ")

    code, err = run("--bank", str(mot_small_path), "--strategies", "vote@4,beam")
    assert code == 2 and "unknown strategy 'beam'" in err and "escalate" in err
    code, err = run("--bank", str(mot_small_path), "--strategies", "vote@64")
    assert code == 2 and "holds 20" in err
    code, err = run("--bank", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    nogold = make_bank(n_problems=3)
    for p in nogold.problems.values():
        object.__setattr__(p, "gold", None)
    code, err = run("--bank", str(save_bank(nogold, tmp_path / "nogold")))
    assert code == 2 and "no gold answer for 3 of 3" in err
    code, err = run("--bank", str(mot_small_path), "--heldout", str(tmp_path / "none.json"))
    assert code == 2 and "does not exist" in err
    code, err = run("--bank", str(mot_small_path), "--policy", str(tmp_path / "none.json"))
    assert code == 2 and "does not exist" in err
    code, err = run("--bank", str(mot_small_path), "--seeds", "0")
    assert code == 2 and "`seeds` must be >= 1" in err


def test_api_bad_input(mot_small):
    with pytest.raises(ValidationError, match="at least one budget"):
        check_budgets([])
    with pytest.raises(ValidationError, match="must be a number"):
        check_budgets([512, "big"])
    with pytest.raises(ValidationError, match="list of numbers"):
        check_budgets("512")
    assert parse_budgets("512, 1_024,2e3") == (512.0, 1024.0, 2000.0)
    with pytest.raises(UnknownNameError, match="unknown strategy 'nope'"):
        run_sweep(mot_small, [512], strategies=["nope"], progress=False)
    with pytest.raises(ValidationError, match="besides the oracle"):
        run_sweep(mot_small, [512], strategies=["oracle"], progress=False)
    with pytest.raises(ValidationError, match="listed twice"):
        run_sweep(mot_small, [512], strategies=["vote", "vote"], progress=False)
    with pytest.raises(ValidationError, match="bootstrap"):
        run_sweep(mot_small, [512], bootstrap=-1, progress=False)


def test_vectorised_and_solve_many_agree_exactly(mot_small):
    kw = dict(seeds=2, bootstrap=50, progress=False,
              strategies=["vote@1", "vote@20", "vote", "escalate", "escalate@3", "cascade",
                          "policy", "oracle"])
    fast = run_sweep(mot_small, [768, 124000, 393216], method="vectorised", **kw)
    slow = run_sweep(mot_small, [768, 124000, 393216], method="solve_many", **kw)
    assert fast.rows == slow.rows
    assert fast.row(393216, "escalate@3").escalated == 1
    with pytest.raises(ValidationError, match="method"):
        run_sweep(mot_small, [768], method="gpu", progress=False)
    with pytest.raises(ValidationError, match=r"escalate@9: N must be in \[2, 6\]"):
        run_sweep(mot_small, [768], strategies=["escalate@9"], progress=False)


def test_custom_strategies_mapping(mot_small):
    r = run_sweep(mot_small, [2048], strategies={"mine": Vote(max_samples=3, wave=3),
                                                 "vote@4": None, "oracle": None},
                  seeds=1, bootstrap=0, progress=False)
    assert r.names == ("mine", "vote@4", "oracle")
    row = r.row(2048, "mine")
    assert row.ci_low == row.accuracy == row.ci_high  # no resamples: the interval is the point
    with pytest.raises(ValidationError, match="reserved"):
        run_sweep(mot_small, [2048], strategies={"policy": Vote()}, progress=False)


def test_summary_is_plain_data(result):
    import json

    s = result.summary("policy")
    json.dumps(s)  # serialisable
    assert s["plan"] == "policy" and len(s["accuracy"]) == 3 and not s["heldout"]
    assert isinstance(s["dominates_all_fixed"], bool)
    best_vote = max(max(result.curve(n)["accuracy"]) for n in result.available_names
                    if n.startswith("vote@"))
    assert s["tokens_to_match_best_vote_spend"]["target"] == best_vote
    assert result.dominates("oracle")


def test_policy_file_naming_its_training_split(mot_small, mot_small_path, tmp_path, capsys):
    from tts.policy import DEFAULT_RUNGS, single_level

    train = mot_small.problem_ids[:25]
    path = tmp_path / "policy.json"
    single_level(None, DEFAULT_RUNGS, notes={"train_ids": train}).to_json(path)
    assert main(["sweep", "--bank", str(mot_small_path), "--budgets", "2048,131072",
                 "--strategies", "vote@4,escalate,adaptive,policy,oracle", "--policy", str(path),
                 "--seeds", "2", "--bootstrap", "20", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "held-out: 15 of 40" in out
    md = (tmp_path / "o" / "sweep.md").read_text()
    assert "held-out: 15 of 40" in md and "--policy" in md
    assert ",held-out 15/40," in (tmp_path / "o" / "sweep.csv").read_text()
    # Same numbers as the Python API on the same split.
    r = run_sweep(mot_small, [2048, 131072], strategies=["policy"], policy=path, seeds=2,
                  bootstrap=20, progress=False)
    assert r.heldout and r.n_questions == 15


def test_custom_strategy_numpy_cannot_vectorise_falls_back_to_the_engine(mot_small):
    from dataclasses import dataclass

    from tts.strategies import Strategy
    from tts.strategies.escalate import Escalate, escalate_steps

    @dataclass(frozen=True)
    class Greedy(Strategy):  # a Strategy evaluate() does not know: still exact via the engine
        name = "greedy"
        roles = ("large",)

        def steps(self, problem, ctx):
            return (yield from escalate_steps(Escalate(), problem, ctx, role="large"))

    r = run_sweep(mot_small, [131072], strategies={"greedy": Greedy(), "escalate": None},
                  seeds=1, bootstrap=0, progress=False)
    assert r.row(131072, "greedy").accuracy == r.row(131072, "escalate").accuracy
