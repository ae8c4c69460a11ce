"""CPU settings of live engines: dtype, KV cache size and threads, from the machine as it is.

Two facts shape them (bench/live.py measures both):

- vLLM's CPU engine computes with OpenMP threads that wait for each other at every layer. On a
  core shared with another busy process a thread gets a fraction of its time slices and the
  whole team waits for it: on 2 cores beside other work the small model fell from ~100 to
  3-14 tokens/s with 2 threads and ran at 67 with 1. So a live engine uses one thread per core
  that other processes leave free, measured from /proc/stat over the last load or generate
  call (`CoreMeter`), re-checked before each generate; `TTS_CPU_THREADS` fixes the number.
- vLLM's CPU default reserves a KV cache from a share of all RAM. tts sizes it from the model
  (`kv_cache_bytes`): room for `KV_SEQUENCES` sequences of the full context at once; paged
  blocks hold only what a sequence uses, so typical samples run many more at a time.
  `VLLM_CPU_KVCACHE_SPACE` (GiB, vLLM's own setting) overrides it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tts.errors import ValidationError

THREADS_ENV = "TTS_CPU_THREADS"
"""A fixed number of compute threads for live CPU engines (default: chosen from free cores)."""
KV_SEQUENCES = 4
"""Full-context sequences the default KV cache holds at once (a wave of 16 samples of a few
hundred tokens fits; more sequences wait for room)."""
BUSY_MARGIN = 0.3
"""Share of a core other processes may use while it still counts as free."""


def cpu_flags() -> set[str]:
    """Flags of the first CPU in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_dtype() -> str:
    """bfloat16 where the CPU computes it natively (avx512_bf16 / AMX), else float32.

    Emulated bf16 on a CPU without these instructions was measured 3x slower than float32,
    at twice the weights' memory: on an AVX2-only CPU the two demo models take ~2x the
    memory of bench/results/live (pass `dtype="bfloat16"` to trade speed for memory)."""
    flags = cpu_flags()
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


def kv_cache_bytes(model_dir: Path, dtype: str, max_model_len: int,
                   sequences: int = KV_SEQUENCES) -> int:
    """KV cache for `sequences` sequences of `max_model_len` tokens of the model in
    `model_dir` (its config.json), rounded up to MiB; 1 GiB when the config does not say."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        config = config.get("text_config", config)
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return 2**30
    width = 4 if dtype in ("float32", "float") else 2
    per_token = 2 * layers * kv_heads * head_dim * width  # K and V
    return max(1, math.ceil(per_token * max_model_len * sequences / 2**20)) * 2**20


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU time (seconds) of the cores this process may run on, and of this
    process, at one moment."""

    busy: float
    total: float
    own: float
    cores: int


class CoreMeter:
    """Counts the cores other processes leave free, between two readings of /proc/stat.

    Our own CPU time is subtracted, so a reading taken over our own generate call sees what
    the rest of the machine used meanwhile (steal time counts as used by others)."""

    MIN_WINDOW = 0.5
    """Seconds of wall time a reading must span to count (a shorter one keeps the choice)."""

    def __init__(self) -> None:
        self.last = read_times()
        self.chosen = len(allowed_cores())

    def free_cores(self) -> float | None:
        """Cores free of other processes since the last reading (None where unreadable or
        when less than MIN_WINDOW seconds passed; the last reading then stays)."""
        now = read_times()
        before = self.last
        if now is None or before is None:
            self.last = now
            return None
        per_core = (now.total - before.total) / now.cores
        if per_core < self.MIN_WINDOW:
            return None
        self.last = now
        others = max(0.0, (now.busy - before.busy) - (now.own - before.own)) / per_core
        return max(0.0, now.cores - others)

    def threads(self) -> int:
        """Threads to compute with: `TTS_CPU_THREADS` if set, else the free cores (a core
        counts when other processes used less than BUSY_MARGIN of it), at least 1; the last
        choice when there is no new reading."""
        fixed = threads_from_env()
        free = self.free_cores()
        if fixed is not None:
            self.chosen = fixed
        elif free is not None:
            self.chosen = threads_for(free, len(allowed_cores()))
        return self.chosen


def threads_for(free: float, cores: int) -> int:
    """One thread per core other processes leave (nearly) free, at least 1, at most `cores`."""
    return max(1, min(cores, cores - math.ceil(cores - free - BUSY_MARGIN)))


def threads_from_env() -> int | None:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError(f"${THREADS_ENV} must be an integer >= 1 (compute threads of "
                              f"live CPU engines), got {raw!r}.", parameter=THREADS_ENV,
                              value=raw)
    return value


def allowed_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def read_times() -> CpuTimes | None:
    """CPU times from /proc/stat (cores in our affinity) and /proc/self/stat."""
    cores = set(allowed_cores())
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cores:
                    continue
                values = [int(v) for v in fields[:8]]
                total += sum(values)
                busy += sum(values) - values[3] - values[4]  # all but idle and iowait
        with open("/proc/self/stat") as f:
            own_fields = f.read().rsplit(")", 1)[1].split()
        own = int(own_fields[11]) + int(own_fields[12])  # utime + stime, all threads
    except (OSError, ValueError, IndexError):
        return None
    if not total:
        return None
    return CpuTimes(busy / tick, total / tick, own / tick, len(cores))


def set_threads(n: int) -> None:
    """Set torch's intra-op (OpenMP) threads of this process. vLLM's CPU worker replaces
    `torch.set_num_threads` with a no-op once an engine is built; the builtin still works
    between generate calls (threads only change outside parallel regions)."""
    import torch

    torch._C.set_num_threads(n)


@contextlib.contextmanager
def lean_embeddings() -> Iterator[None]:
    """While a CPU engine is built in this process, keep one copy of each vocabulary matrix.

    vLLM packs both vocabulary matrices for oneDNN and keeps the originals too: the output
    layer's (`ParallelLMHead`), which its matmul never reads again once packed (a tied one
    shares the input embedding's, which stays), and the input embedding's packed copy, which
    only a model using the embedding module itself as output layer ever calls. So the output
    layer is packed without its original, and the input embedding is packed on first use.
    Saves 0.27 GB (small) and 0.47 GB (large) of peak and resident memory; the outputs are
    bit-identical (bench/results/live)."""
    from vllm.model_executor.layers import utils

    original = utils.dispatch_cpu_unquantized_gemm

    def dispatch(layer: Any, remove_weight: bool) -> None:
        kind = type(layer).__name__
        if kind == "ParallelLMHead":
            return original(layer, remove_weight=True)
        if kind == "VocabParallelEmbedding":
            def pack_on_first_use(x: Any, weight: Any, bias: Any) -> Any:
                original(layer, remove_weight=False)  # installs the packed matmul
                return layer.cpu_linear(x, weight, bias)

            layer.cpu_linear = pack_on_first_use
            return None
        return original(layer, remove_weight=remove_weight)

    utils.dispatch_cpu_unquantized_gemm = dispatch
    try:
        yield
    finally:
        utils.dispatch_cpu_unquantized_gemm = original


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc), e.g. the unpacked weights an
    engine load leaves behind; a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = ["cpu_flags", "cpu_dtype", "kv_cache_bytes", "CoreMeter", "CpuTimes", "threads_for",
           "threads_from_env", "allowed_cores", "read_times", "set_threads",
           "release_free_memory", "lean_embeddings", "THREADS_ENV", "KV_SEQUENCES"]
