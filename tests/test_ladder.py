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
from tts.evaluate import BankArrays, evaluate, ladder_features
from tts.policy import LadderLevel, LadderPolicy, single_level
from tts.policy import load_policy
from tts.signals import CLIMB_FEATURES
from tts.strategies import Ladder, Rung

from .test_confidence_vote import qwen  # noqa: F401  (the Qwen bank snapshot fixture)

BANK = load_bank(tts.BUNDLED_BANK)
ARRAYS = BankArrays.from_bank(BANK)
PIDS = BANK.problem_ids[:40]
SUB = ARRAYS.subset(range(40))
WEIGHT = st.floats(-6, 6, allow_nan=False)


def climb_weights(draw, confidences: bool = False) -> tuple[float, ...]:
    """A rung's score weights; leader_conf's is 0 unless the bank has confidences."""
    return (*(draw(WEIGHT) for _ in CLIMB_FEATURES), draw(WEIGHT) if confidences else 0.0)


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

def assert_replay_equals_evaluator(bank, ladder, budget, count_prompt, seed) -> None:
    """`assert_same_as_evaluator` for `ladder` on every question of `bank` (its small and
    large models replayed)."""
    arrays = BankArrays.from_bank(bank)
    models = (bank.role_model("small"), bank.meta.roles["large"])
    ev = evaluate(arrays, ladder, budget, [seed], count_prompt=count_prompt)
    engine = tts.Engine(ReplayBackend(bank, models[0]), ReplayBackend(bank, models[1]),
                        seed=seed, count_prompt=count_prompt, cost=bank.meta.cost)
    results = engine.solve_many([bank.problems[p] for p in arrays.problem_ids], budget,
                                strategy=ladder)
    assert_same_as_evaluator(results, ev, arrays, budget, models)


def early_weights(draw) -> tuple[float, ...]:
    """Score weights an early climb may read: 0 for check_agreement, lower_agreement and
    leader_conf."""
    w = list(climb_weights(draw))
    for name in ("check_agreement", "lower_agreement", "leader_conf"):
        w[1 + CLIMB_FEATURES.index(name)] = 0.0
    return tuple(w)


