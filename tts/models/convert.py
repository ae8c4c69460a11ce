"""Converting a GGUF file into the Hugging Face folder vLLM loads (safetensors, tokenizer, chat
template), with no model instantiated.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from tts.models.fetch import Log, _sha256
from tts.models.registry import ModelError

# --------------------------------------------------------------------------- convert

SHARD_BYTES = 512 * 2**20
"""Largest safetensors file written. vLLM maps one file at a time while loading, and the
mapped pages count as resident memory until the file is done: one 3.4 GB file raised the
large model's peak by ~1.7 GB over 512 MiB shards (bench/results/live)."""


def save_shards(tensors: dict[str, Any], folder: Path, save_file: Callable[..., None],
                limit: int = SHARD_BYTES) -> list[str]:
    """Write `tensors` as Hugging Face safetensors shards of at most `limit` bytes (a tensor
    larger than that gets a file of its own) plus `model.safetensors.index.json`; a single
    `model.safetensors` when everything fits in one. Returns the file names."""
    import json

    groups: list[dict[str, Any]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if groups[-1] and size + nbytes > limit:
            groups.append({})
            size = 0
        groups[-1][key] = tensor
        size += nbytes
    if len(groups) == 1:
        save_file(groups[0], str(folder / "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    names = [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    for name, group in zip(names, groups):
        save_file(group, str(folder / name), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size()
                                            for t in tensors.values())},
             "weight_map": {key: name for name, group in zip(names, groups) for key in group}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return names



def convert_gguf(gguf: Path, out: Path, *, dtype: str = "bfloat16",
                 log: Log | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Convert a GGUF file into a Hugging Face folder (safetensors, tokenizer, chat template).

    The GGUF is parsed once (transformers would parse it three times: tokenizer, config,
    weights; parsing a 150k-token vocabulary is most of a naive conversion's time), its
    weights are dequantised into `dtype` and written straight to safetensors with no model
    instantiated (the key mapping comes from a model on the meta device). The quantisation
    config is dropped so vLLM loads plain `dtype` weights. The folder is written next to
    `out` and renamed into place only when complete. `progress(done, total)` is called per
    tensor.
    """
    try:
        import gguf as gguf_py
        import torch
        import transformers
        from safetensors.torch import save_file
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,
                                  GenerationConfig)
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError as exc:
        raise ModelError(f"converting a GGUF model needs torch, transformers, gguf and "
                         f"accelerate ({exc}); install them with `bash scripts/install_cpu.sh` "
                         f"(or `pip install 'tts-allocator[cpu]'`).") from None
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # our own log says what happens; no progress bars
    hf_logging.disable_progress_bar()
    say = log or (lambda msg: None)
    torch_dtype = getattr(torch, dtype)
    d, f = str(gguf.parent), gguf.name
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    reader_cls = gguf_py.GGUFReader
    parsed: dict[str, Any] = {}

    def reader_once(path, *args, **kwargs):  # one parse serves tokenizer, config and weights
        key = str(Path(path).resolve())
        if key not in parsed:
            parsed[key] = reader_cls(path, *args, **kwargs)
        return parsed[key]

    class _Ticks:  # transformers wraps the tensor loop in tqdm: count it for `progress`
        def __init__(self, iterable, *args, **kwargs):
            self.items = list(iterable)

        def __iter__(self):
            for i, item in enumerate(self.items):
                yield item
                if progress is not None:
                    progress(i + 1, len(self.items))

    saved_tqdm = gguf_utils.tqdm
    gguf_py.GGUFReader = reader_once
    gguf_utils.tqdm = _Ticks
    try:
        tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=f)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(f"{gguf} carries no chat template; tts needs a chat model.")
        config = AutoConfig.from_pretrained(d, gguf_file=f)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
        expected = set(skeleton.state_dict())
        loaded = gguf_utils.load_gguf_checkpoint(str(gguf), return_tensors=True,
                                                 model_to_load=skeleton, torch_dtype=torch_dtype)
        tensors = {k: v.contiguous() for k, v in loaded["tensors"].items() if k in expected}
        # Tied output embeddings are absent from the checkpoint by design; anything else is not.
        tied = bool(getattr(config, "tie_word_embeddings", False))
        missing = sorted(k for k in expected - set(tensors) if not (tied and "lm_head" in k)
                         and "rotary_emb" not in k)
        unexpected = sorted(set(loaded["tensors"]) - expected)
        if missing or unexpected:
            raise ModelError(f"GGUF conversion of {gguf} lost weights: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}.")
        if tied:
            tensors = {k: v for k, v in tensors.items() if "lm_head" not in k}
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch_dtype
        config.architectures = [type(skeleton).__name__]
        tmp.mkdir(parents=True)
        save_shards(tensors, tmp, save_file)
        config.save_pretrained(tmp)
        try:
            GenerationConfig.from_model_config(config).save_pretrained(tmp)
        except Exception:  # noqa: BLE001  (optional file; vLLM has defaults)
            pass
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        gguf_py.GGUFReader = reader_cls
        gguf_utils.tqdm = saved_tqdm
        if tmp.exists():
            shutil.rmtree(tmp)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(out.iterdir()) if p.suffix == ".safetensors"}
    say(f"converted with transformers {transformers.__version__}, torch {torch.__version__}, "
        f"dtype {dtype}")
    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "dtype": dtype, "architecture": config.architectures, "weights": files}
