"""``python -m inr_worker``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
