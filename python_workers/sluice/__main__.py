"""`python -m sluice` is `sluice-worker`."""

import sys

from .cli import main

sys.exit(main())
