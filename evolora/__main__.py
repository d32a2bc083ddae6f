"""``python -m evolora``: the ``evolora`` command."""

import sys

from evolora.orchestrator.cli import main

sys.exit(main())
