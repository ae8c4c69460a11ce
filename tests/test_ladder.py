"""Model ladders: the Ladder strategy on the engine equals its vectorised evaluation, budgets
hold, ladder policies round-trip, and bad ladders are clear errors."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank
from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.ladder_policy import LadderLevel, LadderPolicy, single_level
from tts.policy import load_policy
from tts.signals import CLIMB_FEATURES
from tts.strategies import Ladder, Rung

BANK = load_bank(tts.BUNDLED_BANK)
ARRAYS = BankArrays.from_bank(BANK)
PIDS = BANK.problem_ids[:40]
SUB = ARRAYS.subset(range(40))
WEIGHT = st.floats(-6, 6, allow_nan=False)



def assert_same_as_evaluator(results, ev, arrays, budget, models) -> None:
    """The engine's Results equal the evaluator's seed-0 row: answer, status, escalation,
    cost and tokens per model (a model the evaluator never called spent 0), within budget."""
    answers = ev.answers(arrays)[0]
    for j, r in enumerate(results):
        assert r.cost <= budget
        assert (r.answer, r.status, r.escalated) == (
            answers[j], ev.status_names()[0, j], bool(ev.escalated[0, j]))
        assert r.cost == ev.cost[0, j]
        for model in models:
            spent = ev.tokens[model][0, j] if model in ev.tokens else 0
            assert dict(r.tokens).get(model, 0) == spent

@st.composite
def ladders(draw):
    small = Rung(role="small", wave=draw(st.integers(1, 6)),
                 max_samples=draw(st.integers(1, 20)),
                 max_tokens=draw(st.sampled_from([64, 128, 512])),
                 confidence=draw(st.sampled_from([1.0, 0.8, 0.95])),
                 climb_below=draw(st.floats(0, 1)), climb_above=draw(st.floats(0, 1)),
                 weights=tuple(draw(WEIGHT) for _ in range(len(CLIMB_FEATURES) + 1)))
    if draw(st.booleans()):
        top = Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1)
    else:
        top = Rung(role="large", mode="sample", max_samples=draw(st.integers(1, 6)),
                   wave=draw(st.integers(1, 3)), confidence=draw(st.sampled_from([1.0, 0.9])),
                   check_mode="greedy", check_samples=1)
    return Ladder(rungs=(small, top), prior=draw(st.floats(-2, 2)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ladders(), st.sampled_from([1, 300, 2_000, 60_000, 262_144]), st.booleans(),
       st.integers(0, 4))
def test_engine_equals_evaluator_and_budget_holds(ladder, budget, count_prompt, seed):
    ev = evaluate(SUB, ladder, budget, [seed], count_prompt=count_prompt)
    engine = tts.Engine(ReplayBackend(BANK, "llama-2-13b"), ReplayBackend(BANK, "gpt-4"),
                        seed=seed, count_prompt=count_prompt)
    results = engine.solve_many([BANK.problems[p] for p in PIDS], budget, strategy=ladder)
    assert_same_as_evaluator(results, ev, SUB, budget, ("gpt-4",))


def test_two_rung_ladder_reproduces_the_cascade():
    from tts.strategies import Cascade

    cascade = Cascade(max_samples=8, wave=4, confidence=0.95, escalate_below=0.6)
    ladder = Ladder(rungs=(Rung(role="small", wave=4, max_samples=8, confidence=0.95,
                                climb_below=0.6),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    a = evaluate(ARRAYS, cascade, 262_144, [0, 1])
    b = evaluate(ARRAYS, ladder, 262_144, [0, 1])
    assert (a.correct == b.correct).all() and (a.cost == b.cost).all()


def test_three_tier_engine_climbs_in_order():
    """Each tier gets one batched call per round, cheapest first."""
    calls = []

    class Spy(ReplayBackend):
        def generate(self, requests):
            calls.append((self.model, len(requests)))
            return super().generate(requests)

    from tts.budgets import CostModel

    cost = CostModel.from_dict({"models": {"llama-2-13b": {"output": 1, "prompt": 1},
                                           "gpt-4-copy": {"output": 10, "prompt": 10},
                                           "gpt-4": {"output": 240, "prompt": 120}}})
    engine = tts.Engine([Spy(BANK, "llama-2-13b"), _Renamed(BANK, "gpt-4", "gpt-4-copy"),
                         Spy(BANK, "gpt-4")], cost=cost)
    assert engine.models == {"small": "llama-2-13b", "tier1": "gpt-4-copy", "large": "gpt-4"}
    ladder = Ladder(rungs=(Rung(role="small", wave=4, max_samples=4, climb_above=0.0),
                           Rung(role="tier1", mode="sample", wave=2, max_samples=2,
                                climb_above=0.0),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    results = engine.solve_many([BANK.problems[p] for p in PIDS[:6]], 1e9, strategy=ladder)
    assert all(r.escalated for r in results if r.status == "answered")
    models = [m for m, _ in calls]
    assert models == sorted(models, key=["llama-2-13b", "gpt-4"].index)


class _Renamed(ReplayBackend):
    """gpt-4's samples served under another name (a middle tier for the order test)."""

    def __init__(self, bank, model, name):
        super().__init__(bank, model)
        self.model = name
        self._source = model

    def _record(self, request):
        return self.bank.record(request.problem_id, self._source, request.sampling_mode)


