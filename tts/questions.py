"""Questions to build a bank for: a JSONL file of GSM8K or MATH rows (`tts bank build
--questions`).

One JSON object per line: `{"question": "...", "answer": "... #### 42"}` (GSM8K: the gold is
the number after "####") or `{"problem": "...", "answer": "42"}` (MATH: the answer as given);
`answer` may be absent (no gold). Blank lines are skipped; problem ids are
"<prefix>-<line index>".
"""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

from tts.errors import ValidationError
from tts.files import open_regular
from tts.types import Problem


def read_questions(path: str | Path, limit: int | None = None, *, start: int = 0,
                   prefix: str | None = None) -> list[Problem]:
    """Problems from a JSONL file of GSM8K rows (`question`, `answer` ending "#### n") or
    MATH rows (`problem`, `answer`), with ids "<prefix>-<line index>" (0-based lines, so the
    row index of files without blank lines). `prefix` defaults to the file stem, and to
    "gsm8k-<stem>" for a file in a folder named gsm8k, so GSM8K test row i is
    "gsm8k-test-<i>" as in the bundled bank. `start` skips lines before that index; `limit`
    caps the number of problems."""
    from tts.answers import extract_answer

    path = Path(path)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValidationError(f"`start` must be an integer >= 0, got {start!r}.",
                              parameter="start", value=start)
    if prefix is None:
        prefix = f"gsm8k-{path.stem}" if path.parent.name.lower() == "gsm8k" else path.stem
    problems = []
    try:
        with io.TextIOWrapper(open_regular(path, partial(ValidationError, parameter="questions"),
                                           f"questions file {path}"), encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                lineno = index + 1
                if index < start or not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    question = row.get("question", row.get("problem"))
                except (json.JSONDecodeError, AttributeError, RecursionError):
                    raise ValidationError(f"{path}:{lineno}: expected a JSON object per line.",
                                          parameter="questions") from None
                if not isinstance(question, str) or not question.strip():
                    raise ValidationError(f"{path}:{lineno}: no `question` or `problem` text.",
                                          parameter="questions")
                answer = row.get("answer")
                gold = None if answer is None else (
                    extract_answer(answer) if "####" in str(answer) else str(answer))
                problems.append(Problem(question, id=f"{prefix}-{index}", gold=gold))
                if limit is not None and len(problems) >= limit:
                    break
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).",
                              parameter="questions") from None
    if not problems:
        raise ValidationError(f"questions file {path} holds no questions"
                              f"{f' from line index {start}' if start else ''}.",
                              parameter="questions")
    return problems
