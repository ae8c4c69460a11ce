import pytest

from tts.backends.replay import ReplayBackend
from tts.errors import BankError
from tts.types import GenRequest

from .conftest import make_bank


def req(n, offset=0, seed=1, max_tokens=1000, pid="p0", **kw):
    return GenRequest(prompt="x", n=n, offset=offset, seed=seed, max_tokens=max_tokens,
                      problem_id=pid, **kw)


def test_draws_without_replacement_and_split_invariant():
    backend = ReplayBackend(make_bank(n_small=8), "s")
    whole = backend.generate([req(8)])[0]
    parts = backend.generate([req(3), req(5, offset=3)])
    assert parts[0] + parts[1] == whole
    rec = backend.bank.record("p0", "s", "sample")
    assert sorted((c.answer, c.tokens) for c in whole) == \
        sorted((s.answer, s.tokens) for s in rec.samples)


def test_same_seed_same_samples_other_seed_other_order():
    backend = ReplayBackend(make_bank(n_small=8), "s")
    a = backend.generate([req(8, seed=5)])[0]
    assert backend.generate([req(8, seed=5)])[0] == a
    assert [c.tokens for c in backend.generate([req(8, seed=6)])[0]] != [c.tokens for c in a]


def test_beyond_bank_is_an_error_not_a_repeat():
    backend = ReplayBackend(make_bank(n_small=8), "s")
    with pytest.raises(BankError, match=r"samples 6\.\.9 .* holds 8"):
        backend.generate([req(4, offset=6)])


def test_long_samples_are_truncated_and_abstain():
    backend = ReplayBackend(make_bank(n_small=8, max_sample_tokens=300), "s")
    out = backend.generate([req(8, max_tokens=100)])[0]
    rec = backend.bank.record("p0", "s", "sample")
    assert sum(c.finish_reason == "length" for c in out) == \
        sum(s.tokens > 100 for s in rec.samples)
    for c in out:
        assert c.tokens <= 100
        if c.finish_reason == "length":
            assert c.answer is None and c.tokens == 100


def test_greedy_reads_greedy_record_and_ignores_seed():
    backend = ReplayBackend(make_bank(), "l")
    g1 = backend.generate([req(1, seed=1, temperature=0.0)])[0]
    g2 = backend.generate([req(1, seed=2, temperature=0.0)])[0]
    assert g1 == g2
    assert g1[0].answer == backend.bank.record("p0", "l", "greedy").samples[0].answer


def test_unknown_model_and_problem():
    with pytest.raises(BankError, match="no samples of model 'zz'"):
        ReplayBackend(make_bank(), "zz")
    backend = ReplayBackend(make_bank(), "s")
    with pytest.raises(BankError, match="problem 'nope' is not in bank"):
        backend.generate([req(1, pid="nope")])


def test_forced_chains_are_served_whole_without_their_text():
    """A "chain-<L>" sample is a finished forced chain: served without its text (a forcing
    Chain must not force it again); other modes keep their texts."""
    from tts.bank import Record, Sample

    bank = make_bank(n_problems=1, chain_lengths=(128,))
    pid = bank.problem_ids[0]
    bank.add_record(Record(pid, "s", "chain", 3, (Sample("1", 10, text="one call \\boxed{1}"),)))
    replay = ReplayBackend(bank, "s")
    logged = bank.record(pid, "s", "chain-128").samples
    assert all(s.text for s in logged)
    (whole,) = replay.generate([GenRequest(prompt="q", n=2, max_tokens=200, seed=0,
                                           mode="chain-128", problem_id=pid)])
    assert [c.text for c in whole] == [None, None]
    assert sorted(c.tokens for c in whole) == sorted(s.tokens for s in logged)
    (plain,) = replay.generate([GenRequest(prompt="q", max_tokens=200, seed=0, mode="chain",
                                           problem_id=pid)])
    assert plain[0].text == "one call \\boxed{1}"
