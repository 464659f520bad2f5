"""`python -m miva.cli ...` is `miva ...`."""

import sys

from miva.cli import main

sys.exit(main())
