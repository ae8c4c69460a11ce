"""`tts serve`: an OpenAI-compatible server over the engine, with continuous batching.

`tts.serving.scheduler` drives requests that arrive at any time (one engine loop, one batch
in flight per backend); `tts.serving.app` is the FastAPI app (routes, validation, metrics);
`tts.serving.cli` adds the `tts serve` command.
"""
