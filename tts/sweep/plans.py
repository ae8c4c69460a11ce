"""Which plans a sweep runs: plan names ("vote@8", "cascade", "policy", ...) resolved to
strategies on a given bank (capped to what it holds, or marked unavailable with the reason),
the policy resolved from an object or a file (with the training split it names), and
held-out question files.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tts.errors import UnknownNameError, ValidationError
from tts.sweep.peers import PEER_NAMES, is_peer_name, peer_plan

if TYPE_CHECKING:
    from tts.bank import SampleBank
    from tts.strategies import Strategy

__all__ = ["Entry", "plan_entries", "resolve_policy", "read_heldout", "bank_votes", "VOTE_SIZES",
           "FIXED_NAMES", "VOTE_AT", "ESCALATE_AT"]

VOTE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
"""The vote@N sizes a sweep runs by default (up to what the bank holds)."""
FIXED_NAMES = ("vote", "chain", "escalate", "cascade")
"""Fixed strategies besides vote@N, run with their defaults (capped to what the bank holds)."""

VOTE_AT = re.compile(r"^vote@(\d+)$")
ESCALATE_AT = re.compile(r"^escalate@(\d+)$")


@dataclass(frozen=True)
class Entry:
    """One plan of a sweep: its name, kind, the Strategy or Policy, or why it cannot run."""

    name: str
    kind: str  # fixed | policy | oracle
    plan: Any = None  # Strategy, Policy or None
    unavailable: str = ""

    def describe(self) -> Any:
        if self.kind == "oracle" or self.unavailable:
            return self.unavailable or "oracle"
        if self.kind == "policy":
            return _describe_policy(self.plan)
        return [self.plan.name, self.plan.options()]


def _bank_size(bank: SampleBank, role: str, mode: str) -> int:
    """Samples of (role's model, mode) every question has (0 when some question has none)."""
    model = bank.meta.roles.get(role)
    sizes = []
    for pid in bank.problems:
        rec = bank.records.get((pid, model, mode))
        sizes.append(len(rec.samples) if rec is not None else 0)
    return min(sizes) if sizes else 0


def bank_votes(bank: SampleBank) -> int:
    """Small-model samples every question has (0 when some question has none)."""
    return _bank_size(bank, "small", "sample")


def _has(bank: SampleBank, role: str, mode: str) -> bool:
    model = bank.meta.roles.get(role)
    return model is not None and all((pid, model, mode) in bank.records for pid in bank.problems)


def _default_names(bank: SampleBank) -> list[str]:
    fits = bank_votes(bank)
    sizes = [n for n in VOTE_SIZES if n <= fits]
    if fits and fits not in sizes:
        sizes.append(fits)
    return [f"vote@{n}" for n in sizes] + list(FIXED_NAMES) + ["policy", "oracle"]


def plan_entries(bank: SampleBank,
                 strategies: Sequence[str] | Mapping[str, Strategy] | None,
                 policy: Any, ladder: Sequence[str] | None = None) -> list[Entry]:
    """The sweep's plans on `bank` (see `run_sweep`'s `strategies`), oracle last; the peers
    run between the `ladder`'s first and last model (default: the bank's roles)."""
    from tts.strategies import Cascade, Chain, Escalate, Strategy, Vote

    fits = bank_votes(bank)
    small, large = bank.meta.roles.get("small"), bank.meta.roles.get("large")
    if strategies is None:
        names: list[str] = _default_names(bank)
        custom: Mapping[str, Strategy] = {}
    elif isinstance(strategies, Mapping):
        custom = {k: v for k, v in strategies.items() if v is not None}
        for name, s in custom.items():
            if name in ("policy", "oracle"):
                raise ValidationError(f"{name!r} is reserved for the {name}; give a custom "
                                      f"strategy another name.", parameter="strategies",
                                      value=name)
            if not isinstance(s, Strategy):
                raise ValidationError(f"strategy {name!r} must be a Strategy instance, got "
                                      f"{type(s).__name__}.", parameter="strategies")
        names = [str(k) for k in strategies]
        if not names:
            raise ValidationError("`strategies` must name at least one plan, got none.",
                                  parameter="strategies")
    else:
        if isinstance(strategies, str):
            strategies = [strategies]
        names = [str(n) for n in strategies]
        custom = {}
        if not names:
            raise ValidationError("`strategies` must name at least one plan, got none.",
                                  parameter="strategies")
    if "peers" in names and "peers" not in custom:
        at = names.index("peers")
        names = names[:at] + [n for n in PEER_NAMES if n not in names] + names[at + 1:]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValidationError(f"strategy {dup!r} is listed twice.", parameter="strategies",
                              value=dup)
    no_sample = f"bank has no 'sample' records of its small model {small!r} for every question"
    no_large = "bank has no large model" if large is None or large not in bank.models else \
        f"bank has no 'greedy' records of {large!r} for every question"
    has_sample, has_greedy = fits > 0, _has(bank, "large", "greedy")
    cap = min(16, fits) if fits else 16
    entries = []
    for name in names:
        if name in custom:
            entries.append(Entry(name, "fixed", custom[name]))
            continue
        m = VOTE_AT.match(name)
        if m:
            n = int(m.group(1))
            if n < 1:
                raise ValidationError(f"{name}: N must be >= 1.", parameter="strategies",
                                      value=name)
            if has_sample and n > fits:
                raise ValidationError(f"{name} needs {n} small-model samples per question, but "
                                      f"bank {bank.meta.name!r} holds {fits}; use N <= {fits}.",
                                      parameter="strategies", value=name)
            entries.append(Entry(name, "fixed", Vote(max_samples=n, wave=n, confidence=1.0),
                                  "" if has_sample else no_sample))
        elif ESCALATE_AT.match(name):
            n = int(ESCALATE_AT.match(name).group(1))
            held = _bank_size(bank, "large", "sample")
            if n < 2 or (held and n > held):
                raise ValidationError(f"{name}: N must be in [2, {held}] (the large model's "
                                      f"samples per question in the bank); plain `escalate` "
                                      f"is one greedy call.", parameter="strategies",
                                      value=name)
            why = "" if held else f"bank has no 'sample' records of its large model {large!r}"
            entries.append(Entry(name, "fixed", Escalate(samples=n), why))
        elif name == "vote":
            entries.append(Entry(name, "fixed", Vote(max_samples=cap),
                                  "" if has_sample else no_sample))
        elif name == "adaptive":
            from tts.strategies import Adaptive

            entries.append(Entry(name, "fixed", Adaptive(max_samples=cap, large=has_greedy),
                                  "" if has_sample else no_sample))
        elif name == "chain":
            why = "" if _has(bank, "small", "chain") else \
                f"bank has no 'chain' samples of {small!r} (build them with `tts bank build " \
                f"--chain-tokens N`)"
            entries.append(Entry(name, "fixed", Chain(), why))
        elif name == "escalate":
            entries.append(Entry(name, "fixed", Escalate(), "" if has_greedy else no_large))
        elif name == "cascade":
            why = no_sample if not has_sample else ("" if has_greedy else no_large)
            entries.append(Entry(name, "fixed", Cascade(max_samples=cap), why))
        elif name == "policy":
            entries.append(Entry(name, "policy", policy))
        elif name == "oracle":
            continue
        elif is_peer_name(name):
            plan, why = peer_plan(name, bank, *((ladder[0], ladder[-1]) if ladder else ()))
            entries.append(Entry(name, "fixed", plan, why))
        else:
            raise UnknownNameError(
                f"unknown strategy {name!r}; the sweep knows vote@N (N <= {fits}), "
                f"{', '.join(FIXED_NAMES)}, escalate@N (a vote of N large-model samples), "
                f"adaptive, the peers ({', '.join(PEER_NAMES)}, or `peers` for all: "
                f"mot-1d-vote@T, mot-2d-vote@T, esc@W and router@S take any threshold, window "
                f"and share), policy and oracle.")
    if not any(e.kind != "oracle" for e in entries):
        raise ValidationError("`strategies` must include at least one plan besides the oracle.",
                              parameter="strategies")
    if "oracle" in names:
        entries.append(Entry("oracle", "oracle"))
    return entries


def resolve_policy(policy: Any) -> tuple[Any, list[str] | None, str]:
    """(policy object, its training question ids or None, a description)."""
    from tts.policy import DefaultPolicy

    if policy is None:
        return DefaultPolicy(), None, "DefaultPolicy"
    if isinstance(policy, (str, Path)):
        from functools import partial

        from tts.files import read_file
        from tts.policy import load_policy

        path = Path(policy)
        loaded = load_policy(path)  # refuses a missing file, a folder, a device, a FIFO
        digest = hashlib.sha1(read_file(path, partial(ValidationError, parameter="policy"),
                                        f"policy file {path}")).hexdigest()
        return loaded, _train_ids(loaded), f"file {path.name} sha1:{digest[:12]}"
    return policy, _train_ids(policy), "object"


_TRAIN_KEYS = ("train_ids", "trained_on", "train_split")


def _train_ids(obj: Any) -> list[str] | None:
    """Training question ids a policy (object or JSON dict) names, if any."""
    for key in _TRAIN_KEYS:
        value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
        if isinstance(value, Mapping):  # e.g. {"train_split": {"ids": [...]}}
            value = value.get("ids", value.get("train"))
        if value is not None and not isinstance(value, (str, bytes)):
            return [str(v) for v in value]
    split = obj.get("split") if isinstance(obj, Mapping) else getattr(obj, "split", None)
    if isinstance(split, Mapping) and split.get("train") is not None:
        return [str(v) for v in split["train"]]
    return None


def _describe_policy(policy: Any) -> Any:
    import dataclasses

    for attr in ("to_dict", "as_dict", "params"):
        fn = getattr(policy, attr, None)
        if callable(fn):
            try:
                return [type(policy).__name__, fn()]
            except TypeError:
                pass
    if dataclasses.is_dataclass(policy) and not isinstance(policy, type):
        return [type(policy).__name__, dataclasses.asdict(policy)]
    return type(policy).__name__


def read_heldout(path: str | Path) -> list[str]:
    """Question ids from a held-out file: a JSON list, a JSON object with `heldout_ids`,
    `heldout`, `test_ids` or `test`, or plain text with one id per line."""
    from functools import partial

    from tts.files import read_file

    p = Path(path)
    error = partial(ValidationError, parameter="heldout", value=str(p))
    raw = read_file(p, error, f"held-out file {p}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"held-out file {p} is not UTF-8 text.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        ids = [line.strip() for line in text.splitlines() if line.strip()
               and not line.lstrip().startswith("#")]
    else:
        if isinstance(data, Mapping):
            key = next((k for k in ("heldout_ids", "heldout", "test_ids", "test") if k in data),
                       None)
            if key is None:
                raise ValidationError(f"held-out file {p}: a JSON object needs a `heldout_ids` "
                                      f"(or `heldout`, `test_ids`, `test`) list; it has "
                                      f"{sorted(data)}.", parameter="heldout", value=str(p))
            data = data[key]
        if not isinstance(data, list):
            raise ValidationError(f"held-out file {p} must hold a list of question ids.",
                                  parameter="heldout", value=str(p))
        ids = [str(v) for v in data]
    if not ids:
        raise ValidationError(f"held-out file {p} lists no question ids.", parameter="heldout",
                              value=str(p))
    return ids
