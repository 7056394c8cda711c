"""`python -m freezer` is the `freezer` command."""

from __future__ import annotations

import sys

from freezer.cli import main

sys.exit(main())
