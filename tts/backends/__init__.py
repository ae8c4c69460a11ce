"""Generation backends: one protocol, several engines.

A backend serves one model. `generate` takes many requests at once (many prompts, n samples
each) so the engine behind it can schedule them together, and returns the samples of each
request in order. Backends import their engine lazily: `import tts` never needs vLLM.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from tts.types import Completion, GenRequest


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a generation engine."""

    model: str
    """Model name, used for prices (CostModel) and reports."""

    def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions (samples
        `offset .. offset + n - 1` of its seeded stream)."""
        ...

    def prompt_tokens(self, request: GenRequest) -> int:
        """Prompt tokens the request will cost, known before generating (for reservations)."""
        ...


__all__ = ["Backend"]
