"""The emulator (XMPP-only, SASL PLAIN) against Debian's Prosody started by the test: 50 clients
through login, roster, presence, messages and a server restart as an HA event."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest
from peer_scenario import check_restart_figures, make_users, run_peer_scenario
from peer_servers import ProsodyPeer

from jabberemu.config import ReloginLimits, SaslMechanism

logger = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.skipif(shutil.which("prosody") is None, reason="needs Debian prosody (apt-get install prosody)"),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mechanism", [SaslMechanism.PLAIN, SaslMechanism.SCRAM_SHA_1], ids=lambda m: m.value)
async def test_fifty_clients_through_a_prosody_restart(tmp_path: Path, mechanism: SaslMechanism) -> None:
    users, contacts = make_users()
    server = ProsodyPeer(workdir=tmp_path / "prosody", users=users, contacts=contacts)
    t0 = time.monotonic()
    try:
        await server.start()
        figures = await run_peer_scenario(server, mechanism=mechanism, limits=ReloginLimits(lower_s=1.0, upper_s=3.0),
                                          node_name="prosody.example.test")
    finally:
        await server.stop()
    check_restart_figures(figures, server.log_tail())
    logger.info("prosody %s: %s, total %.1f s", mechanism.value, figures.summary(), time.monotonic() - t0)
