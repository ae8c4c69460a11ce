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
    answers = ev.answers(SUB)[0]
    for j, r in enumerate(results):
        assert r.cost <= budget
        assert (r.answer, r.status, r.escalated) == (
            answers[j], ev.status_names()[0, j], bool(ev.escalated[0, j]))
        assert r.cost == ev.cost[0, j]
        assert dict(r.tokens).get("gpt-4", 0) == ev.tokens["gpt-4"][0, j]


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