@st.composite
def ladders(draw):
    early = draw(st.booleans())
    small = Rung(role="small", wave=draw(st.integers(1, 6)),
                 max_samples=draw(st.integers(1, 20)),
                 max_tokens=draw(st.sampled_from([64, 128, 512])),
                 confidence=draw(st.sampled_from([1.0, 0.8, 0.95])),
                 climb_below=draw(st.floats(0, 1)), climb_above=draw(st.floats(0, 1)),
                 weights=early_weights(draw) if early else climb_weights(draw),
                 probe=draw(st.none() | st.integers(1, 8)),
                 climb_early_above=draw(st.floats(0, 1)) if early else 1.0,
                 hold_next=draw(st.booleans()),
                 skip_above=draw(st.sampled_from([1.0, 1.0, 0.0, 0.3, 0.6])))
    if draw(st.booleans()):
        top = Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1)
    else:
        top = Rung(role="large", mode="sample", max_samples=draw(st.integers(1, 6)),
                   wave=draw(st.integers(1, 3)), confidence=draw(st.sampled_from([1.0, 0.9])),
                   check_mode="greedy", check_samples=1,
                   # the top rung never climbs early, whatever it says
                   climb_early_above=draw(st.sampled_from([1.0, 0.0, 0.5])))
    return Ladder(rungs=(small, top), prior=draw(st.floats(-2, 2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ladders(), st.sampled_from([1, 300, 2_000, 60_000, 262_144]), st.booleans(),
       st.integers(0, 4))
def test_engine_equals_evaluator_and_budget_holds(ladder, budget, count_prompt, seed):
    ev = evaluate(SUB, ladder, budget, [seed], count_prompt=count_prompt)
    engine = tts.Engine(ReplayBackend(BANK, "llama-2-13b"), ReplayBackend(BANK, "gpt-4"),
                        seed=seed, count_prompt=count_prompt)
    results = engine.solve_many([BANK.problems[p] for p in PIDS], budget, strategy=ladder)
    assert_same_as_evaluator(results, ev, SUB, budget, ("gpt-4",))


# ---- confidence rungs: DeepConf votes (weight, keep) and the leader_conf feature -------------
CONF_OPTIONS = st.sampled_from([("none", 1.0), ("min_conf", 1.0), ("logprob", 1.0),
                                ("none", 0.5), ("min_conf", 0.25), ("logprob", 0.7)])


def conf_threshold(draw) -> dict:
    """A climb rule on leader_conf alone: climb when it is >= t (weight > 0) or <= t (weight
    < 0); thresholds at the bank's repeated min_confs (2, 4) make ties, the boundary case."""
    t = draw(st.sampled_from([2.0, 3.0, 4.0]) | st.floats(0.5, 8.0))
    w = draw(st.sampled_from([1.0, -1.0, 2.5]))
    return dict(weights=(-w * t,) + (0.0,) * (len(CLIMB_FEATURES) - 1) + (w,),
                climb_above=0.5, climb_below=draw(st.sampled_from([0.0, 0.6])))


@st.composite
def confidence_ladders(draw):
    """One or two small vote rungs with confidence options and a leader_conf weight (random,
    a threshold on leader_conf alone, or none), then the large model's greedy answer or vote."""
    def vote():
        weight, keep = draw(CONF_OPTIONS)
        climb = conf_threshold(draw) if draw(st.booleans()) else dict(
            climb_below=draw(st.floats(0, 1)), climb_above=draw(st.floats(0, 1)),
            weights=climb_weights(draw, confidences=draw(st.booleans())))
        return Rung(role="small", wave=draw(st.integers(1, 4)),
                    max_samples=draw(st.integers(1, 8)),
                    max_tokens=draw(st.sampled_from([64, 200, 600])),
                    confidence=draw(st.sampled_from([1.0, 0.8, 0.95])), weight=weight,
                    keep=keep, **climb)

    lower = tuple(vote() for _ in range(draw(st.integers(1, 2))))
    top = draw(st.sampled_from([
        Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1),
        Rung(role="large", mode="sample", max_samples=3, wave=2, weight="min_conf")]))
    return Ladder(rungs=(*lower, top), prior=draw(st.floats(-2, 2)))


def _conf_bank(seed):
    from .conftest import make_bank

    return make_bank(n_problems=4, n_small=8, n_large=3, seed=seed, prompt_tokens=30,
                     max_sample_tokens=500, abstain=0.2, confidence=True)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(confidence_ladders(), st.integers(0, 50),
       st.sampled_from([1, 50, 300, 900, 5_000, 1e6]), st.booleans(), st.integers(0, 3))
def test_confidence_rungs_engine_equals_evaluator_and_budget_holds(ladder, bank_seed, budget,
                                                                   count_prompt, seed):
    assert_replay_equals_evaluator(_conf_bank(bank_seed), ladder, budget, count_prompt, seed)


def _reads_conf(conf_weight: float = 1.0, **vote) -> Rung:
    """A small vote rung whose score is leader_conf alone (bias 0)."""
    w = [0.0] * (len(CLIMB_FEATURES) + 1)
    w[-1] = conf_weight
    return Rung(role="small", wave=4, max_samples=4, weights=tuple(w), **vote)


def test_leader_conf_is_the_mean_min_conf_of_the_counted_leader_samples():
    """Votes "1" (min_conf 2, 4) and "2" (1): the leader's mean is 3; keep=0.5 counts the
    two most confident answers (4, 2), keep=0.3 only the 4; weighted by logprob, "2" leads."""
    from tts.bank import Record, Sample

    from .conftest import make_bank

    bank = make_bank(n_problems=1, n_small=4, confidence=True)
    bank.records[("p0", "s", "sample")] = Record("p0", "s", "sample", 20, (
        Sample("1", 10, logprob=-1.0, min_conf=2.0), Sample("2", 10, logprob=-0.1, min_conf=1.0),
        Sample("1", 10, logprob=-2.0, min_conf=4.0), Sample(None, 10)))
    arrays = BankArrays.from_bank(bank)
    top = Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1)
    for vote, conf in [(dict(), 3.0), (dict(keep=0.5), 3.0), (dict(keep=0.3), 4.0),
                       (dict(weight="logprob"), 1.0)]:
        rung = _reads_conf(**vote)
        assert rung.measures_leader_conf
        (_, _, x, _), = ladder_features(arrays, Ladder(rungs=(rung, top)), 1e9, 0)
        assert x[0, -1] == conf  # logprob weights put "2" first: its one sample's min_conf 1.0
        engine = tts.Engine(ReplayBackend(bank, "s"), ReplayBackend(bank, "l"), seed=0,
                            cost=bank.meta.cost)
        ladder = Ladder(rungs=(rung, top))
        out = engine.solve(bank.problems["p0"], 1e9, strategy=ladder)
        assert any(f"score {conf:.2f}" in t for t in out.trace), out.trace
    plain = Rung(role="small", wave=4, max_samples=4, weight="logprob")
    assert not plain.measures_leader_conf  # logprob alone needs no min_conf: the feature is 0
    (_, _, x, _), = ladder_features(arrays, Ladder(rungs=(plain, top)), 1e9, 0)
    assert x[0, -1] == 0.0


