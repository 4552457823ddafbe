"""``python -m qcompile``: the ``qcompile`` command."""
import sys

from qcompile.cli import main

sys.exit(main())
