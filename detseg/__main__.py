"""``python -m detseg COMMAND ...``: the ``detseg`` command without the installed script."""

import sys

from .cli import main

sys.exit(main())
