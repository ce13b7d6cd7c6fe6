"""The node's STARTTLS certificate names the node, the presence domain and the bound address."""

from __future__ import annotations

import asyncio

import pytest
from cryptography import x509

from mock_server.node.node import MockNode
from mock_server.node.tls import client_context_no_verify, make_self_signed
from mock_server.pair_config import PairConfig


async def _peer_names(server_ctx: object) -> list[str]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context_no_verify())
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*sans.get_values_for_type(x509.DNSName), *map(str, sans.get_values_for_type(x509.IPAddress))]


async def test_node_certificate_is_issued_for_its_names() -> None:
    node = MockNode(PairConfig(), 0)
    names = await _peer_names(node._ssl_context())
    assert names == [node.name, PairConfig().domain, "127.0.0.1"]


def test_one_string_is_refused_not_split_into_letters() -> None:
    with pytest.raises(TypeError):
        make_self_signed("imp1.example.test")  # type: ignore[arg-type]
