import math

import pytest

from tts.budgets import MOT_USD, Budget, CostModel, Ledger, ModelCost, check_budget
from tts.errors import BudgetExceeded, TTSError, ValidationError

COST = CostModel({"s": ModelCost(1.0, 0.5), "l": ModelCost(10.0, 5.0)})


@pytest.mark.parametrize("bad, match", [
    (0, "must be > 0"), (-5, "must be > 0"), (math.nan, "NaN"), (True, "number of tokens"),
    ("100", "number of tokens"), (None, "number of tokens"), (1e13, "must be <= "),
    (math.inf, "must be <= "),
])
def test_bad_budgets_are_named(bad, match):
    with pytest.raises(ValidationError, match=match):
        check_budget(bad)
    with pytest.raises(ValidationError, match="budget"):
        Budget(tokens=bad)


def test_reserve_commit_releases_unused():
    ledger = Ledger(Budget(tokens=1000), COST)
    r = ledger.reserve("s", 4, 100)
    assert ledger.reserved == 400 and ledger.remaining == 600
    ledger.commit(r, [10, 20, 30, 40])
    assert ledger.spent == 100 and ledger.reserved == 0 and ledger.tokens == {"s": 100}


def test_reservation_that_does_not_fit_is_refused_and_holds_nothing():
    ledger = Ledger(Budget(tokens=1000), COST)
    with pytest.raises(BudgetExceeded, match="would pass the budget"):
        ledger.reserve("l", 2, 60)  # 1200 units
    assert ledger.reserved == 0 and ledger.spent == 0
    assert ledger.max_samples("l", 60) == 1
    assert ledger.max_samples("s", 100, cap=4) == 4


def test_commit_rejects_more_than_reserved():
    ledger = Ledger(Budget(tokens=1000), COST)
    r = ledger.reserve("s", 2, 100)
    with pytest.raises(TTSError, match="outside the reservation"):
        ledger.commit(r, [101, 5])
    r2 = ledger.reserve("s", 1, 10)
    ledger.commit(r2, [10])
    with pytest.raises(TTSError, match="already committed"):
        ledger.commit(r2, [10])


def test_prompt_counted_once_per_prompt_per_model():
    ledger = Ledger(Budget(tokens=10_000, count_prompt=True), COST)
    r = ledger.reserve("s", 1, 10, prompt_key="q", prompt_tokens=100)
    assert r.units == 10 + 50
    ledger.commit(r, [10], prompt_tokens=100)
    assert ledger.spent == 60
    r = ledger.reserve("s", 1, 10, prompt_key="q", prompt_tokens=100)
    assert r.units == 10  # already paid
    ledger.commit(r, [10], prompt_tokens=100)
    r = ledger.reserve("l", 1, 10, prompt_key="q", prompt_tokens=100)
    assert r.units == 100 + 500  # other model pays its own prefill
    assert ledger.tokens == {"s": 120}


def test_prompt_not_counted_by_default():
    ledger = Ledger(Budget(tokens=100), COST)
    assert ledger.price("s", 1, 10, prompt_key="q", prompt_tokens=1000) == 10


def test_unknown_model_cost_is_clear():
    ledger = Ledger(Budget(tokens=100), COST)
    with pytest.raises(KeyError, match="no cost is known for model 'x'"):
        ledger.reserve("x", 1, 1)


def test_usd_preset_is_relative_to_small_output():
    assert MOT_USD.of("llama-2-13b").output == 1.0
    assert MOT_USD.of("gpt-4").output == 240.0 and MOT_USD.of("gpt-4").prompt == 120.0
    with pytest.raises(ValidationError, match="output"):
        ModelCost(0, 1)
