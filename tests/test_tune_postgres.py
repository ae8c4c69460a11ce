"""Scale-out of tuning: two `tts tune` worker processes share one tuning run's Optuna studies
on a real PostgreSQL server that this test starts (initdb + pg_ctl into a temporary folder, on
a free loopback port), and their result is as good as one worker's.

Needs Debian's `postgresql` package (scripts/test.sh installs it) and the psycopg2 driver (the
`test` extra); skipped, with the reason, where either is missing or the server cannot start.

Each worker runs the same command (`--folds 2 --se-margin 1`: no inner cross-validation, so
every study of the run is in the shared storage: one per outer fold and one on every question).

What is asserted, and why:

* Sharing: both workers exit 0 and name the same studies; the deployed policy's study holds
  `TRIALS` completed trials (at most one more: when the cap is reached the other worker may
  have one trial in flight), none failed or left running, and at least two trials ran at
  overlapping times. One worker runs its trials one after another, so overlap means both
  worked on the study at once; a count near `TRIALS` rather than 2 x `TRIALS` means they split
  the work instead of each running its own.
* Quality: with two workers, TPE proposes other points than one sequential worker (each sees
  the other's trials at other moments), so the best trial is not bit-identical; it must be as
  good within the evaluation noise: the shared study's best training objective within 2
  standard errors of the single-worker study's best (an SE of an accuracy measured on train
  questions x seeds), and each worker's held-out accuracy within 2 SEs of the single worker's.
"""

from __future__ import annotations

import glob
import json
import math
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TRIALS = 40
BUDGET = "262144"
SEEDS = 2
QUESTIONS = 300


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def _skip(reason: str):
    print(f"\nskipping the PostgreSQL tuning test: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1; yields a function db_name -> URL."""
    try:
        import psycopg2
    except ImportError:
        _skip("the psycopg2 driver is not installed (pip install -e '.[test]')")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _skip("PostgreSQL server programs (initdb, pg_ctl) not found: install Debian's "
              "`postgresql` package (scripts/test.sh does)")
    root = tempfile.mkdtemp(prefix="tts-pg-")  # not under pytest's 0700 root-owned tmp
    as_user: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        for name in ("postgres", "nobody"):
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            os.chown(root, pw.pw_uid, pw.pw_gid)
            as_user = {"user": pw.pw_uid, "group": pw.pw_gid}
            break
        else:
            shutil.rmtree(root, ignore_errors=True)
            _skip("running as root and no unprivileged user (postgres, nobody) to run "
                  "PostgreSQL as")
    data = os.path.join(root, "data")
    log = os.path.join(root, "server.log")
    done = subprocess.run([initdb, "-D", data, "-U", "tts", "--auth=trust", "-E", "UTF8",
                           "--no-locale", "--no-sync"], capture_output=True, text=True,
                          **as_user)
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        _skip(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
               f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
    done = subprocess.run([pg_ctl, "-D", data, "-l", log, "-w", "-t", "120", "-o", options,
                           "start"], capture_output=True, text=True, **as_user)
    if done.returncode != 0:
        tail = Path(log).read_text(errors="replace")[-800:] if os.path.exists(log) else ""
        shutil.rmtree(root, ignore_errors=True)
        _skip(f"the PostgreSQL server did not start: {done.stderr.strip()[-300:]} {tail}")

    def database(name: str) -> str:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="tts", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql+psycopg2://tts@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True,
                       **as_user)
        shutil.rmtree(root, ignore_errors=True)


def _tune(url: str, out: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tts.cli", "tune", "--budget", BUDGET, "--trials", str(TRIALS),
            "--seeds", str(SEEDS), "--folds", "2", "--se-margin", "1", "--objective", "accuracy",
            "--storage", url, "--study-name", "shared", "--out", str(out), "--no-progress"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[1])


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return out


def _study(url: str, report: dict):
    """The study of the deployed policy (tuned on every question): the run's last."""
    import optuna

    return optuna.load_study(study_name=report["studies"][-1]["name"], storage=url)


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-4) / n)


def test_two_workers_share_one_study_on_postgres(postgres, tmp_path):
    import optuna

    shared = postgres("tune_shared")
    single = postgres("tune_single")
    # Both workers start at once on a fresh database (they also race to create the schema).
    workers = [_tune(shared, tmp_path / "w1"), _tune(shared, tmp_path / "w2")]
    for w in workers:
        _finish(w)
    _finish(_tune(single, tmp_path / "single"))
    reports = {name: json.loads((tmp_path / name / "report.json").read_text())
               for name in ("w1", "w2", "single")}

    # ---- sharing
    names = [e["name"] for e in reports["w1"]["studies"]]
    assert names == [e["name"] for e in reports["w2"]["studies"]] and len(names) == 3
    study = _study(shared, reports["w1"])
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert TRIALS <= len(complete) <= TRIALS + 1, len(complete)
    assert not [t for t in trials if t.state in (optuna.trial.TrialState.FAIL,
                                                 optuna.trial.TrialState.RUNNING)]
    spans = sorted((t.datetime_start, t.datetime_complete) for t in complete)
    overlapping = sum(1 for (s1, e1), (s2, e2) in zip(spans, spans[1:]) if s2 < e1)
    assert overlapping >= 1, "no two trials ran at once: the workers did not work together"

    # ---- quality against one worker (the objective is minimised: -accuracy, plus a tie-break)
    alone = _study(single, reports["single"])
    alone_complete = [t for t in alone.get_trials(deepcopy=False)
                      if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(alone_complete) == TRIALS
    best_shared = -min(t.value for t in complete)
    best_alone = -min(t.value for t in alone_complete)
    train_se = _se(best_alone, QUESTIONS * SEEDS)
    assert abs(best_shared - best_alone) <= 2 * train_se, (best_shared, best_alone, train_se)
    ref = reports["single"]["heldout"]
    held_se = _se(ref["accuracy"], QUESTIONS * SEEDS)
    for name in ("w1", "w2"):
        got = reports[name]["heldout"]
        assert abs(got["accuracy"] - ref["accuracy"]) <= 2 * held_se, (name, got, ref)
    print(f"\nshared study: {len(complete)} trials, {overlapping} overlapping; best train "
          f"objective {best_shared:.4f} (one worker: {best_alone:.4f}, 2 SE = "
          f"{2 * train_se:.4f}); held-out accuracy "
          f"{[reports[n]['heldout']['accuracy'] for n in ('w1', 'w2', 'single')]}")
