"""`python -m api.cli`: the `movierec` command."""

import sys

from api.cli import main

sys.exit(main())
