"""pytest wiring for the fuzz campaign: the runner module is importable as `run`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