def test_bad_ladders_are_clear_errors():
    with pytest.raises(ValidationError, match="appears twice"):
        tts.replay_engine(ladder=["gpt-4", "gpt-4"])
    with pytest.raises(ValidationError, match="cheapest first"):
        tts.replay_engine(ladder=["gpt-4", "llama-2-13b"])
    with pytest.raises(BankError, match="no samples of model 'gpt-9'"):
        tts.replay_engine(ladder=["llama-2-13b", "gpt-9"])
    with pytest.raises(BankError, match="no samples of model 'gpt-9'"):
        ARRAYS.with_ladder(["llama-2-13b", "gpt-9"])
    with pytest.raises(ValidationError, match="at least one Rung"):
        Ladder(rungs=())
    with pytest.raises(ValidationError, match="both `check_mode` and `check_samples`"):
        Rung(check_mode="pot")
    with pytest.raises(ValidationError, match="`role` must be a role"):
        Rung(role="medium")


def test_ladder_policy_round_trip_and_model_check(tmp_path):
    rungs = (Rung(role="small", wave=4, max_samples=8, climb_below=0.6),
             Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1))
    policy = single_level(["llama-2-13b", "gpt-4"], rungs, notes={"why": "test"})
    path = tmp_path / "policy.json"
    policy.to_json(path)
    loaded = load_policy(path)
    assert isinstance(loaded, LadderPolicy) and loaded.levels == policy.levels
    a = tts.replay_engine(policy=loaded).solve_many([BANK.problems[p] for p in PIDS], 262_144)
    b = evaluate(SUB, loaded, 262_144, [0])
    assert [r.answer for r in a] == b.answers(SUB)[0]
    other = single_level(["llama-2-13b", "gpt-3.5-turbo"], rungs)
    with pytest.raises(ValidationError, match="tuned for the ladder"):
        tts.replay_engine(policy=other).solve(BANK.problems[PIDS[0]], 262_144)
    with pytest.raises(ValidationError, match="role 'tier1'"):
        LadderPolicy(("a", "b"), (LadderLevel(0.0, (Rung(role="tier1"),)),))
    data = json.loads(path.read_text())
    data["levels"][0]["rungs"][0]["climb_below"] = "high"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=r"levels\[0\].rungs\[0\].*climb_below"):
        load_policy(path)


# ---- chain rungs: a rung of budget-forced long chains (mode "chain-<L>") ---------------------
def _chain_bank(seed):
    from .conftest import make_bank

    return make_bank(n_problems=4, n_small=6, n_large=3, seed=seed, prompt_tokens=30,
                     max_sample_tokens=200, chain_lengths=(128, 256), n_chains=2)


