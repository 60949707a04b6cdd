"""``python -m crowdbench`` = the ``crowdbench`` command."""

from crowdbench.bench.cli import main

raise SystemExit(main())
