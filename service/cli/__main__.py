"""``python -m service.cli``: the ``e2rnas`` command (Ray Jobs run sweeps this way)."""

from __future__ import annotations

from service.cli import main

raise SystemExit(main())
