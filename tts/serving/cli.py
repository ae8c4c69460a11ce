"""`tts serve`: run the OpenAI-compatible server (see tts.serving.app)."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from tts.cli_args import add_bank, add_count_prompt, add_policy, add_seed
from tts.errors import ValidationError


def add_cli(sub) -> None:
    p = sub.add_parser(
        "serve", help="OpenAI-compatible server (model tts-auto = the policy)",
        description="Serve /v1/chat/completions, /v1/completions, /v1/models, /health and "
                    "/metrics. Backends: a replay bank (default: the bundled one), live vLLM "
                    "models (--small/--large or --ladder), or OpenAI-compatible replicas "
                    "(--server URL[,URL...] --served-model NAME).")
    add_bank(p)
    p.add_argument("--small", default=None,
                   help="live small model (tiny, small, large or a folder; as `tts models`)")
    p.add_argument("--large", default=None,
                   help="live large model, loaded when a plan first escalates ('none': none)")
    p.add_argument("--ladder", default=None,
                   help="ladder, cheapest first, comma-separated: live models (e.g. "
                        "tiny,small,large), or with --bank model names of the bank")
    p.add_argument("--server", default=None,
                   help="OpenAI-compatible replicas, comma-separated base URLs with /v1")
    p.add_argument("--served-model", default=None, help="model id on --server")
    p.add_argument("--backend-api-key", default=None,
                   help="API key for --server (sent over https or to loopback only)")
    p.add_argument("--backend-timeout", type=float, default=120.0,
                   help="seconds per backend HTTP request (default 120)")
    add_policy(p, "policy JSON (`tts tune`)")
    add_seed(p, "default seed of the sample streams")
    add_count_prompt(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` on every route but /health "
                        "(default: $TTS_SERVE_API_KEY if set)")
    p.add_argument("--default-budget", type=float, default=200_000.0,
                   help="budget of a request with neither budget nor max_tokens")
    p.add_argument("--max-budget", type=float, default=1e9, help="largest budget accepted")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--max-prompt-chars", type=int, default=32_000)
    p.add_argument("--request-timeout", type=float, default=600.0,
                   help="seconds before a request is answered 504 (default 600)")
    p.add_argument("--max-in-flight", type=int, default=4096,
                   help="requests answered at once; more get 429 (default 4096)")
    p.add_argument("--read-timeout", type=float, default=30.0,
                   help="seconds a client may take to send a request's headers, and again its "
                        "body; slower ones get 408 and are disconnected (default 30)")
    p.add_argument("--audit-rate", type=float, default=0.0,
                   help="share of tts-auto answers given below the top model that the top model "
                        "is also asked about, off the request's path and budget; disagreement "
                        "in /metrics and GET /v1/tts/audit (default 0: off)")
    p.add_argument("--audit-bank", default=None,
                   help="folder the audits are appended to as a bank (new, or an audit bank)")
    p.add_argument("--audit-guard", action="store_true",
                   help="when the audits show more disagreement with the top model than the "
                        "policy's tune expected, or the prompts are more often unlike its "
                        "training questions (novelty), move to the next safer plan of its "
                        "frontier, and back later (needs a policy `tts tune` wrote, and "
                        "--audit-rate > 0 or a novelty summary in the policy with the "
                        "embedding model pulled: novelty needs no audits)")
    p.add_argument("--no-preload", action="store_true",
                   help="do not load the small live model before serving")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug", "trace"])
    p.set_defaults(run=run_serve)


def build_engine(args, on_load=None):
    """The Engine the flags describe. `on_load(event)` receives live models' load events
    (`tts.backends.vllm.VLLMBackend`'s progress events with "event": "load")."""
    import tts
    from tts.engine import Engine

    policy = None
    if args.policy is not None:
        from tts.policy import load_policy

        policy = load_policy(args.policy)
    ladder = None if args.ladder is None else \
        [n.strip() for n in args.ladder.split(",") if n.strip()]
    replay_ladder = ladder is not None and args.bank is not None
    live = args.small is not None or args.large is not None or \
        (ladder is not None and not replay_ladder)
    if sum(bool(x) for x in (live, args.server, args.bank is not None)) > 1:
        raise ValidationError("choose one backend: --bank (replay, with --ladder a ladder of "
                              "its models), --small/--large/--ladder (live vLLM) or --server "
                              "(OpenAI-compatible).", parameter="bank")
    if args.server:
        from tts.backends.openai import OpenAIBackend
        from tts.budgets import QWEN_PARAMS, CostModel, ModelCost

        if not args.served_model:
            raise ValidationError("--server needs --served-model (the model id on the server).",
                                  parameter="served_model")
        urls = [u.strip() for u in args.server.split(",") if u.strip()]
        name = args.served_model
        cost = QWEN_PARAMS if name in QWEN_PARAMS.models else CostModel(
            {name: ModelCost(1.0, 1.0)}, source=f"{name}: 1 unit per token")
        backend = OpenAIBackend(urls, model=name, api_key=args.backend_api_key,
                                timeout=args.backend_timeout, max_retries=2, backoff=0.25,
                                concurrency=64)
        return Engine(backend, cost=cost, seed=args.seed, count_prompt=args.count_prompt,
                      policy=policy)
    if live:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from tts.backends.vllm import VLLMBackend
        from tts.budgets import QWEN_PARAMS

        def progress(event: dict) -> None:
            if on_load is not None and event.get("event") == "load":
                on_load(event)

        if ladder is not None:
            if args.small is not None or args.large is not None:
                raise ValidationError("give --ladder or --small/--large, not both.",
                                      parameter="ladder")
            return Engine([VLLMBackend(n, progress=progress) for n in ladder], cost=QWEN_PARAMS,
                          seed=args.seed, count_prompt=args.count_prompt, policy=policy)
        small = VLLMBackend(args.small or "small", progress=progress)
        large_name = args.large or "none"
        large = None if large_name == "none" else VLLMBackend(large_name, progress=progress)
        return Engine(small, large, cost=QWEN_PARAMS, seed=args.seed,
                      count_prompt=args.count_prompt, policy=policy)
    return tts.replay_engine(args.bank, seed=args.seed, count_prompt=args.count_prompt,
                             policy=policy, ladder=ladder)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ValidationError(f"tts serve needs FastAPI and uvicorn ({exc}): pip install "
                              f"'tts-allocator[serve]'.", parameter="serve") from None

    from tts.console import err_console, safe
    from tts.serving.app import ServeConfig, create_app
    from tts.serving.audit import serve_auditor
    from tts.serving.protocol import protocol_class
    from tts.serving.scheduler import Scheduler

    check_flags(args)
    loads: dict[str, int] = {}  # engine builds per live model (/v1/models, /metrics)

    def on_load(event: dict) -> None:
        model = str(event.get("model"))
        if event.get("state") == "done":
            loads[model] = loads.get(model, 0) + 1
            err_console.print(f"loaded {safe(model)} in {event.get('seconds', 0):.1f} s",
                              highlight=False)
        else:
            err_console.print(f"loading {safe(model)} ...", highlight=False)

    engine = build_engine(args, on_load)
    scheduler = Scheduler(engine)
    auditor = None
    try:
        # before any model loads: a one-model engine cannot audit
        auditor = serve_auditor(scheduler, args.audit_rate, bank=args.audit_bank,
                                seed=args.seed, guard=args.audit_guard)
        first = engine.backends["small"]
        if hasattr(first, "load") and not args.no_preload:
            first.load()  # in the main thread, before serving; the large model stays lazy
        api_key = args.api_key or os.environ.get("TTS_SERVE_API_KEY") or None
        config = ServeConfig(api_key=api_key, max_body_bytes=args.max_body_bytes,
                             max_prompt_chars=args.max_prompt_chars,
                             max_budget=args.max_budget, default_budget=args.default_budget,
                             request_timeout=args.request_timeout,
                             max_in_flight=args.max_in_flight, read_timeout=args.read_timeout)
        app = create_app(scheduler, config, loads=loads, auditor=auditor)
        models = ", ".join(safe(m) for m in app.state.tts.requests.model_names)
        audits = f"; auditing {args.audit_rate:g} of answers below the top model" \
            if args.audit_rate else ""
        if auditor is not None and auditor.guard is not None:
            guard = auditor.guard
            novelty = f"novelty alarm at {guard.novelty.summary.expected:.3f} expected novel " \
                      f"share" if guard.novelty is not None else f"no novelty alarm: " \
                                                                 f"{guard.novelty_off}"
            audits += f"{'' if args.audit_rate else '; no audits'} (drift "\
                      f"{'guard' if args.audit_guard else 'alarm'} at {guard.expected:.3f} "\
                      f"expected disagreement; {novelty})"
        err_console.print(f"tts serve on http://{safe(args.host)}:{args.port}/v1 (models: "
                          f"{models}; api key {'required' if api_key else 'not required'}"
                          f"{audits})", highlight=False)
        if args.host not in ("127.0.0.1", "localhost", "::1") and not api_key:
            err_console.print("[yellow]warning:[/] listening beyond loopback without "
                              "--api-key.", highlight=False)
        if threading.current_thread() is threading.main_thread():
            # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: exit
            # through `finally` (scheduler and engines closed) instead of dying on the spot
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        # loop/http "auto": uvloop and httptools when installed (uvicorn[standard]);
        # no access log: a line per request costs more than a replayed answer; idle
        # connections kept 65 s, longer than clients keep theirs (httpx: 5 s), so a client
        # never sends on a connection the server is closing
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False, timeout_keep_alive=65, timeout_graceful_shutdown=5,
                    http=protocol_class(args.read_timeout))
    finally:
        scheduler.close()
        if auditor is not None:
            auditor.close()
        for backend in engine.backends.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flags that would start a server refusing everything, or listening elsewhere
    than its banner says, before anything is loaded or bound (ValidationError: exit 2)."""
    import socket

    from tts.audit import check_rate
    from tts.budgets.budget import MAX_BUDGET

    for name in ("default_budget", "max_budget", "request_timeout", "backend_timeout",
                 "read_timeout"):
        value = getattr(args, name)
        if not value > 0 or value != value or value == float("inf"):
            raise ValidationError(f"--{name.replace('_', '-')} must be a finite number > 0, got "
                                  f"{value:g}.", parameter=name, value=value)
    if args.max_budget > MAX_BUDGET:
        raise ValidationError(f"--max-budget must be <= {MAX_BUDGET:.0e} (the largest budget "
                              f"tts accepts), got {args.max_budget:g}.", parameter="max_budget",
                              value=args.max_budget)
    if args.default_budget > args.max_budget:
        raise ValidationError(f"--default-budget {args.default_budget:g} is above --max-budget "
                              f"{args.max_budget:g}: requests without a budget would all be "
                              f"refused.", parameter="default_budget", value=args.default_budget)
    check_rate(args.audit_rate, "--audit-rate")
    if args.audit_bank is not None and args.audit_rate == 0:
        raise ValidationError("--audit-bank needs --audit-rate > 0 (no audits to write).",
                              parameter="audit_bank")
    if args.audit_guard and args.policy is None:
        raise ValidationError("--audit-guard needs --policy: a policy `tts tune` wrote, with "
                              "the disagreement it expects and a frontier of safer plans "
                              "(and --audit-rate > 0, or a novelty summary in the policy).",
                              parameter="audit_guard")
    for name, low in (("max_body_bytes", 64), ("max_prompt_chars", 1), ("max_in_flight", 1)):
        value = getattr(args, name)
        if value < low:
            raise ValidationError(f"--{name.replace('_', '-')} must be an integer >= {low}, got "
                                  f"{value} (the server would refuse every request).",
                                  parameter=name, value=value)
    if not 1 <= args.port <= 65535:
        raise ValidationError(f"--port must be in 1..65535, got {args.port}.", parameter="port",
                              value=args.port)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET  # as uvicorn binds
    try:
        socket.getaddrinfo(args.host, args.port, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise ValidationError(f"--host {args.host[:80]!r} is not an address this machine can "
                              f"listen on ({exc}); use e.g. 127.0.0.1 (loopback, the default) "
                              f"or 0.0.0.0 (every interface).", parameter="host",
                              value=args.host) from None
    with socket.socket(family) as probe:  # a busy port, a foreign address: now, not after
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # loading models
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ValidationError(f"cannot listen on {args.host[:80]}:{args.port}: "
                                  f"{exc.strerror or exc}.", parameter="port",
                                  value=args.port) from None


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)
