"""``python -m ccnn``: the ``ccnn`` command (ccnn.cli), for environments without its script on PATH."""
import sys

from ccnn.cli import main

sys.exit(main())
