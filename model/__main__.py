"""``python -m model run ...`` is ``cets run ...``."""

import sys

from model.cli import main

sys.exit(main())
