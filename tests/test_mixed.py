"""Mixed-representation votes (`mix_mode`), ESC's window stop and MoT's split climb: the engine
equals the vectorised evaluator, budgets hold, the draws alternate, and bad options are clear
errors."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tts
from tts.backends.replay import ReplayBackend
from tts.bank import load_bank
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import LadderLevel, LadderPolicy, load_policy
from tts.strategies import Ladder, Rung, Vote
from tts.strategies.mixed import interleave, leaders_split, split_draws, unanimous
from tts.types import Completion

from .test_ladder import assert_same_as_evaluator, climb_weights, early_weights

DATE = load_bank(tts.BUNDLED_DATE_BANK)
N = 24
ARRAYS = BankArrays.from_bank(DATE).subset(range(N))
PROBLEMS = [DATE.problems[p] for p in ARRAYS.problem_ids]
MODELS = ("gpt-3.5-turbo", "gpt-4")
GREEDY_TOP = Rung(role="large", mode="greedy", temperature=0.0, max_samples=1, wave=1)


def engine_results(plan, budget, count_prompt, seed):
    engine = tts.Engine(ReplayBackend(DATE, MODELS[0]), ReplayBackend(DATE, MODELS[1]),
                        seed=seed, count_prompt=count_prompt, cost=DATE.meta.cost)
    return engine.solve_many(PROBLEMS, budget, strategy=plan)


@st.composite
def mixed_ladders(draw):
    """A mixed (CoT + PoT, either first) vote rung with waves, stops, a split climb and maybe
    an early climb or a held top call, then GPT-4's greedy answer or a plain vote."""
    early = draw(st.booleans())
    first = draw(st.sampled_from(["sample", "pot"]))
    mixed = Rung(role="small", mode=first, mix_mode="pot" if first == "sample" else "sample",
                 wave=draw(st.integers(1, 7)), max_samples=draw(st.integers(1, 40)),
                 max_tokens=draw(st.sampled_from([40, 64, 512])),
                 confidence=draw(st.sampled_from([1.0, 0.8, 0.95])),
                 window_stop=draw(st.booleans()), climb_split=draw(st.booleans()),
                 climb_below=draw(st.floats(0, 1)), climb_above=draw(st.floats(0, 1)),
                 weights=early_weights(draw) if early else climb_weights(draw),
                 probe=draw(st.none() | st.integers(1, 6)),
                 climb_early_above=draw(st.floats(0, 1)) if early else 1.0,
                 hold_next=draw(st.booleans()))
    top = GREEDY_TOP if draw(st.booleans()) else Rung(
        role="large", mode="sample", max_samples=draw(st.integers(1, 3)), wave=2,
        window_stop=draw(st.booleans()))
    return Ladder(rungs=(mixed, top), prior=draw(st.floats(-2, 2)))


BUDGETS = st.sampled_from([1, 4_000, 9_000, 20_000, 45_000, 140_000, 262_144, 1e6])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_ladders(), BUDGETS, st.booleans(), st.integers(0, 4))
def test_mixed_rungs_engine_equals_evaluator_and_budget_holds(ladder, budget, count_prompt,
                                                               seed):
    ev = evaluate(ARRAYS, ladder, budget, [seed], count_prompt=count_prompt)
    results = engine_results(ladder, budget, count_prompt, seed)
    assert_same_as_evaluator(results, ev, ARRAYS, budget, MODELS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([None, "pot"]), st.integers(1, 40), st.integers(1, 8),
       st.sampled_from([1.0, 0.9]), st.booleans(), BUDGETS, st.booleans(), st.integers(0, 3))
def test_mixed_and_windowed_votes_engine_equals_evaluator(mix, samples, wave, confidence,
                                                          window, budget, count_prompt, seed):
    vote = Vote(mode="sample", mix_mode=mix, max_samples=samples, wave=wave,
                confidence=confidence, window_stop=window)
    ev = evaluate(ARRAYS, vote, budget, [seed], count_prompt=count_prompt)
    assert_same_as_evaluator(engine_results(vote, budget, count_prompt, seed), ev, ARRAYS,
                             budget, MODELS)


