"""Bounded, non-blocking reads of the files tts is given (tts.files), through the loaders
that use them: a FIFO, a device or an oversized file is refused at once, naming the file."""

from __future__ import annotations

import gzip
import os
import threading

import pytest

from tts.bank import load_bank, save_bank
from tts.errors import BankError, ValidationError
from tts.files import gzip_holds, gzip_is_prefix, read_file, read_json_file
from tts.policy import load_policy

from .conftest import make_bank


def _fifo(path):
    os.mkfifo(path)
    return path


def _returns(fn, *args):
    """Run fn(*args) in a thread; its exception (or None), failing if it does not return
    (a FIFO opened for reading without O_NONBLOCK waits for a writer forever)."""
    box: list = []

    def run():
        try:
            fn(*args)
            box.append(None)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader so the test process can end
        with open(args[0], "wb"):
            pass
        pytest.fail(f"{fn.__name__}({args[0]}) blocked")
    return box[0]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_policy_from_an_endless_device_is_refused():
    with pytest.raises(ValidationError, match=r"policy file /dev/zero is a device, not a "
                                              r"regular file"):
        load_policy("/dev/zero")


def test_policy_from_a_fifo_is_refused_without_blocking(tmp_path):
    exc = _returns(load_policy, _fifo(tmp_path / "policy.json"))
    assert isinstance(exc, ValidationError)
    assert f"{tmp_path / 'policy.json'} is a FIFO (named pipe), not a regular file" in str(exc)


@pytest.mark.parametrize("name", ["meta.json", "samples.jsonl"])
def test_bank_file_that_is_a_fifo_is_refused(tmp_path, name):
    save_bank(make_bank(n_problems=1), tmp_path / "b")
    (tmp_path / "b" / name).unlink()
    _fifo(tmp_path / "b" / name)
    exc = _returns(load_bank, tmp_path / "b")
    assert isinstance(exc, BankError) and f"{name} is a FIFO" in str(exc)


def test_oversized_and_missing_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 50 + "0]")
    with pytest.raises(BankError, match=r"big\.json is larger than 64 bytes"):
        read_json_file(big, limit=64)
    assert len(read_json_file(big, limit=200)) == 51
    with pytest.raises(BankError, match="does not exist"):
        read_file(tmp_path / "nope")
    with pytest.raises(BankError, match="is a folder, not a file"):
        read_file(tmp_path)


def test_gzip_copy_checks(tmp_path):
    plain = tmp_path / "a"
    plain.write_bytes(b"line 1\nline 2\n")
    packed = tmp_path / "a.gz"
    packed.write_bytes(gzip.compress(b"line 1\nline 2\n"))
    assert gzip_holds(packed, plain) and gzip_is_prefix(packed, plain)
    packed.write_bytes(gzip.compress(b"line 1\n"))
    assert not gzip_holds(packed, plain) and gzip_is_prefix(packed, plain)
    packed.write_bytes(gzip.compress(b"line 9\n"))
    assert not gzip_holds(packed, plain) and not gzip_is_prefix(packed, plain)
    packed.write_bytes(b"xx")
    assert not gzip_holds(packed, plain) and not gzip_is_prefix(packed, plain)
