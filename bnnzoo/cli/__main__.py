"""``python -m bnnzoo.cli``: the same as the ``bnnzoo`` command (used under torchrun)."""

import sys

from bnnzoo.cli import main

sys.exit(main())
