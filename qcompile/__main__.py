"""``python -m qcompile``: the ``qcompile`` command."""
import sys

from .cli import main

sys.exit(main())
