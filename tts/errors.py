"""Exceptions raised by tts. Every message names the offending input and, where useful, the fix."""

from __future__ import annotations


class TTSError(Exception):
    """Base class of every error tts raises on purpose."""


class ValidationError(TTSError, ValueError):
    """An argument is out of range or of the wrong type.

    `parameter` and `value` say which input was rejected, so callers (the CLI, the server)
    can report it without parsing the message.
    """

    def __init__(self, message: str, *, parameter: str | None = None, value: object = None):
        super().__init__(message)
        self.parameter = parameter
        self.value = value


class BudgetExceeded(TTSError):
    """A reservation would take the ledger past its limit; nothing was spent."""


class BankError(TTSError):
    """A sample bank is malformed, or lacks what a request needs."""


class BackendError(TTSError):
    """A generation backend failed or cannot serve a request."""


class UnknownNameError(TTSError, KeyError):
    """A strategy, backend or model name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
