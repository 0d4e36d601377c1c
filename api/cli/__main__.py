"""`python -m api.cli`: the `movierec` command."""

from api.cli import main

raise SystemExit(main())
