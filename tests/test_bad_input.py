"""Bad input, in one place: every row is an input a user (or a broken file) can give, and the
clear error it must get, a TTSError naming the argument or the file (and line), never a raw
TypeError / KeyError / OverflowError / RecursionError or a silent acceptance.

The README's "Bad input" table lists the same cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tts
from tts.bank import load_bank, save_bank
from tts.errors import BankError, TTSError, ValidationError

from .conftest import make_bank

HUGE = 10**400


# ---- bank files ----------------------------------------------------------------------------
@pytest.fixture
def bank_dir(tmp_path: Path) -> Path:
    save_bank(make_bank(n_problems=2), tmp_path / "b")
    return tmp_path / "b"


def _lines(bank_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (bank_dir / "samples.jsonl").read_text().splitlines()]


def _write_lines(bank_dir: Path, records: list[dict]) -> None:
    (bank_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _edit_meta(bank_dir: Path, **changes) -> None:
    meta = json.loads((bank_dir / "meta.json").read_text())
    meta.update(changes)
    (bank_dir / "meta.json").write_text(json.dumps(meta))


def _non_utf8_samples(d: Path) -> None:
    data = (d / "samples.jsonl").read_bytes().split(b"\n")
    data[1] = data[1].replace(b'"question', b'"\xff question', 1)
    (d / "samples.jsonl").write_bytes(b"\n".join(data))


def _replace_by_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _duplicate_record(d: Path) -> None:
    recs = _lines(d)
    _write_lines(d, recs + [recs[0]])


def _two_questions(d: Path) -> None:
    recs = _lines(d)
    other = dict(recs[0], mode="other-mode", question="a different question?")
    _write_lines(d, recs + [other])


def _huge_prompt_tokens(d: Path) -> None:
    recs = _lines(d)
    recs[1]["prompt_tokens"] = HUGE
    _write_lines(d, recs)


BANK_CASES = {
    "non-UTF-8 byte in samples.jsonl": (_non_utf8_samples, r"samples\.jsonl:2: not UTF-8"),
    "non-UTF-8 byte in meta.json": (
        lambda d: (d / "meta.json").write_bytes(b"\xff" + (d / "meta.json").read_bytes()),
        r"meta\.json:1: not UTF-8"),
    "folder in place of meta.json": (lambda d: _replace_by_folder(d / "meta.json"),
                                     r"meta\.json is a folder, not a file"),
    "folder in place of samples.jsonl": (lambda d: _replace_by_folder(d / "samples.jsonl"),
                                         r"samples\.jsonl is a folder, not a file"),
    "deeply nested meta.json": (
        lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000),
        r"meta\.json: JSON nested too deeply"),
    "deeply nested samples line": (
        lambda d: (d / "samples.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
        r"samples\.jsonl:1: JSON nested too deeply"),
    "invalid JSON in meta.json": (lambda d: (d / "meta.json").write_text('{\n"format": }'),
                                  r"meta\.json:2: not valid JSON"),
    "roles not model names": (lambda d: _edit_meta(d, roles={"small": 5}),
                              r"meta\.json: `roles` must map a role"),
    "duplicate (problem, model, mode) record": (
        _duplicate_record, r"samples\.jsonl:\d+: duplicate record for problem 'p0', model "
                           r"'s', mode 'sample' \(first at line 1\)"),
    "one problem id, two questions": (
        _two_questions, r"samples\.jsonl:\d+: problem 'p0' has a different question than at "
                        r"line 1"),
    "lone surrogate in a question": (
        lambda d: _write_lines(d, [dict(r, question="what is \ud800?") for r in _lines(d)]),
        r"samples\.jsonl:1: `question`: prompt must be Unicode text, but character 8 is a "
        r"lone surrogate"),
    "prompt_tokens of 10**400": (_huge_prompt_tokens,
                                 r"samples\.jsonl:2: `prompt_tokens` must be an integer in "
                                 r"\[0, 1e\+12\], got 1000.*\(401 characters\)"),
}


@pytest.mark.parametrize("case", list(BANK_CASES))
def test_bad_bank_file(bank_dir, case):
    corrupt, match = BANK_CASES[case]
    corrupt(bank_dir)
    with pytest.raises(BankError, match=match) as info:
        load_bank(bank_dir)
    assert str(bank_dir) in str(info.value)


@pytest.mark.parametrize("roles, match", [
    ({"large": "l"}, r"meta\.json: `roles` names no small model"),
    ({"small": "nobody", "large": "l"}, r"meta\.json: the small model 'nobody' in `roles` has "
                                        r"no samples"),
])
def test_bank_roles_without_the_small_model(bank_dir, roles, match):
    _edit_meta(bank_dir, roles=roles)
    bank = load_bank(bank_dir)  # a partial bank (e.g. only --role large built) still loads
    with pytest.raises(BankError, match=match):
        tts.replay_engine(bank_dir)
    with pytest.raises(BankError, match=match):
        from tts.evaluate import BankArrays

        BankArrays.from_bank(bank)


# ---- policy files --------------------------------------------------------------------------
def _policy() -> dict:
    """A tts-policy/1 file (an older format, converted on load) with every field."""
    return {"format": "tts-policy/1", "probe_weights": [3.0, -6.0, 0, 0, 0, 0, 0],
            "prompt": None, "notes": {}, "levels": [{
                "from_budget": 0.0, "probe": 4, "wave": 4, "max_samples": 16,
                "max_tokens": 512, "temperature": 0.7, "confidence": 0.95,
                "escalate_above": 0.5, "escalate_early_above": 1.0, "direct_above": 1.0,
                "use_large": True, "large_samples": 1, "large_max_tokens": 512,
                "keep_for_large": False, "probe_weights": None}]}


def _ladder_policy() -> dict:
    return {"format": "tts-ladder-policy/1", "ladder": ["s", "l"],
            "levels": [{"from_budget": 0, "rungs": [{"role": "small"}, {"role": "large"}]}]}


def _level(**changes) -> dict:
    p = _policy()
    p["levels"][0].update(changes)
    return p


def _rung(**changes) -> dict:
    p = _ladder_policy()
    p["levels"][0]["rungs"][0].update(changes)
    return p


POLICY_CASES = {
    "non-UTF-8 byte": (b'{"format":\n "\xff"}', r"policy file \S+:2: not UTF-8 text"),
    "deeply nested JSON": (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    "invalid JSON": (b'{"format": }', r"policy file \S+:1: not valid JSON"),
    "not an object": ([1, 2], "a policy must be a JSON object, got list"),
    "probe_features: 5": ({**_policy(), "probe_features": 5}, r"`probe_features` must be \["),
    "probe_weights: 5": ({**_policy(), "probe_weights": 5}, "`probe_weights` must be 7 finite"),
    "probe_weights with a string": ({**_policy(), "probe_weights": ["a"] * 7},
                                    "`probe_weights` must be 7 finite"),
    "unknown field": ({**_policy(), "probes": 1}, r"unknown field\(s\) \['probes'\]"),
    "prompt: 5": ({**_policy(), "prompt": 5}, "`prompt` must be an object, got 5"),
    "prompt weights: 5": ({**_policy(), "prompt": {"weights": 5, "mean": [], "scale": []}},
                          "`prompt` weights, mean and scale must be lists"),
    "prompt features: 5": ({**_policy(), "prompt": {"features": 5, "weights": [], "mean": [],
                                                     "scale": []}},
                           r"`prompt\.features` must be"),
    "notes: [1]": ({**_policy(), "notes": [1]}, "`notes` must be an object"),
    "levels: {}": ({**_policy(), "levels": {}}, "`levels` must be a non-empty list"),
    "level probe: \"4\"": (_level(probe="4"), r"levels\[0\]: `probe` must be an integer >= 1, "
                                              r"got '4'"),
    "level keep_for_large: \"yes\"": (_level(keep_for_large="yes"),
                                      "`keep_for_large` must be true or false, got 'yes'"),
    "level use_large: 1": (_level(use_large=1), "`use_large` must be true or false"),
    "level max_tokens: 10**400": (_level(max_tokens=HUGE),
                                  r"`max_tokens` must be an integer <= 1e\+12, got 1000"),
    "level from_budget: 10**400": (_level(from_budget=HUGE),
                                   "`from_budget` must be a finite number >= 0"),
    "level temperature: [1]": (_level(temperature=[1]), "`temperature` must be a finite number"),
    "level confidence: 10**400": (_level(confidence=HUGE), r"`confidence` must be in \[0.5"),
    "crossfit heldout_ids: 5": ({"format": "tts-crossfit-policy/1", "folds": [
        {"heldout_ids": 5, "policy": _policy()}]}, r"folds\[0\]\.heldout_ids must be a list"),
    "ladder climb_features: 5": ({**_ladder_policy(), "climb_features": 5},
                                 r"`climb_features` must be \["),
    "ladder ladder: [5]": ({**_ladder_policy(), "ladder": [5]},
                           "`ladder` must be distinct model names"),
    "ladder from_budget: \"0\"": (
        {**_ladder_policy(), "levels": [{"from_budget": "0", "rungs": [{"role": "small"}]}]},
        "`from_budget` must be a finite number >= 0, got '0'"),
    "ladder rung weights: 5": (_rung(weights=5), r"rungs\[0\]: `weights` must be 10 finite"),
    "ladder rung max_samples: 10**400": (_rung(max_samples=HUGE),
                                         "`max_samples` must be an integer <= 1e"),
    "ladder rung role: [\"small\"]": (_rung(role=["small"]), "`role` must be a role"),
    "notes train_ids: 5": ({**_ladder_policy(), "notes": {"train_ids": 5}},
                           r"`notes.train_ids` must be a list of question ids, got 5"),
    "format: 7": ({**_ladder_policy(), "format": 7}, "`format` must be one of"),
    "rung skip_above: 2": (_rung(skip_above=2), r"`skip_above` must be in \[0"),
}


@pytest.mark.parametrize("case", list(POLICY_CASES))
def test_bad_policy_file(tmp_path, case):
    from tts.policy import load_policy

    content, match = POLICY_CASES[case]
    path = tmp_path / "policy.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(ValidationError, match=match) as info:
        load_policy(path)
    assert f"policy file {path}" in str(info.value)


def test_policy_path_that_is_a_folder_or_missing(tmp_path):
    from tts.policy import load_policy

    with pytest.raises(ValidationError, match="is a folder, not a file"):
        load_policy(tmp_path)
    with pytest.raises(ValidationError, match="does not exist"):
        load_policy(tmp_path / "nope.json")


# ---- strategy options (API keywords and `tts solve -o KEY=VALUE`) ---------------------------
OPTION_CASES = [
    ("vote", {"max_tokens": HUGE}, r"`max_tokens` must be an integer <= 1e\+12, got "
                                   r"1000.*\(401 characters\)"),
    ("vote", {"max_samples": HUGE}, "`max_samples` must be an integer <= 1e"),
    ("vote", {"temperature": HUGE}, "`temperature` must be a finite number >= 0"),
    ("vote", {"temperature": "hot"}, "`temperature` must be a finite number >= 0"),
    ("vote", {"confidence": HUGE}, r"`confidence` must be in \[0.5, 1.0\]"),
    ("escalate", {"max_tokens": HUGE}, "`max_tokens` must be an integer <= 1e"),
    ("escalate", {"temperature": -1}, "`temperature` must be a finite number >= 0"),
    ("cascade", {"keep_for_large": "yes"}, "`keep_for_large` must be true or false, got 'yes'"),
    ("cascade", {"large_max_tokens": HUGE}, "`max_tokens` must be an integer <= 1e"),
    ("cascade", {"escalate_below": HUGE}, r"`escalate_below` must be in \[0.0, 1.0\]"),
    ("chain", {"max_tokens": HUGE}, "`max_tokens` must be an integer <= 1e"),
    ("chain", {"answer_tokens": HUGE}, "`answer_tokens` must be an integer <= 1e"),
    ("chain", {"temperature": float("nan")}, "`temperature` must be a finite number"),
    ("adaptive", {"keep_for_large": "no"}, "`keep_for_large` must be true or false"),
    ("adaptive", {"prior": HUGE}, "`weights` and `prior` must be finite numbers"),
]


@pytest.mark.parametrize("strategy, options, match", OPTION_CASES)
def test_bad_strategy_option(strategy, options, match):
    from tts.strategies import make_strategy

    with pytest.raises(ValidationError, match=match):
        make_strategy(strategy, **options)


def test_cli_huge_option_is_one_clear_line(capsys):
    from tts.cli import main

    bank = load_bank(tts.BUNDLED_BANK)
    question = bank.problems[bank.problem_ids[0]].question
    code = main(["solve", question, "--budget", "1000",
                 "--strategy", "vote", "-o", "max_tokens=1" + "0" * 400])
    err = capsys.readouterr().err
    assert code == 2
    assert "`max_tokens` must be an integer <= 1e+12" in err and "Traceback" not in err
    assert len(err) < 300


# ---- Python API ----------------------------------------------------------------------------
def _replay_small():
    from tts.backends.replay import ReplayBackend

    bank = load_bank(tts.BUNDLED_BANK)
    return ReplayBackend(bank, bank.role_model("small")), bank


API_CASES = {
    "solve_many(None)": (lambda: tts.solve_many(None, 1000),
                         ValidationError, "solve_many takes a list of prompts, got NoneType"),
    "solve_many(5)": (lambda: tts.solve_many(5, 1000), ValidationError,
                      "solve_many takes a list of prompts, got int"),
    "Engine.solve_many(None)": (lambda: tts.replay_engine().solve_many(None, 1000),
                                ValidationError, "solve_many takes a list of prompts"),
    "Engine(policy=\"abc\")": (lambda: tts.Engine(_replay_small()[0], policy="abc"),
                               ValidationError, r"`policy` must be a Policy .* got str 'abc'"),
    "Engine(seed=\"abc\")": (lambda: tts.Engine(_replay_small()[0], seed="abc"),
                             ValidationError, r"`seed` must be an integer in \[0, 2\*\*64\)"),
    "Engine(seed=-1)": (lambda: tts.Engine(_replay_small()[0], seed=-1),
                        ValidationError, "`seed` must be an integer"),
    "replay_engine(seed=1.5)": (lambda: tts.replay_engine(seed=1.5), ValidationError,
                                "`seed` must be an integer"),
    "Engine(count_prompt=\"no\")": (lambda: tts.Engine(_replay_small()[0], count_prompt="no"),
                                    ValidationError, "`count_prompt` must be True or False"),
    "replay_engine(count_prompt=\"no\")": (lambda: tts.replay_engine(count_prompt="no"),
                                          ValidationError, "`count_prompt` must be True or"),
    "Budget(count_prompt=\"no\")": (lambda: tts.Budget(tokens=100, count_prompt="no"),
                                    ValidationError, "`count_prompt` must be True or False"),
    "Engine(cost=\"no-such-preset\")": (lambda: tts.Engine(_replay_small()[0],
                                                           cost="no-such-preset"),
                                        tts.UnknownNameError,
                                        r"unknown cost preset 'no-such-preset'; presets: "
                                        r"\['mot-usd', 'qwen-params'\]"),
    "Engine(cost=5)": (lambda: tts.Engine(_replay_small()[0], cost=5), ValidationError,
                       "`cost` must be a CostModel or a preset name"),
    "ReplayBackend(5, model)": (lambda: __import__("tts.backends.replay").backends.replay
                                .ReplayBackend(5, "m"), ValidationError,
                                "`bank` must be a SampleBank or the path"),
    "ReplayBackend(bank, None)": (lambda: __import__("tts.backends.replay").backends.replay
                                  .ReplayBackend(_replay_small()[1], None), ValidationError,
                                  "`model` must be a model name of the bank"),
    "budget 10**400": (lambda: tts.Budget(tokens=HUGE), ValidationError,
                       r"`budget` must be <= 1e\+12 tokens, got an integer of 401 digits"),
    "budget \"100\"": (lambda: tts.Budget(tokens="100"), ValidationError,
                       "`budget` must be a number of tokens, got str"),
    "budget True": (lambda: tts.Budget(tokens=True), ValidationError,
                    "`budget` must be a number of tokens, got bool"),
    "budget NaN": (lambda: tts.Budget(tokens=float("nan")), ValidationError, "got NaN"),
    "budget inf": (lambda: tts.Budget(tokens=float("inf")), ValidationError,
                   r"must be <= 1e\+12 tokens, got inf"),
    "budget np.int64(-5)": (lambda: tts.Budget(tokens=np.int64(-5)), ValidationError,
                            "must be > 0, got -5"),
    "Engine([])": (lambda: tts.Engine([]), ValidationError,
                   "a ladder needs at least one backend, got an empty list"),
    "replay_engine(123)": (lambda: tts.replay_engine(123), ValidationError,
                           r"`bank` must be the path of a bank folder \(a str or Path\), got "
                           r"int 123"),
    "load_bank(None)": (lambda: load_bank(None), ValidationError,
                        "`path` must be the path of a bank folder"),
    "Rung(mode=\"../etc\")": (lambda: __import__("tts.strategies.ladder").strategies.ladder
                               .Rung(mode="../etc"), ValidationError,
                               r"`mode` must be a mode name .* got '\.\./etc'"),
    "Rung(check_mode=\"a b\")": (lambda: __import__("tts.strategies.ladder").strategies
                                  .ladder.Rung(check_mode="a b", check_samples=1),
                                  ValidationError, r"`check_mode` must be a mode name"),
    "vote mode \"x/y\"": (lambda: tts.solve(tts.replay_engine().backends["small"].bank
                                             .problems["gsm8k-test-0"].question, 1000,
                                             strategy="vote", mode="x/y"),
                           ValidationError, r"`mode` must be a mode name"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_bad_api_input(case):
    call, error, match = API_CASES[case]
    with pytest.raises(error, match=match):
        call()


def test_api_inputs_accepted_in_every_natural_form(tmp_path):
    """A Path for a bank, a preset name for prices, numpy integers and floats for budgets and
    seeds: each works and gives the same Result as the plain Python value."""
    from tts.backends.replay import ReplayBackend
    from tts.budgets import MOT_USD

    small, bank = _replay_small()
    question = bank.problems[bank.problem_ids[3]].question
    assert ReplayBackend(Path(tts.BUNDLED_BANK), small.model).bank.records == bank.records
    assert tts.Engine(small, cost="mot-usd").cost == MOT_USD
    base = tts.replay_engine().solve(question, 2000)
    for budget in (np.int64(2000), np.int32(2000), np.float32(2000.0), np.float64(2000.0)):
        assert tts.replay_engine().solve(question, budget).answer == base.answer
        assert tts.Budget(tokens=budget).tokens == 2000.0
    assert tts.replay_engine(seed=np.int64(0)).solve(question, 2000).answer == base.answer
    assert tts.Budget(tokens=10, count_prompt=np.bool_(True)).count_prompt is True


# ---- command-line outputs and tuning storage (checked before any work starts) --------------
def _cli(argv, capsys):
    from tts.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())


@pytest.mark.parametrize("budget", ["inf", "nan", "-5", "0", "1e400", "2e12"])
def test_tune_bad_budget_fails_before_optuna(tmp_path, capsys, budget):
    db = tmp_path / "tune.db"
    code, err = _cli(["tune", "--budget", budget, "--trials", "2", "--storage",
                      f"sqlite:///{db}", "--out", str(tmp_path / "out"), "--no-progress"],
                     capsys)
    assert code == 2 and "error: `--budget` must be" in err
    assert not db.exists() and not (tmp_path / "out").exists()  # no study, no FAIL trial


def test_tune_bad_budgets_list(tmp_path, capsys):
    code, err = _cli(["tune", "--budgets", "512,inf", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "`--budgets` must be <= 1e+12 tokens, got inf" in err


@pytest.mark.parametrize("content", [b"", b"some notes\n"])
def test_tune_storage_refuses_a_file_that_is_not_an_optuna_database(tmp_path, capsys, content):
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    code, err = _cli(["tune", "--budget", "512", "--trials", "2", "--storage", f"sqlite:///{db}",
                      "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 2
    assert f"{db} exists and is {'empty' if not content else 'not a SQLite database'}" in err
    assert "will not write Optuna's tables into it" in err
    assert db.read_bytes() == content


def test_tune_storage_refuses_another_sqlite_database_and_a_folder(tmp_path, capsys):
    import sqlite3

    from tts.tuning.studies import check_storage, open_storage

    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(ValidationError, match=r"is a SQLite database but not an Optuna one "
                                              r"\(tables \['users'\]\)"):
        open_storage(f"sqlite:///{db}")
    assert db.read_bytes() == before
    with pytest.raises(ValidationError, match="is not a file"):
        check_storage(f"sqlite:///{tmp_path}")
    optuna_db = tmp_path / "optuna.db"
    assert open_storage(f"sqlite:///{optuna_db}") is not None  # a new file: Optuna creates it
    check_storage(f"sqlite:///{optuna_db}")  # and then it is an Optuna database


@pytest.mark.parametrize("blocker", ["file", "policy.json is a folder"])
def test_tune_out_unwritable_fails_before_tuning(tmp_path, capsys, blocker):
    out = tmp_path / "out"
    if blocker == "file":
        out.write_text("x")
    else:
        (out / "policy.json").mkdir(parents=True)
    code, err = _cli(["tune", "--budget", "512", "--trials", "500", "--out", str(out),
                      "--no-progress"], capsys)
    assert code == 2
    assert ("is a file, not a folder" if blocker == "file" else "exists and is not a file") \
        in err


# ---- tts bank build: the destination, and what a backend returns ----------------------------
@pytest.mark.parametrize("blocker, match", [
    ("dest is a file", "bank folder {dest} is a file, not a folder"),
    ("parent is a file", "bank folder {dest} cannot be created: {parent} is not a folder"),
    ("meta.json is a folder", "bank folder: {dest}/meta.json exists and is not a file"),
    ("samples.jsonl is a folder", "bank folder: {dest}/samples.jsonl exists and is not a file"),
])
def test_bank_build_dest_checked_before_any_model_or_server(tmp_path, capsys, blocker, match):
    parent = tmp_path / "p"
    dest = parent / "bank"
    if blocker == "dest is a file":
        parent.mkdir()
        dest.write_text("x")
    elif blocker == "parent is a file":
        parent.write_text("x")
    else:
        (dest / blocker.split()[0]).mkdir(parents=True)
    # The server does not exist: reaching it would be a connection error, not this one.
    code, err = _cli(["bank", "build", str(dest), "--server", "http://127.0.0.1:9/v1",
                      "--served-model", "m", "--samples", "2", "--n", "1"], capsys)
    assert code == 2 and match.format(dest=dest, parent=parent) in err


class _LyingBackend:
    """Returns what a broken server might: counts outside the request."""

    model = "liar"

    def __init__(self, mutate):
        self.mutate = mutate

    def prompt_tokens(self, request):
        return 3

    def generate(self, requests):
        from tts.types import Completion

        out = [[Completion(text="1", answer="1", tokens=5, prompt_tokens=3)
                for _ in range(r.n)] for r in requests]
        return self.mutate(out)


@pytest.mark.parametrize("mutate, match", [
    (lambda out: [[*c, c[0]] for c in out], "returned 3 samples .*n=2|3 samples"),
    (lambda out: [[__import__("dataclasses").replace(x, tokens=-4) for x in c] for c in out],
     "tokens"),
    (lambda out: [[__import__("dataclasses").replace(x, tokens=10**6) for x in c] for c in out],
     "tokens"),
    (lambda out: out[:-1], "results for 2 requests"),
])
def test_bank_build_refuses_bad_counts_from_a_backend(tmp_path, mutate, match):
    from tts.backends.contract import check_results  # noqa: F401  (the contract build uses)
    from tts.budgets import CostModel, ModelCost
    from tts.build import build_bank
    from tts.errors import BackendError
    from tts.types import Problem

    problems = [Problem(f"q{i}?", id=f"p{i}", gold="1") for i in range(2)]
    cost = CostModel({"liar": ModelCost(1.0, 1.0)}, source="test")
    with pytest.raises(BackendError, match=f"backend of liar broke the contract.*({match})"):
        build_bank(_LyingBackend(mutate), problems, tmp_path / "b", samples=2, max_tokens=50,
                   cost=cost, logprobs=False)
    assert (tmp_path / "b" / "samples.jsonl").read_text() == ""  # nothing reached the bank
