"""Answer comparison leaves the host program's signals alone.

math-verify's own timeout calls `signal.alarm` and swaps the SIGALRM handler: a comparison used
to cancel an alarm the host had set. Comparisons now run in a child process with a deadline
kept by `select` (tts.answers.mathverify._MVProcess), so the host's handler and pending alarm are
untouched, an alarm that falls due during a comparison is delivered on time, and a comparison
that overruns is cut off in any thread.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tts.answers import mathverify as answers
from tts.answers import equivalent

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX timers")

SLOW = r"2^{2^{2^{100}}}"
"""An answer sympy cannot finish comparing: only a timeout ends it."""


@pytest.fixture
def host_alarm():
    """A SIGALRM handler like a host program's; restored (and the timer cleared) after."""
    fired: list[float] = []

    def handler(signum, frame):
        fired.append(time.monotonic())

    old = signal.signal(signal.SIGALRM, handler)
    try:
        yield handler, fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_comparison_keeps_the_hosts_alarm_and_handler(host_alarm):
    handler, fired = host_alarm
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    assert equivalent(r"\sqrt{12}", r"2\sqrt{3}")  # reaches math-verify
    assert equivalent(r"\frac{\pi}{4}", r"\frac{1}{4}\pi")
    assert not equivalent(r"\sqrt{12}", r"3\sqrt{2}")
    assert signal.getsignal(signal.SIGALRM) is handler
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < remaining <= 30.0  # still pending: math-verify's alarm(0) used to cancel it
    assert not fired


def test_alarm_due_during_a_slow_comparison_fires_on_time(host_alarm, monkeypatch):
    handler, fired = host_alarm
    monkeypatch.setattr(answers, "_MV_SECONDS", 1.5)
    equivalent(r"\sqrt{2}", r"\sqrt{2}+0")  # start the math-verify process first
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    assert not equivalent(SLOW, "3")  # cut off after 1.5 s: "not equivalent"
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 5.0
    assert len(fired) == 1 and fired[0] - start < 1.0  # delivered at 0.5 s, not lost
    assert signal.getsignal(signal.SIGALRM) is handler
    assert equivalent(r"\sqrt{12}", r"2\sqrt{3}+0")  # a fresh process serves the next call


def test_slow_comparison_is_cut_off_in_a_thread_too(monkeypatch):
    monkeypatch.setattr(answers, "_MV_SECONDS", 1.0)
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(equivalent(SLOW + "+1", "4")))
    start = time.monotonic()
    worker.start()
    worker.join(timeout=30)
    assert got == [False] and time.monotonic() - start < 10
    # the worker thread itself gets math-verify's verdicts as well
    worker = threading.Thread(target=lambda: got.append(equivalent(r"\sqrt{8}", r"2\sqrt{2}")))
    worker.start()
    worker.join(timeout=30)
    assert got == [False, True]
