"""`python -m broadcaster` is the same as the `broadcaster` console script."""

from broadcaster.cli import main

raise SystemExit(main())
