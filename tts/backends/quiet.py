"""Quiet live engines: vLLM's logs and output to a file, plain progress for pipes.

In quiet mode (the default) vLLM's logger, its C++ output and its processes' output go to
`log_file()`; progress reaches the user through `Terminal` (the original stdout/stderr) and,
when stderr is not a terminal (nohup, CI), through `heartbeat` lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

VERBOSE_ENV = "TTS_VERBOSE"
"""Set to 1 to let vLLM log to the terminal (the CLI's --verbose does this)."""
LOG_FILE_ENV = "TTS_LOG_FILE"
"""Where quiet engines write their logs (default ~/.cache/tts/logs/vllm.log)."""
HEARTBEAT_SECONDS = 60.0
"""While a load or generate call runs longer, a plain progress line goes to stderr every this
many seconds when stderr is not a terminal (nohup, CI), so a long run is seen to be alive."""


def log_file() -> Path:
    """File that vLLM's logs (and anything its processes print) go to in quiet mode."""
    env = os.environ.get(LOG_FILE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tts" / "logs" / "vllm.log"


def verbose_default() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_vllm_logging(path: Path) -> None:
    """Send the `vllm` logger of this process and of the engine processes it starts to `path`.

    The engine processes configure their logging from the environment when they start, so the
    config goes there (VLLM_LOGGING_CONFIG_PATH); this process's handlers are swapped now in
    case vLLM is already imported.
    """
    import logging

    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path),
                              "formatter": "plain", "level": "INFO", "encoding": "utf-8"}},
        "loggers": {"vllm": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    cfg = path.with_name("vllm-logging.json")
    cfg.write_text(json.dumps(config))
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(cfg)
    # Deprecation notices of vLLM and the libraries it drives are theirs to fix, not the user's.
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category,
                                module=r"(vllm|torch|transformers|triton)(\.|$)")
    logger = logging.getLogger("vllm")
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve())
               for h in logger.handlers):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
        logger.addHandler(handler)
        logger.propagate = False


class Terminal:
    """Where stdout and stderr pointed before `redirect_output` sent fds 1 and 2 to the log."""

    def __init__(self, out: int, err: int, target: int | None):
        self.out, self.err, self.target = out, err, target

    @property
    def is_terminal(self) -> bool:
        return os.isatty(self.err)

    def say(self, line: str) -> None:
        """Write one line to the original stderr (safe from any thread)."""
        with contextlib.suppress(OSError):
            os.write(self.err, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        """Point fds 1 and 2 back at the terminal for the duration (main thread only), so a
        progress callback's prints reach the user rather than the log."""
        if self.target is None:
            yield
            return
        _flush()
        os.dup2(self.out, 1)
        os.dup2(self.err, 2)
        try:
            yield
        finally:
            _flush()
            os.dup2(self.target, 1)
            os.dup2(self.target, 2)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def redirect_output(path: Path | None) -> Iterator[Terminal]:
    """Point file descriptors 1 and 2 at `path` (appending) for the duration, so C++ and
    worker-process output land there too; None: no redirection. Yields the original
    stdout/stderr (`Terminal`)."""
    if path is None:
        yield Terminal(1, 2, None)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield Terminal(saved[0], saved[1], target)
    finally:
        _flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


@contextlib.contextmanager
def heartbeat(terminal: Terminal, describe: Callable[[float], str],
              every: float | None = None) -> Iterator[None]:
    """While the block runs, write `describe(seconds so far)` to the original stderr every
    `every` seconds (HEARTBEAT_SECONDS), unless stderr is a terminal (which shows its own
    progress)."""
    every = HEARTBEAT_SECONDS if every is None else every
    if terminal.is_terminal:
        yield
        return
    stop = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            terminal.say(describe(time.perf_counter() - start))

    thread = threading.Thread(target=beat, name="tts-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class Ticks:
    """The tqdm stand-in handed to `LLM.generate(use_tqdm=...)`: reports samples done and
    output tokens/s to a callback instead of drawing a bar."""

    _SPEED = re.compile(r"output: ([0-9.]+) toks/s")

    def __init__(self, report: Callable[[int, int, float], None], *, total: int = 0,
                 **_: Any):
        self.report, self.total, self.n, self.start = report, total, 0, time.perf_counter()
        self.postfix = ""
        self.speed = 0.0
        report(0, total, 0.0)

    @property
    def format_dict(self) -> dict[str, float]:
        return {"elapsed": max(time.perf_counter() - self.start, 1e-9)}

    def update(self, n: int = 1) -> None:
        self.n += n
        match = self._SPEED.search(str(self.postfix))
        if match:
            self.speed = float(match.group(1))
        self.report(self.n, self.total, self.speed)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["log_file", "verbose_default", "quiet_vllm_logging", "Terminal", "redirect_output",
           "heartbeat", "clock", "Ticks", "VERBOSE_ENV", "LOG_FILE_ENV", "HEARTBEAT_SECONDS"]
