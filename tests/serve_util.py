"""Start and stop real `tts serve` processes on 127.0.0.1 for the serving tests and bench."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`python -m tts.cli serve ARGS --port P` on loopback; waits for /health."""

    def __init__(self, *args: str, port: int | None = None, startup_timeout: float = 120.0,
                 log: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.command = [sys.executable, "-m", "tts.cli", "serve", "--host", "127.0.0.1",
                        "--port", str(self.port), *args]
        self.log_path = log
        out = open(log, "wb") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.started = time.monotonic()
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"tts serve exited with {self.process.returncode}: "
                                   f"{' '.join(self.command)} (log: {log})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"tts serve did not answer /health in {startup_timeout} s")
            time.sleep(0.2)
        self.ready_seconds = time.monotonic() - self.started

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would (its own session: any engine workers too)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
