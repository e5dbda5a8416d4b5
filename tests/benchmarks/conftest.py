"""benchmarks/ is a folder of scripts, not a package: each imports its siblings by bare name
(``from machine import describe``), as a script run from that folder can. Tests put the
folder on the path the same way."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