def test_draws_alternate_and_both_prompts_are_paid_once():
    """A mixed vote of 5 draws is samples 0-2 of the first stream and 0-1 of the second, in
    turn; each representation's prompt is charged once."""
    assert [split_draws(k, n) for k, n in [(0, 5), (5, 2), (6, 1), (3, 0)]] == [
        (0, 3, 0, 2), (3, 1, 2, 1), (3, 1, 3, 0), (2, 0, 1, 0)]
    done = interleave(1, [(1, [Completion(text=None, answer="b0", tokens=1), Completion(text=None, answer="b1", tokens=1)]),
                          (0, [Completion(text=None, answer="a0", tokens=1)])])
    assert [c.answer for c in done] == ["b0", "a0", "b1"]
    pid = DATE.problem_ids[0]
    vote = Vote(mode="sample", mix_mode="pot", max_samples=5, wave=2, confidence=1.0)
    engine = tts.Engine(ReplayBackend(DATE, MODELS[0]), seed=7, count_prompt=True,
                        cost=DATE.meta.cost)
    r = engine.solve(DATE.problems[pid], 1e6, strategy=vote)
    from tts.bank import sample_order

    recs = {m: DATE.records[(pid, MODELS[0], m)] for m in ("sample", "pot")}
    order = {m: sample_order(pid, MODELS[0], m, 7, len(recs[m].samples)) for m in recs}
    drawn = [recs["sample"].samples[order["sample"][i]] for i in range(3)] + \
        [recs["pot"].samples[order["pot"][i]] for i in range(2)]
    prompts = recs["sample"].prompt_tokens + recs["pot"].prompt_tokens
    assert r.tokens[MODELS[0]] == sum(s.tokens for s in drawn) + prompts
    assert sum(r.votes.values()) == sum(s.answer is not None for s in drawn)


def test_split_and_window_rules():
    assert not leaders_split(["1", "1", "2", "1"])  # first: 1, 2 -> "1" (first seen); second: 1
    assert leaders_split(["1", "2", "1", "2"])
    assert leaders_split(["1", None])
    assert unanimous(["3", "3.0"]) and not unanimous(["3", None]) and not unanimous([])


def test_mot_verify_climbs_exactly_where_the_representations_disagree():
    """With `climb_split` alone (no floor, no score) a question climbs iff the majorities of
    its 3 CoT and 3 PoT samples differ, on the engine and in the evaluator."""
    verify = Ladder(rungs=(Rung(role="small", mode="sample", mix_mode="pot", max_samples=6,
                                wave=6, climb_split=True), GREEDY_TOP))
    ev = evaluate(ARRAYS, verify, 1e6, [2])
    results = engine_results(verify, 1e6, False, 2)
    split = [_split_of(p) for p in PROBLEMS]
    assert [r.escalated for r in results] == list(ev.escalated[0]) == split
    assert 0 < sum(split) < N  # both cases occur on these questions


def _split_of(problem) -> bool:
    from tts.bank import sample_order

    answers = []
    for m in ("sample", "pot"):
        rec = DATE.records[(problem.id, MODELS[0], m)]
        order = sample_order(problem.id, MODELS[0], m, 2, len(rec.samples))
        answers.append([rec.samples[i].answer for i in order[:3]])
    return leaders_split([a for pair in zip(*answers) for a in pair])


def test_mixed_rungs_round_trip_through_policy_files(tmp_path):
    rung = Rung(role="small", mode="sample", mix_mode="pot", max_samples=20, wave=20,
                climb_below=0.6, climb_split=True, window_stop=True)
    plain = Rung(role="small", mode="pot", max_samples=8)
    policy = LadderPolicy(MODELS, (LadderLevel(0.0, (rung, GREEDY_TOP)),))
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy.to_dict()))
    assert load_policy(path).levels[0].rungs == (rung, GREEDY_TOP)
    written = LadderPolicy(MODELS, (LadderLevel(0.0, (plain, GREEDY_TOP)),)).to_dict()
    assert not {"mix_mode", "window_stop", "climb_split"} & set(written["levels"][0]["rungs"][0])


@pytest.mark.parametrize("options, match", [
    (dict(mode="pot", mix_mode="pot"), "must differ"),
    (dict(mix_mode="sample"), "must differ"),  # mode None samples "sample"
    (dict(mix_mode="pot", temperature=0.0, max_samples=1, wave=1), "temperature"),
    (dict(mix_mode="pot", weight="min_conf"), "votes plainly"),
    (dict(mix_mode="../x"), "mode name"),
    (dict(climb_split=True), "needs `mix_mode`"),
    (dict(window_stop="yes"), "window_stop"),
    (dict(mode="chain", mix_mode="pot", max_samples=1), "vote rungs"),
])
def test_bad_mixed_rungs_are_clear_errors(options, match):
    with pytest.raises(ValidationError, match=match):
        Rung(role="small", **options)


def test_hold_next_needs_a_rung_of_one_representation_above():
    with pytest.raises(ValidationError, match="one representation"):
        Ladder(rungs=(Rung(role="small", hold_next=True),
                      Rung(role="large", mode="sample", mix_mode="pot")))
