"""``python -m mock_server.node_main``: the entry point of the mock's node processes.

``--zygote`` starts the zygote the supervisor forks node processes from (``pair.processes.Zygote``
starts it by this module name); ``INDEX CONFIG_JSON CONTROL_HOST CONTROL_PORT TOKEN`` runs one node
by hand. Everything lives in :mod:`mock_server.pair.node_process`, imported here at once so that the
zygote has the node's code loaded before it forks.
"""

from __future__ import annotations

import sys

from mock_server.pair.node_process import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
