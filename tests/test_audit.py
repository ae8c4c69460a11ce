"""`tts.audit` and `Engine(audit_rate=)` on the bundled bank (real Llama-2-13B and GPT-4
samples): audits never touch a request's result or budget, their disagreement equals the one
computed by hand from the bank, the audit bank is written durably and resumed, a failing top
model only drops audits, and bad settings are clear errors."""

from __future__ import annotations

import math

import pytest

import tts
from tts.answers import equivalent
from tts.bank import load_bank
from tts.audit import Auditor, check_rate, wilson
from tts.backends.replay import ReplayBackend
from tts.engine import Engine
from tts.errors import BackendError, BankError, ValidationError

BANK = tts._load(str(tts.BUNDLED_BANK))
QUESTIONS = [p.question for p in list(BANK.problems.values())[:40]]
BUDGET = 8000  # the default policy answers with Llama-2-13B votes: every answer is below GPT-4


def engine(**kw) -> Engine:
    return Engine(ReplayBackend(BANK, "llama-2-13b"), ReplayBackend(BANK, "gpt-4"),
                  cost=BANK.meta.cost, **kw)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, True, "0.1", None])
def test_an_audit_rate_outside_0_1_is_a_clear_error(bad) -> None:
    with pytest.raises(ValidationError, match="`audit_rate` must be a share of requests in"):
        engine(audit_rate=bad)
    with pytest.raises(ValidationError, match="audit_rate"):
        check_rate(bad)


def test_audits_need_a_model_above_the_answering_one() -> None:
    with pytest.raises(ValidationError, match="the engine has one model"):
        Engine(ReplayBackend(BANK, "llama-2-13b"), cost=BANK.meta.cost, audit_rate=0.5)


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_audits_measure_disagreement_off_the_requests_budget(tmp_path) -> None:
    plain = engine().solve_many(QUESTIONS, BUDGET)
    audited = engine(audit_rate=1.0, audit_bank=tmp_path / "audits")
    results = audited.solve_many(QUESTIONS, BUDGET)
    assert audited.audits.wait(30)
    assert results == plain  # answers, plans, costs and tokens untouched by the audits
    snap = audited.audits.snapshot()
    # by hand: GPT-4's greedy answer for each question, against the deployed answer
    top = {p.question: BANK.record(p.id, "gpt-4", "greedy").samples[0]
           for p in BANK.problems.values()}
    answered = [(q, r) for q, r in zip(QUESTIONS, results) if r.status == "answered"]
    disagree = sum(not equivalent(r.answer, top[q].answer) for q, r in answered)
    overall = snap["disagreement"]["overall"]
    assert snap["offered"] == len(answered) == overall["audited"]
    assert overall["disagreed"] == disagree and 0 < disagree < len(answered)
    assert (overall["low"], overall["high"]) == wilson(disagree, len(answered))
    assert snap["disagreement"]["by_rung"] == {"llama-2-13b": overall}
    tokens = sum(top[q].tokens for q, _ in answered)  # the audit ledger: GPT-4's own answers
    assert snap["ledger"]["tokens"] == {"gpt-4": tokens}
    assert snap["ledger"]["spent"] == pytest.approx(tokens * BANK.meta.cost.of("gpt-4").output)
    assert snap["dropped"] == snap["pending"] == 0
    audited.audits.close()
    written = load_bank(tmp_path / "audits")
    assert written.meta.name == "audits" and len(written.problems) == len(answered)
    q, r = answered[0]
    pid = BANK.find(q).id
    assert written.record(pid, "gpt-4", "greedy").samples[0].answer == top[q].answer
    assert written.record(pid, "llama-2-13b", "deployed").samples[0].answer == r.answer


def test_a_share_of_answers_is_audited_and_the_bank_resumes(tmp_path) -> None:
    bank = tmp_path / "audits"
    first = engine(audit_rate=0.3, audit_bank=bank)
    first.solve_many(QUESTIONS[:20], BUDGET)
    assert first.audits.wait(30)
    audited = first.audits.snapshot()["disagreement"]["overall"]["audited"]
    assert 0 < audited < first.audits.offered == 20
    first.audits.close()
    again = engine(audit_rate=1.0, audit_bank=bank, seed=1)  # a restart appends, once per key
    again.solve_many(QUESTIONS[:25], BUDGET)
    assert again.audits.wait(30)
    again.audits.close()
    lines = (bank / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 25 == 2 * len(load_bank(bank).problems)


def test_a_failing_top_model_drops_audits_and_never_fails_a_request() -> None:
    class Down(ReplayBackend):
        def generate(self, requests):
            raise BackendError("gpt-4 is down")

    eng = Engine(ReplayBackend(BANK, "llama-2-13b"), Down(BANK, "gpt-4"), cost=BANK.meta.cost,
                 audit_rate=1.0)
    results = eng.solve_many(QUESTIONS[:10], BUDGET)
    assert eng.audits.wait(30)
    assert all(r.status == "answered" for r in results)
    snap = eng.audits.snapshot()
    assert snap["dropped"] == 10 and snap["disagreement"]["overall"]["audited"] == 0


def test_an_audit_bank_folder_must_be_an_audit_bank(tmp_path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(BankError, match="not a bank"):
        engine(audit_rate=0.5, audit_bank=other)
    with pytest.raises(BankError, match="not an audit bank"):
        engine(audit_rate=0.5, audit_bank=tts.BUNDLED_BANK)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BankError, match="must be a folder"):
        engine(audit_rate=0.5, audit_bank=tmp_path / "file")


def test_answers_of_the_top_model_are_not_audited() -> None:
    auditor = Auditor(1.0, models=["llama-2-13b", "gpt-4"], cost=BANK.meta.cost,
                      role="large", submit=lambda p, done: pytest.fail("audited"))
    top = engine().solve(QUESTIONS[0], 200_000, strategy="escalate")
    assert top.tokens.get("gpt-4") and auditor.rung(top) == "gpt-4"
    assert auditor.offer(QUESTIONS[0], top) is False and auditor.offered == 0
