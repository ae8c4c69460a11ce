"""A watchdog that ends a process's descendants when the process dies, even by SIGKILL.

vLLM's engine-core and worker processes (`VLLM_ENABLE_V1_MULTIPROCESSING=1`), and compilers
started by torch, outlive a SIGKILLed parent: they are re-parented to init and keep their
memory (5.5 GB for the tiny model's engine in one test). `watch()` starts one small process
per process (`python -I .../watchdog.py PID`, in its own session so that signals for the
parent's terminal or group do not reach it). Every `POLL` seconds it notes the parent's
descendants in the parent's process group; once the pipe from the parent closes while the
parent is gone, it sends them (and, when the parent led its group, as a shell job does,
whatever of that group init adopted) SIGTERM, then SIGKILL to those still there after `GRACE`
seconds. A process is only signalled if it still has the start time it was noted with (pids
are reused).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

POLL = 0.5
GRACE = 3.0
_started: dict[int, subprocess.Popen] = {}
_pipes: list[int] = []


def watch() -> int:
    """Start this process's watchdog (once per process); returns its pid."""
    me = os.getpid()
    if me in _started and _started[me].poll() is None:
        return _started[me].pid
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        # By path and isolated (-I): stdlib only, whatever sys.path the caller has.
        proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(me)],
                                stdin=read, stdout=ready_write,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    finally:
        os.close(read)
        os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        ready.read(1)  # it has noted what runs now
    # Held open for this process's life (never inherited): its close is the signal.
    os.set_inheritable(write, False)
    _started[me] = proc
    _pipes.append(write)
    return proc.pid


def start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (None when it does not exist)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def orphans(pgid: int) -> dict[int, int]:
    """{pid: start time} of the processes of group `pgid` that init (or a subreaper) adopted,
    and of their descendants: what a dead group leader left behind. A pipeline's other
    processes keep their shell as parent and are not among them."""
    parents: dict[int, int] = {}
    started: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    parents[int(name)] = int(fields[1])
                    started[int(name)] = int(fields[19])
            except (OSError, ValueError, IndexError):
                continue
    found = {p for p, pp in parents.items() if pp == 1 or not alive(pp)}
    grew = True
    while grew:
        more = {p for p, pp in parents.items() if pp in found} - found
        found |= more
        grew = bool(more)
    return {p: started[p] for p in found}


def descendants(pid: int) -> dict[int, int]:
    """{pid: start time} of every descendant of `pid` (from /proc/PID/task/*/children)."""
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            for kid in kids:
                started = start_time(kid)
                if kid not in found and started is not None:
                    found[kid] = started
                    todo.append(kid)
    return found


def end(noted: dict[int, int], grace: float = GRACE) -> list[int]:
    """SIGTERM, then after `grace` seconds SIGKILL, the noted processes that still run with
    the start time they were noted with; returns the pids signalled."""
    me = os.getpid()
    targets = [p for p, t in noted.items() if p != me and start_time(p) == t and alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in targets:
            if start_time(pid) == noted[pid] and alive(pid):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(
                start_time(p) == noted[p] and alive(p) for p in targets):
            time.sleep(0.1)
    return targets


def main(parent: int) -> None:
    """Watch `parent` until its pipe (our stdin) closes, then end what it left behind: the
    descendants noted in its process group and, when it led that group (a shell job), the
    group's processes init adopted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    noted: dict[int, int] = {}
    parent_start = start_time(parent)
    group = os.getpgid(parent)
    first = True
    while True:
        for pid, started in descendants(parent).items():
            if _group(pid) == group:  # a child that made its own session was meant to stay
                noted[pid] = started
        noted = {p: t for p, t in noted.items() if start_time(p) == t}
        if first:
            os.write(1, b"r")
            os.close(1)
            first = False
        ready, _, _ = select.select([0], [], [], POLL)
        if (ready and not os.read(0, 4096)) or not alive(parent):
            break
    # The pipe closes while the parent exits (it never closes it otherwise); wait for the end.
    deadline = time.monotonic() + 30
    while alive(parent) and start_time(parent) == parent_start and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(parent) and start_time(parent) == parent_start:
        return
    if group == parent:
        noted.update(orphans(group))
    end(noted)


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


if __name__ == "__main__":
    main(int(sys.argv[1]))
