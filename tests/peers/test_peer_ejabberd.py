"""The emulator (XMPP-only, SASL SCRAM-SHA-1 and PLAIN) against Debian's ejabberd started by the test:
50 clients through login, roster, presence, messages and a server restart as an HA event."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from peer_scenario import check_restart_figures, make_users, run_peer_scenario
from peer_servers import EJABBERD_ERL, EJABBERD_LIBS, EjabberdPeer

from jabberemu.config import ReloginLimits, SaslMechanism

logger = logging.getLogger(__name__)

_INSTALLED = Path(EJABBERD_ERL).exists() and any(Path(EJABBERD_LIBS).glob("ejabberd-*/ebin/ejabberd.app"))

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.skipif(not _INSTALLED, reason="needs Debian ejabberd (apt-get install ejabberd)"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mechanism", [SaslMechanism.SCRAM_SHA_1, SaslMechanism.PLAIN], ids=lambda m: m.value)
async def test_fifty_clients_through_an_ejabberd_restart(tmp_path: Path, mechanism: SaslMechanism) -> None:
    users, contacts = make_users()
    server = EjabberdPeer(workdir=tmp_path / "ejabberd", users=users, contacts=contacts)
    t0 = time.monotonic()
    try:
        await server.start(timeout_s=40)
        figures = await run_peer_scenario(server, mechanism=mechanism, limits=ReloginLimits(lower_s=3.0, upper_s=6.0),
                                          node_name="ejabberd.example.test")
    finally:
        await server.stop()
    check_restart_figures(figures, server.log_tail())
    logger.info("ejabberd %s: %s, total %.1f s", mechanism.value, figures.summary(), time.monotonic() - t0)
