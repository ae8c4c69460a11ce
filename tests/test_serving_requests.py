"""`tts.serving.requests` without a server: the budget rule, the direct-model vote, the
question a message asks, and JSON the body may not hold."""

from __future__ import annotations

import pytest

from tts.prompts import ANSWER_INSTRUCTION
from tts.serving.requests import (AUTO_MODEL, APIError, RequestParser, ServeConfig, parse_json,
                                  question_of)

PRICES = {"small-m": 1.0, "large-m": 3.0}
CONFIG = ServeConfig(default_budget=7_000.0, max_budget=100_000.0)
PARSER = RequestParser({"small-m": "small", "large-m": "large"}, CONFIG, PRICES.__getitem__)


def ask(model=AUTO_MODEL, question="What is 2 + 3?", **fields):
    return PARSER.parse({"model": model, "messages": [{"role": "user", "content": question}],
                         **fields}, chat=True)


def test_budget_rule_for_tts_auto():
    assert ask(budget=1234).budget == 1234.0
    assert ask(max_tokens=900).budget == 900.0
    assert ask(max_completion_tokens=800).budget == 800.0
    assert ask(max_tokens=900, budget=50).budget == 50.0  # `budget` wins
    assert ask().budget == CONFIG.default_budget
    with pytest.raises(APIError, match="above this server's cap") as err:
        ask(max_tokens=200_000)
    assert err.value.status == 400 and err.value.param == "max_tokens"


def test_a_model_served_directly_votes_its_samples_at_its_price():
    direct = ask("large-m", max_tokens=100, samples=4, temperature=0.5)
    vote = direct.strategy
    assert (vote.max_samples, vote.wave, vote.max_tokens, vote.temperature, vote.role) == \
        (4, 4, 100, 0.5, "large")
    assert direct.budget == 100 * 4 * PRICES["large-m"]
    assert ask("small-m").budget == 512 * 1 * PRICES["small-m"]  # defaults: 1 sample of 512
    with pytest.raises(APIError, match="greedy decoding"):
        ask("small-m", temperature=0, samples=3)
    with pytest.raises(APIError, match="applies to tts-auto only"):
        ask("small-m", strategy="vote")
    with pytest.raises(APIError, match="applies to a model served directly"):
        ask(samples=2)


def test_unknown_model_is_a_404_listing_the_served_ones():
    with pytest.raises(APIError) as err:
        ask("gpt-5")
    assert err.value.status == 404 and err.value.code == "model_not_found"
    assert str(PARSER.model_names) in err.value.message


def test_question_is_the_user_message_without_the_answer_instruction():
    formatted = f"  What is 2 + 3?\n{ANSWER_INSTRUCTION}  "
    assert question_of(formatted) == "What is 2 + 3?"
    assert ask(question=formatted).question == ask().question == "What is 2 + 3?"
    with pytest.raises(APIError, match="the question is empty"):
        ask(question=ANSWER_INSTRUCTION)
    system = {"role": "system", "content": "Be brief."}
    two = PARSER.parse({"model": AUTO_MODEL, "messages": [
        system, {"role": "user", "content": [{"type": "text", "text": "What is "},
                                             {"type": "text", "text": "2 + 3?"}]}]}, chat=True)
    assert two.question == "What is 2 + 3?"


@pytest.mark.parametrize("raw, match", [(b'{"budget": NaN}', "NaN"),
                                        (b'{"budget": Infinity}', "Infinity"),
                                        (b"\xff\xfe", "not valid JSON"),
                                        (b'{"model": ', "not valid JSON")])
def test_parse_json_refuses_what_json_may_not_hold(raw, match):
    with pytest.raises(APIError, match=match) as err:
        parse_json(raw)
    assert err.value.status == 400 and err.value.code == "invalid_json"
    assert parse_json(b'{"budget": 5}') == {"budget": 5}


@pytest.mark.parametrize("field", ["budget", "max_tokens", "seed", "temperature"])
def test_integers_too_large_for_a_float_are_400s(field):
    """10**400 overflows a float: a 400 naming the field, not an OverflowError (a 500)."""
    with pytest.raises(APIError, match=f"`{field}` must be .* got an integer of 401 digits") \
            as err:
        ask(**{field: 10**400})
    assert err.value.status == 400 and err.value.param == field


def test_json_integers_beyond_python_conversion_limit_are_400s():
    with pytest.raises(APIError, match="not valid JSON: Exceeds the limit") as err:
        parse_json(b'{"budget": 1' + b"0" * 5000 + b"}")
    assert err.value.status == 400 and err.value.code == "invalid_json"
