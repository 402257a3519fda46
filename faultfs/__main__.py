"""`python -m faultfs`: see faultfs.cli."""

import sys

from faultfs.cli import main

sys.exit(main())
