"""Moved to `tts.sweep.plans`. Kept only for `tts/tune_select.py`, which imports `VOTE_SIZES`
from here until the tuner moves into `tts/tuning/`; delete this file then."""

from tts.sweep.plans import VOTE_SIZES  # noqa: F401
