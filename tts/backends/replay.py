"""Replay backend: serves requests from a bank of logged real samples.

Sample i of stream `seed` is the i-th sample of the record in `sample_order(...)`, so draws are
without replacement, reproducible, and independent of how they are split into waves. Asking
beyond what the bank holds is an error, never a silent repeat. A logged sample longer than the
request's `max_tokens` would have been cut off: it is served truncated (finish "length", no
answer) and charged `max_tokens`. A request with `logprobs` gets the bank's mean logprob and
lowest window confidence of each sample (None where the bank holds none, and for truncated
samples, whose logged confidence covers text they never produced). Samples of a
budget-forced chain mode ("chain-<L>") are whole forced chains: they are served without their
text, so a forcing `Chain` takes each as finished instead of forcing it again (which would read
another logged chain as its continuation).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from tts.bank import Record, SampleBank, load_bank, sample_order
from tts.errors import BankError, ValidationError
from tts.strategies.chain import is_forced_chain_mode
from tts.types import Completion, GenRequest, Problem


class ReplayBackend:
    """Backend for one model of a SampleBank."""

    def __init__(self, bank: SampleBank | str | os.PathLike, model: str):
        if isinstance(bank, (str, os.PathLike)):
            bank = load_bank(bank)
        elif not isinstance(bank, SampleBank):
            raise ValidationError(f"`bank` must be a SampleBank or the path of a bank folder, "
                                  f"got {type(bank).__name__}.", parameter="bank")
        if not isinstance(model, str) or not model:
            raise ValidationError(f"`model` must be a model name of the bank {bank.models}, got "
                                  f"{model!r}.", parameter="model", value=model)
        self.bank = bank
        self.bank.require(model)
        self.model = model
        self._orders: dict[tuple[str, str, int | None], np.ndarray] = {}

    def __repr__(self) -> str:
        return f"ReplayBackend({self.bank.meta.name!r}, model={self.model!r})"

    @property
    def cost(self):
        """The bank's token prices (the engine's default CostModel)."""
        return self.bank.meta.cost

    def lookup(self, question: str) -> Problem:
        """The bank problem asked by `question` (replay can answer only those)."""
        return self.bank.find(question)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        return [self._serve(r) for r in requests]

    def prompt_tokens(self, request: GenRequest) -> int:
        return self._record(request).prompt_tokens

    def _record(self, request: GenRequest) -> Record:
        pid = request.problem_id
        if pid is None:
            raise BankError("replay needs the problem id (or a question the bank holds).")
        return self.bank.record(pid, self.model, request.sampling_mode)

    def _serve(self, request: GenRequest) -> list[Completion]:
        rec = self._record(request)
        size = len(rec.samples)
        end = request.offset + request.n
        if end > size:
            raise BankError(
                f"request for samples {request.offset}..{end - 1} of {self.model} "
                f"({request.sampling_mode}) on problem {rec.problem_id!r}, but the bank holds "
                f"{size}; lower the sample count or build a larger bank.")
        seed = None if request.sampling_mode == "greedy" else request.seed
        key = (rec.problem_id, rec.mode, seed)
        order = self._orders.get(key)
        if order is None:
            order = self._orders[key] = sample_order(rec.problem_id, self.model, rec.mode, seed,
                                                     size)
        out = []
        whole = is_forced_chain_mode(rec.mode)
        for idx in order[request.offset:end]:
            s = rec.samples[idx]
            if s.tokens > request.max_tokens:
                out.append(Completion(text=None, answer=None, tokens=request.max_tokens,
                                      finish_reason="length", prompt_tokens=rec.prompt_tokens))
            else:
                out.append(Completion(text=None if whole else s.text, answer=s.answer,
                                      tokens=s.tokens,
                                      prompt_tokens=rec.prompt_tokens,
                                      mean_logprob=s.logprob if request.logprobs else None,
                                      min_conf=s.min_conf if request.logprobs else None))
        return out