@st.composite
def chain_ladders(draw):
    """small vote and/or a small chain rung (same model twice), then the large model."""
    def climb():
        return dict(climb_below=draw(st.floats(0, 1)), climb_above=draw(st.floats(0, 1)),
                    weights=tuple(draw(WEIGHT) for _ in range(len(CLIMB_FEATURES) + 1)))

    length = draw(st.sampled_from([128, 256]))
    chain = Rung(role="small", mode=f"chain-{length}", max_samples=draw(st.integers(1, 2)),
                 max_tokens=draw(st.sampled_from([64, length, length + 32])), **climb())
    vote = Rung(role="small", wave=draw(st.integers(1, 3)), max_samples=draw(st.integers(1, 6)),
                max_tokens=draw(st.sampled_from([64, 200])), **climb())
    lower = draw(st.sampled_from([(vote, chain), (chain,), (chain, vote)]))
    top = draw(st.sampled_from([
        Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1),
        Rung(role="large", mode="sample", max_samples=3, wave=2)]))
    return Ladder(rungs=(*lower, top), prior=draw(st.floats(-2, 2)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain_ladders(), st.integers(0, 50), st.sampled_from([1, 50, 150, 400, 900, 5_000, 1e6]),
       st.booleans(), st.integers(0, 3))
def test_chain_rungs_engine_equals_evaluator_and_budget_holds(ladder, bank_seed, budget,
                                                              count_prompt, seed):
    bank = _chain_bank(bank_seed)
    arrays = BankArrays.from_bank(bank)
    ev = evaluate(arrays, ladder, budget, [seed], count_prompt=count_prompt)
    engine = tts.Engine(ReplayBackend(bank, "s"), ReplayBackend(bank, "l"), seed=seed,
                        count_prompt=count_prompt, cost=bank.meta.cost)
    results = engine.solve_many([bank.problems[p] for p in arrays.problem_ids], budget,
                                strategy=ladder)
    assert_same_as_evaluator(results, ev, arrays, budget, ("s", "l"))


def test_chain_rung_pays_the_prompt_once_per_mode_and_draws_distinct_chains():
    """small:sample, small:chain-256, large:greedy: the same model twice, each mode's prompt
    paid once, the two chains are draws 0 and 1 of the stream."""
    bank = _chain_bank(1)
    calls = []

    class Spy(ReplayBackend):
        def generate(self, requests):
            calls.extend((r.mode, r.offset, r.n) for r in requests)
            return super().generate(requests)

    ladder = Ladder(rungs=(Rung(role="small", wave=6, max_samples=6, climb_above=0.0),
                           Rung(role="small", mode="chain-256", max_samples=2, max_tokens=288,
                                climb_above=0.0),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    engine = tts.Engine(Spy(bank, "s"), ReplayBackend(bank, "l"), count_prompt=True,
                        cost=bank.meta.cost)
    r = engine.solve(bank.problems["p0"], 1e6, strategy=ladder)
    assert calls == [(None, 0, 6), ("chain-256", 0, 1), ("chain-256", 1, 1)]  # None: "sample"
    assert r.escalated and dict(r.tokens)["s"] == (
        30 + sum(x.tokens for x in bank.record("p0", "s", "sample").samples)
        + 33 + sum(x.tokens for x in bank.record("p0", "s", "chain-256").samples))
    ev = evaluate(BankArrays.from_bank(bank), ladder, 1e6, [0], count_prompt=True)
    assert ev.tokens["s"][0, 0] == dict(r.tokens)["s"] and ev.cost[0, 0] == r.cost


def test_chain_rung_budget_forcing_on_a_live_backend():
    """Live, a chain rung's chains are the Chain strategy's: cut at their share and asked for
    the answer, or told "Wait"; chain j's calls never share a sample stream position."""
    from tts.prompts import CONTINUE_CUE, FINAL_ANSWER_CUE

    from .test_build import FakeLive

    small, large = FakeLive("qwen2.5-coder-0.5b", 90), FakeLive("qwen2.5-coder-1.5b", 40)
    engine = tts.Engine(small, large, count_prompt=True)
    ladder = Ladder(rungs=(Rung(role="small", mode="chain-64", max_samples=3, max_tokens=64,
                                answer_tokens=8, max_waits=2, climb_below=1.0),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    forced = waited = 0
    for i in range(6):
        small.calls.clear()
        budget = 4000 if i % 2 else 150
        r = engine.solve(f"What is {i} + {i}?", budget, strategy=ladder)
        assert r.cost <= budget
        reqs = [q for call in small.calls for q in call]
        sampled = [q for q in reqs if q.temperature > 0]
        assert len({q.offset for q in sampled}) == len(sampled)  # distinct stream positions
        forced += any(q.assistant_prefix.endswith(FINAL_ANSWER_CUE) for q in reqs)
        waited += any(CONTINUE_CUE in q.assistant_prefix for q in reqs)
    assert forced and waited


def test_bad_chain_rungs_are_clear_errors():
    with pytest.raises(ValidationError, match="chain rung .* takes no check"):
        Rung(mode="chain-1024", check_mode="sample", check_samples=1)
    with pytest.raises(ValidationError, match="`confidence` must be 1.0"):
        Rung(mode="chain-1024", confidence=0.9)
    with pytest.raises(ValidationError, match="are for chain rungs"):
        Rung(mode="sample", answer_tokens=32)
    assert Rung(mode="chain-1024", max_tokens=1056, answer_tokens=32).chain().answer_tokens == 32
