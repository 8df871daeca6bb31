"""``python -m robact_bench`` runs the command-line interface."""

from robact_bench.cli import main

raise SystemExit(main())
