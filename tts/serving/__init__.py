"""`tts serve`: an OpenAI-compatible server over the engine, with continuous batching.

`tts.serving.scheduler` drives requests that arrive at any time (one engine loop, one batch
in flight per backend); `tts.serving.requests` parses requests and refuses bad ones;
`tts.serving.app` is the FastAPI app (routes, responses, metrics); `tts.serving.cli` adds the
`tts serve` command.
"""
