"""`python -m tts.models pull tiny`: the `tts models` command without the full CLI."""

import sys

from tts.models.cli import main

sys.exit(main())
