"""``python -m hugkit`` is the same as the ``hugkit`` command."""

import sys

from .cli import main

sys.exit(main())
