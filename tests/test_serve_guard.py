"""The drift alarm and guard in `tts serve` (`--audit-guard`): the app in-process over the
bundled DATE bank moves to the safer plan, shows it in /metrics and GET /v1/tts/audit; flags
that cannot work exit 2 before the server starts."""

from __future__ import annotations

import asyncio
import re

import pytest

import tts
from tts.backends.replay import ReplayBackend

from .test_drift_guard import BANK, LADDER, QUESTIONS, policy

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def test_served_guard_moves_and_reports() -> None:
    from tts.engine import Engine
    from tts.serving.app import create_app
    from tts.serving.audit import serve_auditor
    from tts.serving.scheduler import Scheduler

    sched = Scheduler(Engine([ReplayBackend(BANK, m) for m in LADDER], cost=BANK.meta.cost,
                             policy=policy(0.0)))
    auditor = serve_auditor(sched, 1.0, guard=True)
    app = create_app(sched, auditor=auditor)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            replies = []
            for q in QUESTIONS[:40]:
                replies.append((await c.post("/v1/chat/completions", json={
                    "model": "tts-auto", "budget": 1e9,
                    "messages": [{"role": "user", "content": q}]})).json())
                while auditor.pending:
                    await asyncio.sleep(0.005)
            return replies, (await c.get("/v1/tts/audit")).json(), (await c.get("/metrics")).text

    try:
        replies, snap, metrics = asyncio.run(go())
    finally:
        sched.close()
    drift = snap["drift"]
    assert drift["alarms"] == 1 and drift["plan"] == "top-model" and drift["moves"]["safer"] == 1
    moved = drift["events"][1]["request"]
    assert all(r["tts"]["tokens"].get("gpt-4", 0) > 0 for r in replies[moved:])
    assert "tts_drift_alarms_total 1.0" in metrics
    assert 'tts_guard_moves_total{direction="safer"} 1.0' in metrics
    assert 'tts_guard_plan{plan="top-model"} 1.0' in metrics
    assert "tts_drift_expected_disagreement 0.0" in metrics
    assert "tts_novelty_available 0.0" in metrics and not drift["novelty"]["available"]
    assert "no novelty summary" in drift["novelty"]["reason"]


def test_guard_flags_that_cannot_work_exit_2(tmp_path, monkeypatch, capsys) -> None:
    import uvicorn

    from tts.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    bare = tmp_path / "bare.json"
    policy(0.1, frontier=False).to_json(bare)
    date = ["--bank", str(tts.BUNDLED_DATE_BANK), "--ladder", ",".join(LADDER)]
    plain = tmp_path / "plain.json"
    policy(0.1).to_json(plain)
    for flags, match in (
            (["--audit-guard"], "--audit-guard needs --policy"),
            (["--audit-guard", "--audit-rate", "0.05"], "--audit-guard needs --policy"),
            ([*date, "--policy", str(bare), "--audit-guard", "--audit-rate", "0.05"],
             "this policy has no frontier of safer plans"),
            ([*date, "--policy", str(plain), "--audit-guard"],
             r"give audit_rate > 0 \(audits\), or a policy with a novelty summary"),
            ([*date, "--policy", str(plain), "--audit-bank", str(tmp_path / "a")],
             "--audit-bank needs --audit-rate > 0")):
        assert main(["serve", *flags]) == 2
        err = capsys.readouterr().err
        assert re.search(match, err) and "Traceback" not in err, err


def test_a_novelty_summary_of_another_embedding_model_exits_2(tmp_path, monkeypatch,
                                                               capsys) -> None:
    import numpy as np
    import uvicorn

    from tts.cli import main
    from tts.models.embed import embed_path
    from tts.models.registry import ModelError
    from tts.novelty import fit_novelty

    try:
        embed_path("embed")
    except ModelError:
        pytest.skip("the embedding model is not pulled (tts models pull embed)")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    x = np.random.default_rng(0).normal(size=(40, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pol = policy(0.1)
    notes = {**pol.notes, "novelty": fit_novelty(x, embed_model="embed",
                                                 model_id="other-model@000000000000").to_dict()}
    path = tmp_path / "policy.json"
    type(pol)(pol.ladder, pol.levels, pol.prompt, notes).to_json(path)
    assert main(["serve", "--bank", str(tts.BUNDLED_DATE_BANK), "--ladder", ",".join(LADDER),
                 "--policy", str(path), "--audit-rate", "0.05", "--audit-guard"]) == 2
    err = capsys.readouterr().err
    assert "made with embedding model other-model@000000000000" in err, err
    assert "Traceback" not in err


def test_guard_on_novelty_alone_without_audits(tmp_path, monkeypatch, capsys,
                                               pulled_embed) -> None:
    import uvicorn

    from tts.cli import main

    from .test_novelty import date_policy

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **k: started.append(app))
    _, pol, _, _ = date_policy()
    path = tmp_path / "policy.json"
    pol.to_json(path)
    assert main(["serve", "--bank", str(tts.BUNDLED_DATE_BANK), "--ladder", ",".join(LADDER),
                 "--policy", str(path), "--audit-guard"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no audits (drift guard at 0.900 expected disagreement; novelty alarm at" in err, err
    auditor = started[0].state.tts.auditor
    assert auditor.rate == 0 and auditor.guard.act and auditor.guard.novelty is not None
