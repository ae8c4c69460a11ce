"""solve / solve_many on the bundled bank, and bad input with clear errors."""

import math

import pytest

import tts
from tts.backends.replay import ReplayBackend
from tts.budgets import CostModel, ModelCost
from tts.engine import Engine
from tts.errors import BankError, UnknownNameError, ValidationError

from .conftest import make_bank

JANET = tts.replay_engine().backends["small"].bank.problems["gsm8k-test-0"].question


def test_solve_bundled_default_answers_and_reports():
    r = tts.solve(JANET, 200_000)
    assert r.answer == "18" and r.status == "answered"
    assert r.strategy == "ladder" and r.cost <= 200_000
    assert r.tokens["llama-2-13b"] > 0 and sum(r.votes.values()) == r.samples
    assert r.trace and r.problem_id == "gsm8k-test-0"


def test_solve_many_same_seed_same_results_other_seed_differs():
    bank = tts.replay_engine().backends["small"].bank
    problems = [bank.problems[p] for p in bank.problem_ids[:40]]
    a = tts.solve_many(problems, 50_000, strategy="vote", seed=1)
    assert a == tts.solve_many(problems, 50_000, strategy="vote", seed=1)
    assert a != tts.solve_many(problems, 50_000, strategy="vote", seed=2)


@pytest.mark.parametrize("prompt, match", [
    ("", "non-empty"), ("   \n", "non-empty"), (None, "must be a string, got NoneType"),
    (42, "must be a string, got int"),
])
def test_bad_prompt(prompt, match):
    with pytest.raises(ValidationError, match=match):
        tts.solve(prompt, 1000)


@pytest.fixture
def no_live_engine(monkeypatch):
    """Make loading the live engine fail the test: bad input must be refused before."""
    def load(*args, **kwargs):
        raise AssertionError("the live engine was loaded before the input was checked")

    monkeypatch.setattr(tts, "live_engine", load)


