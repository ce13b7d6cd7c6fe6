"""Coverage-guided fuzzing of the mock's parsers with atheris (libFuzzer for Python), optional.

The entry points are plain functions (``xmpp_one_input``, ``cpa_one_input``) that check the same
properties as the hypothesis corpus (``test_fuzz_regressions.py`` calls them on a few inputs so they
keep working). atheris is not part of ``make test`` (``pip install -e '.[fuzz]'``); run it by hand,
for as long as you like::

    .venv/bin/python tests/fuzz/atheris_targets.py xmpp -atheris_runs=1000000 -max_len=4096
    .venv/bin/python tests/fuzz/atheris_targets.py cpa -max_total_time=600 /tmp/cpa-corpus

(libFuzzer options after the target name; a directory argument keeps the evolving corpus.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

__all__ = ["cpa_one_input", "main", "xmpp_one_input"]

# The mock's modules are imported lazily so that ``main`` can instrument them first.


def xmpp_one_input(data: bytes) -> None:
    """First byte: stage (0 header, 1 after header, 2 after SASL, 3 bound) and chunk size; the
    rest is fed to a ``C2sStream`` through the ``WireDriver``."""
    from fuzz_support import WireDriver
    from fuzz_xmpp_inputs import HEADER, bind_iq, plain_auth

    if not data:
        return
    stage, chunk = data[0] & 3, 1 + (data[0] >> 2) * 8
    driver = WireDriver()
    if stage >= 1:
        driver.feed(HEADER)
    if stage >= 2:
        driver.feed(plain_auth("alice", "pass-alice"))
        driver.feed(HEADER)
    if stage == 3:
        driver.feed(bind_iq("r"))
    rest = data[1:]
    for off in range(0, len(rest), chunk):
        if driver.stream.closed:
            break
        driver.feed(rest[off:off + chunk])
    driver.check_invariants()


def cpa_one_input(data: bytes) -> None:
    """``parse_request`` answers with a request or one of our faults, and the fault renders."""
    from lxml import etree

    from mock_server.cpa.request import RequestTooLargeError, SoapFault, parse_request
    from mock_server.cpa.response import build_fault

    try:
        parse_request(data, max_body_bytes=64 * 1024)
    except RequestTooLargeError:
        pass
    except SoapFault as fault:
        etree.fromstring(build_fault(fault))


def main(argv: list[str]) -> None:
    import atheris

    target = argv[1] if len(argv) > 1 else "xmpp"
    with atheris.instrument_imports(include=["mock_server"]):
        import mock_server.cpa.request  # noqa: F401
        import mock_server.cpa.response  # noqa: F401
        import mock_server.xmpp.sasl  # noqa: F401
        import mock_server.xmpp.wire  # noqa: F401
        import mock_server.xmpp.xml  # noqa: F401
    one = {"xmpp": xmpp_one_input, "cpa": cpa_one_input}[target]
    atheris.Setup([argv[0], *argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
