"""``python -m avdiff ...`` is the ``avdiff`` command (``accelerate launch -m avdiff batch ...`` runs it that way)."""

import sys

from avdiff.cli import main

sys.exit(main())
