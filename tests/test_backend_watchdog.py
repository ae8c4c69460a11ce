"""The watchdog: what a killed process leaves behind is ended (a real live build included)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest

from tts import models
from tts.backends import watchdog

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _wait_gone(noted: dict[int, int], seconds: float) -> dict[int, int]:
    deadline = time.monotonic() + seconds  # a guard against hangs, not a timing check
    left = noted
    while time.monotonic() < deadline:
        left = {p: t for p, t in noted.items()
                if watchdog.start_time(p) == t and watchdog.alive(p)}
        if not left:
            break
        time.sleep(0.2)
    return left


PARENT = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from tts.backends import watchdog
watchdog.watch()
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        for _ in range(2)]
detached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            start_new_session=True)
print(detached.pid, flush=True)
time.sleep(600)
"""


def test_descendants_of_a_sigkilled_process_are_ended(tmp_path) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(watchdog.__file__)))
    proc = subprocess.Popen([sys.executable, "-c", PARENT, os.path.dirname(root)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    detached = int(proc.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(watchdog.descendants(proc.pid)) < 4:
            time.sleep(0.1)
        noted = watchdog.descendants(proc.pid)
        assert len(noted) == 4  # the watchdog, two sleepers, the detached one
        time.sleep(2 * watchdog.POLL)  # the watchdog has noted them
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = _wait_gone({p: t for p, t in noted.items() if p != detached}, 30)
        assert not left, f"still running after the parent's SIGKILL: {left}"
        assert watchdog.alive(detached)  # its own session: meant to outlive the parent
    finally:
        for pid in (detached, *watchdog.descendants(proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_end_spares_a_reused_pid() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        started = watchdog.start_time(sleeper.pid)
        assert started is not None
        assert watchdog.end({sleeper.pid: started + 1}, grace=0.1) == []  # another process
        assert sleeper.poll() is None
        assert watchdog.end({sleeper.pid: started}, grace=5) == [sleeper.pid]
        assert sleeper.wait(timeout=30) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


@pytest.mark.live
def test_sigkilled_live_build_leaves_no_vllm_process(tmp_path) -> None:
    """A real `tts bank build` with vLLM's engine-core and worker processes (the separate-
    process engine, VLLM_ENABLE_V1_MULTIPROCESSING=1), SIGKILLed alone (not its group) once
    its workers run: none of its processes survives. Without the watchdog they did (re-
    parented to init, holding the engine's memory)."""
    if not HAS_VLLM or not models.is_pulled("tiny"):
        pytest.skip("needs vLLM and the tiny model (`bash scripts/install_cpu.sh tiny`)")
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    cmd = [sys.executable, "-m", "tts.cli", "bank", "build", str(tmp_path / "bank"),
           "--model", "tiny", "--n", "20", "--samples", "4", "--max-tokens", "64"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    noted: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 900  # a guard against hangs, not a timing check
        while time.monotonic() < deadline and proc.poll() is None:
            noted = watchdog.descendants(proc.pid)
            if any(_name(p) == "VLLM::Worker" for p in noted):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the build ended before its workers ran"
        assert any(_name(p) == "VLLM::Worker" for p in noted)
        time.sleep(2 * watchdog.POLL)
        noted = watchdog.descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = _wait_gone(noted, 60)
        assert not left, f"left behind: {[(p, _name(p)) for p in left]}"
    finally:
        for pid in noted:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
