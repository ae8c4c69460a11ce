"""Optuna study storage shared by both tuners: check and open a storage URL (SQLite or any
RDB, several workers at once), and claim a study for one search so a resumed study is the
same search.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from tts.errors import ValidationError

__all__ = ["check_storage", "open_storage", "claim_study"]


def check_storage(url: str | None) -> None:
    """Refuse a storage URL that is malformed, or a `sqlite:///FILE` whose FILE exists but is
    not an Optuna database (an empty file, a folder, some other file or SQLite database):
    Optuna would write its tables into it. Nothing is created or changed."""
    if url is None:
        return
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError(f"--storage must be an Optuna RDB URL such as "
                              f"sqlite:///tune.db, got {url!r}.", parameter="storage", value=url)
    if not url.startswith("sqlite:"):
        return
    import sqlite3

    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001 (SQLAlchemy's ArgumentError and friends)
        raise ValidationError(f"--storage {url!r} is not a valid database URL.",
                              parameter="storage", value=url) from None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        return
    fix = "choose a new file name (Optuna creates it) or an existing Optuna database"
    if not path.is_file():
        raise ValidationError(f"--storage {url!r}: {path} is not a file; {fix}.",
                              parameter="storage", value=url)
    with open(path, "rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        what = "is empty" if not header else "is not a SQLite database"
        raise ValidationError(f"--storage {url!r}: {path} exists and {what}; tts tune will not "
                              f"write Optuna's tables into it. {fix[0].upper() + fix[1:]}.",
                              parameter="storage", value=url)
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ValidationError(f"--storage {url!r}: cannot read {path} ({exc}).",
                              parameter="storage", value=url) from None
    if not {"studies", "version_info"} <= tables:
        shown = sorted(tables)[:5]
        raise ValidationError(f"--storage {url!r}: {path} is a SQLite database but not an "
                              f"Optuna one (tables {shown}); tts tune will not write into it. "
                              f"{fix[0].upper() + fix[1:]}.", parameter="storage", value=url)


HEARTBEAT_S = 10
GRACE_S = 30


def open_storage(url: str | None):
    """An Optuna RDB storage for `url` (None: in memory); a clear error if it cannot open,
    or if it names an existing file that is not an Optuna database (`check_storage`)."""
    if url is None:
        return None
    import optuna

    check_storage(url)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            # Heartbeats: a trial whose worker died (killed mid-study) is marked failed once
            # its heartbeat is GRACE_S old, when a worker next starts on the study.
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=GRACE_S)
        except (IntegrityError, ProgrammingError) as exc:
            # Workers started together on a fresh database race to create Optuna's tables
            # ("type ... already exists", duplicate key): the loser retries and finds them.
            error = exc
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot open"
            error = exc
            break
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValidationError(f"cannot open Optuna storage {url!r}: {first}",
                          parameter="storage", value=url) from None


def claim_study(study: Any, name: str, settings: Mapping[str, Any]) -> None:
    """Mark a new study with its data and settings, or refuse to resume one made with
    others (a stored study resumes only the same search)."""
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", dict(settings))
    elif old != dict(settings):
        raise ValidationError(f"study {name!r} in this storage was made with other data or "
                              f"settings ({old} vs {dict(settings)}); pick another "
                              f"--study-name.", parameter="study_name", value=name)
