"""math-verify's verdict on two LaTeX answers, run in a long-lived child process with a deadline.

Only math-verify's LaTeX parser is used: its plain-expression parser goes through
`sympy.parse_expr`, which evaluates Python, and model output must never be executed.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

_MV_MAX_CHARS = 500
"""Longer answers skip math-verify: sympy time grows fast with size, and voting calls it often."""


_MV_SECONDS = 5.0
"""Time one math-verify comparison (parsing both answers and verifying) may take."""
_MV_START_SECONDS = 120.0
"""Time the math-verify process may take to import sympy and math-verify."""

# The math-verify process: reads JSON lines [a, b], answers "1" or "0" per line. math-verify's
# own timeouts are off (they call signal.alarm); the parent's deadline replaces them.
_MV_SERVER = r"""
import json, signal, sys
from functools import lru_cache
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
import math_verify.grader, math_verify.parser
from math_verify import LatexExtractionConfig, parse, verify
math_verify.grader.TIMEOUT_WARNING_SHOWN = math_verify.parser.TIMEOUT_WARNING_SHOWN = True

@lru_cache(maxsize=1 << 12)
def parsed(key):
    try:
        return tuple(parse("$" + key + "$", [LatexExtractionConfig()], parsing_timeout=None))
    except Exception:
        return ()

def equal(a, b):
    pa, pb = parsed(a), parsed(b)
    if not pa or not pb:
        return False
    try:
        return bool(verify(list(pa), list(pb), timeout_seconds=None))
    except Exception:
        return False

sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    a, b = json.loads(line)
    sys.stdout.write("1\n" if equal(a, b) else "0\n")
    sys.stdout.flush()
"""


class _MVProcess:
    """math-verify in a child process, so comparisons never touch the caller's signals.

    math-verify's timeout calls `signal.alarm` and swaps the SIGALRM handler, which cancels an
    alarm the host program set (and works only on the main thread). A thread with a deadline
    is no substitute: sympy can sit in one long big-integer operation holding the GIL. So the
    comparisons run in one long-lived child process, started on first use; the caller waits at
    most `_MV_SECONDS` for each verdict (in `select`, no signals), and a child that overruns is
    killed (the comparison counts as "not equivalent") and restarted on the next call. If the
    child cannot start, math-verify is skipped: LaTeX answers then match only by their keys.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._buffer = b""
        self.broken: str | None = None
        """Why the process could not start (then every comparison is "not equivalent")."""
        self.restarts = 0
        import atexit
        import os

        if hasattr(os, "register_at_fork"):  # a forked child must not share our pipes
            os.register_at_fork(after_in_child=self._forget)
        atexit.register(self._stop)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._proc, self._buffer = None, b""

    def equal(self, a: str, b: str) -> bool:
        import json

        with self._lock:
            if self.broken is not None:
                return False
            if self._proc is None and not self._start():
                return False
            try:
                self._proc.stdin.write(json.dumps([a, b]).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._readline(_MV_SECONDS)
            except OSError:
                line = None
            if line is None:  # overran (or died): kill it, a fresh one serves the next call
                self._stop()
                self.restarts += 1
                return False
            return line == b"1"

    def _start(self) -> bool:
        import subprocess
        import sys

        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _MV_SERVER],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        except OSError as exc:
            self.broken = f"cannot start {sys.executable}: {exc}"
            return False
        self._buffer = b""
        if self._readline(_MV_START_SECONDS) != b"ready":
            self._stop()
            self.broken = "the math-verify process did not start (is math-verify installed?)"
            return False
        return True

    def _readline(self, seconds: float) -> bytes | None:
        import os
        import select
        import time

        deadline = time.monotonic() + seconds
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ready, _, _ = select.select([fd], [], [], left)
            except InterruptedError:  # a host signal handler ran; keep waiting
                continue
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:  # the process died
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.strip()

    def _stop(self) -> None:
        proc, self._proc, self._buffer = self._proc, None, b""
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=10)
        except Exception:  # already gone
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


_MV = _MVProcess()


@lru_cache(maxsize=1 << 14)
def _mv_equal(a: str, b: str) -> bool:
    """math-verify's verdict on two LaTeX answers, within `_MV_SECONDS` (`_MVProcess`)."""
    if len(a) > _MV_MAX_CHARS or len(b) > _MV_MAX_CHARS:
        return False
    return _MV.equal(a, b)
