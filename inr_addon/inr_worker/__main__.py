"""``python -m inr_worker``: see :mod:`.cli`; ``standby`` (the add-on's ready worker): see :mod:`.standby`."""

import sys

if sys.argv[1:] == ["standby"]:  # before the CLI's imports, which the standby process makes while it waits
    from .standby import main
else:
    from .cli import main

sys.exit(main())
