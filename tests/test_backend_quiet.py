"""Quiet live engines: logs to a file, progress to the user, plain lines when piped."""

from __future__ import annotations

import os
import sys
import time
import warnings

from tts.backends import quiet
from tts.backends.quiet import Terminal, heartbeat, quiet_vllm_logging, redirect_output


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_heartbeat_prints_plain_lines_when_stderr_is_not_a_terminal() -> None:
    read, write = os.pipe()
    try:
        with heartbeat(Terminal(write, write, None), lambda t: f"alive {t:.1f}", every=0.02):
            time.sleep(0.3)
        lines = _read_all(read).splitlines()
    finally:
        os.close(read)
        os.close(write)
    assert len(lines) >= 3 and all(line.startswith("alive ") for line in lines)
    assert [float(x.split()[1]) for x in lines] == sorted(float(x.split()[1]) for x in lines)


def test_heartbeat_stays_silent_on_a_terminal() -> None:
    main, tty = os.openpty()
    try:
        with heartbeat(Terminal(tty, tty, None), lambda t: "alive", every=0.02):
            time.sleep(0.2)
        assert _read_all(main) == ""
    finally:
        os.close(main)
        os.close(tty)


def test_output_goes_to_the_log_and_shown_reaches_the_terminal(tmp_path, capfd) -> None:
    log = tmp_path / "vllm.log"
    # fd-level writes, as C++ code and a CLI's prints (sys.stdout is fd 1 there) make them
    with redirect_output(log) as terminal:
        os.write(1, b"engine chatter\n")
        os.write(2, b"c++ warning\n")
        with terminal.shown():
            os.write(1, b"progress line\n")
        terminal.say("heartbeat line")
        os.write(1, b"more chatter\n")
    out, err = capfd.readouterr()
    assert "progress line" in out and "heartbeat line" in err
    assert "chatter" not in out + err and "c++" not in out + err
    text = log.read_text()
    assert "engine chatter" in text and "c++ warning" in text and "more chatter" in text
    assert "progress line" not in text


def test_quiet_mode_silences_library_warnings_only(tmp_path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_vllm_logging(tmp_path / "vllm.log")
        for module in ("vllm.triton_utils.dispatcher", "torch.distributed", "transformers"):
            warnings.warn_explicit("`reduce_op` is deprecated", FutureWarning, "x.py", 1,
                                   module=module)
        warnings.warn_explicit("mine", FutureWarning, "mine.py", 1, module="mycode")
    assert [str(w.message) for w in caught if w.category is FutureWarning] == ["mine"]


def test_clock() -> None:
    assert quiet.clock(5.4) == "5 s"
    assert quiet.clock(125) == "2 min 05 s"
    assert sys.modules["tts.backends.quiet"] is quiet
