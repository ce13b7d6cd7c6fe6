"""Compatibility: ``mock_server.runner.MockPair`` now lives in :mod:`mock_server.pair.runner`.

Kept for ``jabberemu/drill.py``, which still starts the pair in-process under this name until the
drill runs ``python -m mock_server`` and speaks to its admin API over HTTP (issue 18). New code
imports :class:`~mock_server.pair.runner.MockPair` from ``mock_server.pair.runner``.
"""

from __future__ import annotations

from mock_server.pair.runner import MockPair

__all__ = ["MockPair"]