@pytest.mark.parametrize("call, error, match", [
    (lambda: tts.solve(123, 1000), ValidationError, "prompt must be a string, got int"),
    (lambda: tts.solve("What is \ud800 + 1?", 1000), ValidationError,
     "character 8 is a lone surrogate"),
    (lambda: tts.solve_many(["What is 17 * 23?", None], 1000), ValidationError,
     "prompt must be a string, got NoneType"),
    (lambda: tts.solve("What is 17 * 23?", -5), ValidationError, "must be > 0"),
    (lambda: tts.solve("What is 17 * 23?", 1000, strategy="magic"), UnknownNameError,
     "unknown strategy 'magic'"),
    (lambda: tts.solve("What is 17 * 23?", 1000, max_samples=3), ValidationError,
     "need a `strategy`"),
])
def test_bad_input_is_refused_before_the_live_engine_loads(no_live_engine, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_lone_surrogate_prompt_is_refused_by_every_entry():
    bad = "What is \udc80?"
    with pytest.raises(ValidationError, match="lone surrogate"):
        tts.Problem(bad)
    with pytest.raises(ValidationError, match="lone surrogate"):
        tts.replay_engine().solve(bad, 1000)


@pytest.mark.parametrize("budget, match", [
    (0, "> 0"), (-1, "> 0"), (math.nan, "NaN"), (True, "number of tokens"),
    (1e15, "<= 1e\\+12"), ("1000", "number of tokens"),
])
def test_bad_budget(budget, match):
    with pytest.raises(ValidationError, match=match):
        tts.solve(JANET, budget)


def test_unknown_strategy_and_option():
    with pytest.raises(UnknownNameError, match="unknown strategy 'magic'"):
        tts.solve(JANET, 1000, strategy="magic")
    with pytest.raises(ValidationError, match="no option"):
        tts.solve(JANET, 1000, strategy="vote", beams=3)


def test_unknown_model_in_cost_model():
    bank = make_bank()
    cost = CostModel({"s": ModelCost(1, 1)})
    with pytest.raises(UnknownNameError, match="no cost is known for model 'l'"):
        Engine(ReplayBackend(bank, "s"), ReplayBackend(bank, "l"), cost=cost)


def test_bank_missing_model_strategy_needs():
    engine = Engine(ReplayBackend(make_bank(), "s"), cost=make_bank().meta.cost)
    with pytest.raises(ValidationError, match="needs a large model"):
        engine.solve("question 1?", 1000, strategy="escalate")
    bank = tts.replay_engine().backends["small"].bank
    with pytest.raises(BankError, match="no samples of model 'mistral'"):
        ReplayBackend(bank, "mistral")


def test_chain_on_bank_without_chain_samples_says_so():
    with pytest.raises(BankError, match="no 'chain' samples of llama-2-13b"):
        tts.solve(JANET, 10_000, strategy="chain")


def test_question_not_in_bank():
    """Replay of a given bank answers only its questions (tts.solve without a bank sends
    other prompts to live models)."""
    with pytest.raises(BankError, match="question not found in bank"):
        tts.solve("What is the airspeed of an unladen swallow?", 1000, bank=tts.BUNDLED_BANK)


def test_budget_too_small_is_an_explicit_result():
    r = tts.solve(JANET, 10, strategy="cascade")
    assert r.status == "insufficient_budget" and r.answer is None
    assert r.cost == 0 and not r.tokens and "cannot answer within budget" in r.trace[-1]


def test_cascade_escalates_on_disagreement_only_when_affordable():
    bank = tts.replay_engine().backends["small"].bank
    problems = [bank.problems[p] for p in bank.problem_ids[:100]]
    rich = tts.solve_many(problems, 1_000_000, strategy="cascade")
    poor = tts.solve_many(problems, 5_000, strategy="cascade")
    assert any(r.escalated for r in rich)
    assert not any(r.escalated for r in poor)
    for r in rich:
        if r.escalated:
            assert r.tokens.get("gpt-4", 0) > 0
        assert r.cost <= 1_000_000


def test_solve_many_rejects_empty_and_bare_string():
    with pytest.raises(ValidationError, match="at least one prompt"):
        tts.solve_many([], 1000)
    with pytest.raises(ValidationError, match="list of prompts"):
        tts.solve_many(JANET, 1000)


class CountingReplay(ReplayBackend):
    """Replay that records the size of every generate call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def generate(self, requests):
        self.calls.append(len(requests))
        return super().generate(requests)


def test_escalations_reach_the_large_engine_in_one_batch():
    bank = tts.replay_engine().backends["small"].bank
    small, large = CountingReplay(bank, "llama-2-13b"), CountingReplay(bank, "gpt-4")
    engine = Engine(small, large, cost=bank.meta.cost)
    problems = [bank.problems[p] for p in bank.problem_ids[:60]]
    results = engine.solve_many(problems, 1_000_000, strategy="cascade")
    escalated = sum(r.escalated for r in results)
    assert escalated > 1 and large.calls == [escalated]
    assert len(small.calls) > 1  # votes stop after different numbers of waves
    assert results == tts.solve_many(problems, 1_000_000, strategy="cascade")


# ---- the public surface for other drivers (the server's scheduler) --------------------------
def drive(engine, job):
    """Run a Job by hand, one call at a time: what a driver other than solve_many does."""
    gen, reply = job.steps(), None
    while True:
        try:
            calls = gen.send(reply)
        except StopIteration as stop:
            return engine.result(job, stop.value)
        reply = []
        for call in calls:
            (completions,) = engine.backends[call.role].generate([call.request])
            job.commit(call, completions)
            reply.append(completions)


@pytest.mark.parametrize("budget, strategy", [(200_000, None), (400_000, "cascade"),
                                              (3_000, "vote"), (1, None)])
def test_plan_steps_commit_result_equal_solve(budget, strategy):
    engine = tts.replay_engine()
    bank = engine.backends["small"].bank
    for pid in bank.problem_ids[:12]:
        question = bank.problems[pid].question
        job = engine.plan(question, budget, strategy=strategy)
        assert job.problem.id == pid and job.ctx.ledger.spent == 0  # nothing generated yet
        assert drive(engine, job) == engine.solve(question, budget, strategy=strategy)


def test_plan_seed_overrides_the_engines_and_bad_input_raises_like_solve():
    engine = tts.replay_engine(seed=0)
    job = engine.plan(JANET, 50_000, strategy="vote", seed=7)
    assert drive(engine, job) == tts.replay_engine(seed=7).solve(JANET, 50_000, strategy="vote")
    with pytest.raises(ValidationError, match="> 0"):
        engine.plan(JANET, -1)
    with pytest.raises(ValidationError, match="seed"):
        engine.plan(JANET, 1000, seed=-3)
    with pytest.raises(UnknownNameError, match="magic"):
        engine.plan(JANET, 1000, strategy="magic")
    with pytest.raises(BankError):
        engine.plan("What is 2+2?", 1000)


def test_commit_of_fewer_samples_charges_only_those():
    engine = tts.replay_engine()
    job = engine.plan(JANET, 50_000, strategy="vote")
    calls = job.steps().send(None)
    completions = engine.backends["small"].generate([calls[0].request])[0]
    assert len(completions) > 1
    job.commit(calls[0], completions[:1])
    assert job.ctx.ledger.tokens == {"llama-2-13b": completions[0].tokens}


def test_one_model_engine_without_prices_charges_one_unit_per_token():
    """`tts solve --live --small tiny --large none` charged 0.28 units per token (the tiny
    model's share of QWEN_PARAMS): a one-model engine's unit is its own generated token."""
    from tts.bank import Record

    bank = make_bank(n_problems=3)
    for (pid, model, mode), rec in list(bank.records.items()):
        if model == "s":
            bank.add_record(Record(pid, "smollm2-135m", mode, rec.prompt_tokens, rec.samples))

    class Unpriced(ReplayBackend):
        cost = None  # like a live backend: prices come from tts.budgets.default_cost

    for count_prompt in (False, True):
        engine = Engine(Unpriced(bank, "smollm2-135m"), count_prompt=count_prompt)
        r = engine.solve("question 1?", 1000, strategy="vote", max_samples=4)
        assert r.tokens["smollm2-135m"] > 0 and r.cost == r.tokens["smollm2-135m"]


def test_default_prices_of_pulled_models_count_the_cheapest_models_tokens():
    from tts.budgets import QWEN_PARAMS, default_cost

    pair = default_cost(["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    assert all(pair.of(m) == QWEN_PARAMS.of(m) for m in pair.models)
    tiny_large = default_cost(["smollm2-135m", "qwen2.5-coder-1.5b"])
    assert tiny_large.of("smollm2-135m").output == 1.0
    assert tiny_large.of("qwen2.5-coder-1.5b").output == pytest.approx(1.54 / 0.135)
