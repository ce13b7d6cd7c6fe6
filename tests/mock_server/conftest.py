"""The mock's tests, in wings as the package is (``srm/``, ``login/``, ``xmpp/``, ``cpa/``, ``pair/``;
the shared roots' tests stay here).

The helpers they share live in this directory (``pair_support``, ...); it goes on ``sys.path`` here
so that a test in any wing imports them by name, as pytest's default import mode does for a test's
own directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__: list[str] = []

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
