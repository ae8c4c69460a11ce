"""Reading the files tts is given (bank metadata, policies, MoT logs, question lists): bounded
and never blocking.

A path a user passes may name anything: a FIFO (opening it for reading waits for a writer
forever), a device such as /dev/zero (endless), or a huge file. Every file tts reads whole
goes through `read_file` (JSON through `read_json_file`), which opens without blocking,
refuses anything but a regular file, and reads at most `MAX_FILE_BYTES`; line-by-line readers
open with `open_regular`. Errors name the file and say what is wrong with it.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import zlib
from pathlib import Path
from typing import IO, Callable

from tts.errors import BankError

MAX_FILE_BYTES = 256 * 2**20
"""Largest file `read_file` reads whole (256 MiB): MoT logs are a few MiB, metadata and
policies a few KiB; more is a wrong path, not data."""

ErrorFactory = Callable[[str], Exception]


def open_regular(path: str | os.PathLike, error: ErrorFactory = BankError,
                 what: str = "") -> IO[bytes]:
    """Open `path` for binary reading, refusing (with `error` naming it) a missing path, a
    folder, a FIFO, a device or a socket, without ever waiting on one."""
    what = what or str(path)
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} does not exist.") from None
    except IsADirectoryError:
        raise error(f"{what} is a folder, not a file.") from None
    except OSError as exc:
        raise error(f"{what} cannot be read ({exc.strerror or exc}).") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{what} is a folder, not a file.")
        if not stat.S_ISREG(mode):
            raise error(f"{what} is {_kind(mode)}, not a regular file; give the path of a "
                        f"file.")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | os.PathLike, error: ErrorFactory = BankError, what: str = "", *,
              limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (`open_regular`'s
    refusals, and a larger file, raise `error` naming it)."""
    what = what or str(path)
    with open_regular(path, error, what) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise error(f"{what} cannot be read ({exc.strerror or exc}).") from None
    if len(data) > limit:
        raise error(f"{what} is larger than {limit:,} bytes, more than tts reads from such a "
                    f"file; check the path.")
    return data


def read_json_file(path: Path, error: ErrorFactory = BankError, what: str = "", *,
                   limit: int = MAX_FILE_BYTES) -> object:
    """Parse a JSON file read with `read_file`; a missing file, a folder, a FIFO or device in
    its place, a file over `limit` bytes, non-UTF-8 text, invalid or too deeply nested JSON
    all raise `error` naming the file (and line)."""
    what = what or str(path)
    raw = read_file(path, error, what, limit=limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{what}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}).") \
            from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply to read.") from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise error(f"{what}: unreadable JSON value ({exc}).") from None


def gzip_holds(packed: Path, plain: Path) -> bool:
    """Whether the gzip file `packed` holds exactly the bytes of `plain`, judged from its
    trailer (CRC-32 and length of the data) without decompressing it."""
    try:
        with open_regular(packed) as fh:
            fh.seek(-8, os.SEEK_END)
            trailer = fh.read(8)
        crc, size = 0, 0
        with open_regular(plain) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
    except (OSError, BankError):
        return False
    return trailer == crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


def gzip_is_prefix(packed: Path, plain: Path) -> bool:
    """Whether the data of the gzip file `packed` is a prefix of the bytes of `plain` (a
    compressed copy that an interrupted appender did not refresh yet); False when `packed`
    is not readable gzip."""
    try:
        with open_regular(packed) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                open_regular(plain) as fh:
            for chunk in iter(lambda: gz.read(1 << 20), b""):
                if fh.read(len(chunk)) != chunk:
                    return False
    except (OSError, EOFError, zlib.error, BankError):
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
