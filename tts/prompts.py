"""How a question is put to a model, and how a long chain is told to finish."""

from __future__ import annotations

ANSWER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The instruction Qwen2.5 (Math/Coder) models are trained with; no placeholder to echo."""

FINAL_ANSWER_CUE = "\n\nTime is up. The final answer is \\boxed{"
"""Appended by budget forcing when a chain reaches its token share (s1-style)."""

CONTINUE_CUE = "\nWait"
"""Appended by budget forcing when a chain stops early with budget left."""


def format_question(question: str) -> str:
    """The user message sent for a question."""
    return f"{question.strip()}\n\n{ANSWER_INSTRUCTION}"
