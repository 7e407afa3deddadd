"""The collector tests' RecordingSink is reused here (tests/ has no packages: its folder goes on
the path, as pytest does for the folder of the test being run)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "collectors"))
