"""CPU settings of live engines: threads from the cores other processes leave free, KV cache
sized from the model."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tts.backends import cpu
from tts.backends.cpu import CoreMeter, CpuTimes, kv_cache_bytes, threads_for
from tts.errors import ValidationError


@pytest.mark.parametrize("free, cores, threads", [
    (2.0, 2, 2), (1.8, 2, 2), (1.5, 2, 1), (1.0, 2, 1), (0.0, 2, 1),
    (8.0, 8, 8), (5.8, 8, 6), (5.0, 8, 5), (0.4, 8, 1), (1.0, 1, 1), (0.0, 1, 1)])
def test_one_thread_per_free_core(free, cores, threads) -> None:
    assert threads_for(free, cores) == threads


def _meter(monkeypatch, readings, cores=2):
    """A CoreMeter fed with (busy, own) seconds per reading, 10 s of wall time apart."""
    seq = iter([CpuTimes(busy, 10.0 * cores * i, own, cores)
                for i, (busy, own) in enumerate(readings)])
    monkeypatch.setattr(cpu, "read_times", lambda: next(seq))
    monkeypatch.setattr(cpu, "allowed_cores", lambda: list(range(cores)))
    monkeypatch.delenv(cpu.THREADS_ENV, raising=False)
    return CoreMeter()


def test_a_busy_neighbour_takes_a_thread_and_our_own_work_does_not(monkeypatch) -> None:
    # 10 s windows on 2 cores: others busy 10 s (one core) -> 1 thread; then we computed
    # 19 s ourselves and others 0.5 s -> 2 threads; then others 14 s -> 1 thread
    meter = _meter(monkeypatch, [(0, 0), (10, 0), (29.5, 19), (43.5, 19)])
    assert [meter.threads(), meter.threads(), meter.threads()] == [1, 2, 1]
    assert meter.chosen == 1


def test_a_short_window_keeps_the_last_choice(monkeypatch) -> None:
    meter = _meter(monkeypatch, [(0, 0), (10, 0)])
    assert meter.threads() == 1
    monkeypatch.setattr(cpu, "read_times",
                        lambda: CpuTimes(10.1, 20.2, 0.0, 2))  # 0.1 s later
    assert meter.threads() == 1


def test_unreadable_proc_keeps_every_core(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "read_times", lambda: None)
    monkeypatch.setattr(cpu, "allowed_cores", lambda: [0, 1, 2])
    monkeypatch.delenv(cpu.THREADS_ENV, raising=False)
    assert CoreMeter().threads() == 3


def test_threads_env_fixes_the_count_and_bad_values_name_it(monkeypatch) -> None:
    meter = _meter(monkeypatch, [(0, 0), (20, 0), (40, 0)])
    monkeypatch.setenv(cpu.THREADS_ENV, "3")
    assert meter.threads() == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(cpu.THREADS_ENV, bad)
        with pytest.raises(ValidationError, match=rf"TTS_CPU_THREADS.*{bad!r}"):
            meter.threads()


def test_a_real_busy_process_is_seen() -> None:
    """Over a second in which a child spins, the meter sees at most cores - 0.5 free (on a
    machine that is busier still it sees even fewer): the child is another process."""
    meter = CoreMeter()
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend = time.time() + 1.5\n"
                              "while time.time() < end: pass"])
    try:
        time.sleep(1.2)
        free = meter.free_cores()
    finally:
        child.wait()
    assert free is not None
    assert free <= len(cpu.allowed_cores()) - 0.5


def test_read_times_counts_our_own_cpu_time() -> None:
    before = cpu.read_times()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = cpu.read_times()
    assert before is not None and after is not None
    assert after.own - before.own >= 0.2
    assert after.busy - before.busy >= after.own - before.own - 0.05


def test_kv_cache_is_sized_from_the_model(tmp_path) -> None:
    config = {"num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
              "hidden_size": 896}  # Qwen2.5-0.5B: head_dim 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    per_token = 2 * 24 * 2 * 64 * 2
    assert kv_cache_bytes(tmp_path, "bfloat16", 2048) == per_token * 2048 * 4
    assert kv_cache_bytes(tmp_path, "float32", 2048) == 2 * per_token * 2048 * 4
    assert kv_cache_bytes(tmp_path, "bfloat16", 4096, sequences=2) == per_token * 4096 * 2
    (tmp_path / "config.json").write_text("{}")
    assert kv_cache_bytes(tmp_path, "bfloat16", 2048) == 2**30  # unknown: 1 GiB