def test_leader_conf_without_confidences_is_a_clear_error_on_both_paths():
    ladder = Ladder(rungs=(_reads_conf(-1.0),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    with pytest.raises(ValidationError, match="reads `leader_conf`.*needs each sample's "
                                              "min_conf") as e:
        evaluate(SUB, ladder, 262_144, [0])
    assert e.value.parameter == "weights"
    engine = tts.Engine(ReplayBackend(BANK, "llama-2-13b"), ReplayBackend(BANK, "gpt-4"))
    with pytest.raises(ValidationError, match="reads `leader_conf`") as e:
        engine.solve_many([BANK.problems[p] for p in PIDS], 262_144, strategy=ladder)
    assert e.value.parameter == "weights"


def test_bad_confidence_rungs_are_clear_errors():
    with pytest.raises(ValidationError, match="`weight` must be one of") as e:
        Rung(weight="conf")
    assert e.value.parameter == "weight"
    with pytest.raises(ValidationError, match="`keep` must be in") as e:
        Rung(keep=0)
    assert e.value.parameter == "keep"
    for bad in (dict(weight="min_conf"), dict(keep=0.5)):
        with pytest.raises(ValidationError, match="chain rung .* votes its chains plainly") as e:
            Rung(mode="chain-1024", **bad)
        assert e.value.parameter == next(iter(bad))
    w = (0.0,) * len(CLIMB_FEATURES) + (1.0,)
    with pytest.raises(ValidationError, match="chain rung .* measures no confidence") as e:
        Rung(mode="chain-1024", weights=w)
    assert e.value.parameter == "weights"
    assert Rung(weight="min_conf", keep=0.5).vote().keep == 0.5


@pytest.mark.parametrize("vote, conf_weight", [
    (dict(weight="min_conf", confidence=0.95), 0.0),
    (dict(weight="logprob", keep=0.5), -3.0),
    (dict(keep=0.7, confidence=0.9), 2.0),
    (dict(), -3.0),
])
def test_real_qwen_confidence_rungs_match_replay(qwen, vote, conf_weight):
    """Agreement and leader_conf around the bank's median min_conf (5.4) decide the climb."""
    w = (2.0 - conf_weight * 5.4, -3.0) + (0.0,) * (len(CLIMB_FEATURES) - 2) + (conf_weight,)
    ladder = Ladder(rungs=(Rung(role="small", wave=4, max_samples=16, climb_below=0.5,
                                climb_above=0.5, weights=w, **vote),
                           Rung(role="large", mode="greedy", temperature=0.0, max_samples=1,
                                wave=1)))
    for seed, budget in ((0, 3_000), (1, 100_000)):
        assert_replay_equals_evaluator(qwen, ladder, budget, True, seed)


def test_real_qwen_forced_chain_rung_matches_replay(qwen):
    """The bank's logged forced chains (texts kept) replay under a rung with the build's
    forcing settings: the engine takes each chain whole and equals the evaluator."""
    held = [p for p in qwen.problem_ids if (p, qwen.meta.roles["small"], "chain-1024")
            in qwen.records]
    assert held, "the snapshot holds chains"
    bank = qwen.subset(held)
    w = (1.0, -2.0) + (0.0,) * (len(CLIMB_FEATURES) - 3) + (-1.5, 0.0)  # reads lower_agreement
    ladder = Ladder(rungs=(
        Rung(role="small", wave=4, max_samples=8, climb_below=0.75),
        Rung(role="small", mode="chain-1024", max_samples=2, max_tokens=1056, answer_tokens=32,
             max_waits=16, climb_above=0.5, weights=w),
        Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1)))
    for seed, budget in ((0, 2_500), (1, 100_000)):
        assert_replay_equals_evaluator(bank, ladder, budget, True, seed)


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


def test_policies_written_before_leader_conf_still_load(tmp_path):
    """A file whose `climb_features` lack leader_conf (tuned before it existed) loads with
    weight 0 on it, so it decides as it did; a vote rung's confidence options round-trip."""
    w = tuple(float(i) for i in range(len(CLIMB_FEATURES))) + (0.0,)
    rungs = (Rung(role="small", wave=4, max_samples=8, climb_below=0.6, weights=w,
                  weight="min_conf", keep=0.5),
             Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1))
    data = single_level(["llama-2-13b", "gpt-4"], rungs).to_dict()
    assert data["levels"][0]["rungs"][0]["keep"] == 0.5
    assert "weight" not in data["levels"][0]["rungs"][1]  # defaults are not written
    path = tmp_path / "new.json"
    path.write_text(json.dumps(data))
    assert load_policy(path).levels[0].rungs == rungs
    data["climb_features"] = data["climb_features"][:-1]
    for r in data["levels"][0]["rungs"]:
        r["weights"] = r["weights"][:-1]
    path.write_text(json.dumps(data))
    assert load_policy(path).levels[0].rungs == rungs
    data["climb_features"][0] = "agreements"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="`climb_features` must be"):
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
                    weights=climb_weights(draw))

    length = draw(st.sampled_from([128, 256]))
    chain = Rung(role="small", mode=f"chain-{length}", max_samples=draw(st.integers(1, 2)),
                 max_tokens=draw(st.sampled_from([64, length, length + 32])),
                 answer_tokens=draw(st.sampled_from([0, 8, 32])),
                 max_waits=draw(st.sampled_from([0, 3])), **climb())
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
    assert_replay_equals_evaluator(_chain_bank(bank_seed), ladder, budget, count_prompt, seed)


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
