"""The response side of the mock's CPA SOAP 1.2 codec: success envelopes and faults, rendered.

Pure, no I/O: each ``build_*`` function returns the UTF-8 SOAP 1.2 envelope the endpoint sends
(``cpa.app``); the words (operations, fault codes) come from ``cpa.request``. The golden files in
``tests/data/soap/`` pin the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from mock_server.cpa.request import EPAS_NS, SOAP12_NS, XML_NS, FaultSide, Operation, SoapFault

__all__ = [
    "build_fault",
    "build_get_all_config_response",
    "build_login_response",
    "build_logout_response",
    "build_onetime_password_response",
]


def _envelope() -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{SOAP12_NS}}}Envelope", nsmap={"env": SOAP12_NS, "epas": EPAS_NS})
    body = etree.SubElement(root, f"{{{SOAP12_NS}}}Body")
    return root, body


def _serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _success(body: etree._Element, operation: Operation) -> etree._Element:
    resp = etree.SubElement(body, f"{{{EPAS_NS}}}{operation.value}-resp")
    return etree.SubElement(resp, f"{{{EPAS_NS}}}success")


def build_login_response(session_key: str) -> bytes:
    """Render ``login-resp/success/session-key``.

    Args:
        session_key: the key issued by the Login Datastore.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    etree.SubElement(_success(body, Operation.LOGIN), f"{{{EPAS_NS}}}session-key").text = session_key
    return _serialise(root)


def _properties(parent: etree._Element, tag: str, values: Mapping[str, str]) -> None:
    holder = etree.SubElement(parent, f"{{{EPAS_NS}}}{tag}")
    for name, value in values.items():
        prop = etree.SubElement(holder, f"{{{EPAS_NS}}}property", name=name)
        prop.text = value


def build_get_all_config_response(system: Mapping[str, str], user: Mapping[str, str]) -> bytes:
    """Render ``get-all-config-resp/success`` with ``system-config`` and ``user-config`` properties.

    Args:
        system: system properties in the order to send them (see :func:`system_config`).
        user: user properties.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    success = _success(body, Operation.GET_ALL_CONFIG)
    _properties(success, "system-config", system)
    _properties(success, "user-config", user)
    return _serialise(root)


def build_onetime_password_response(password: str) -> bytes:
    """Render ``get-onetime-password-resp/success/password``.

    Args:
        password: the OTP issued by the Login Datastore.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    etree.SubElement(_success(body, Operation.GET_ONETIME_PASSWORD), f"{{{EPAS_NS}}}password").text = password
    return _serialise(root)


def build_logout_response() -> bytes:
    """Render ``logout-resp/success`` (empty).

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    _success(body, Operation.LOGOUT)
    return _serialise(root)


def build_fault(fault: SoapFault) -> bytes:
    """Render a SOAP 1.2 ``env:Fault`` (SOAP 1.2 Part 1 §5.4).

    ``env:Code/env:Value`` is ``env:<side>``, ``env:Reason/env:Text xml:lang="en"`` the reason, and
    ``env:Detail/epas:error code="..."`` the code. A VersionMismatch fault also carries the
    ``env:Upgrade`` header naming the SOAP 1.2 envelope (§5.4.7).

    Args:
        fault: what to report.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root = etree.Element(f"{{{SOAP12_NS}}}Envelope", nsmap={"env": SOAP12_NS, "epas": EPAS_NS})
    if fault.side is FaultSide.VERSION_MISMATCH:
        header = etree.SubElement(root, f"{{{SOAP12_NS}}}Header")
        upgrade = etree.SubElement(header, f"{{{SOAP12_NS}}}Upgrade")
        etree.SubElement(upgrade, f"{{{SOAP12_NS}}}SupportedEnvelope", qname="env:Envelope")
    body = etree.SubElement(root, f"{{{SOAP12_NS}}}Body")
    fault_el = etree.SubElement(body, f"{{{SOAP12_NS}}}Fault")
    code = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Code")
    etree.SubElement(code, f"{{{SOAP12_NS}}}Value").text = f"env:{fault.side.value}"
    reason = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Reason")
    text = etree.SubElement(reason, f"{{{SOAP12_NS}}}Text")
    text.set(f"{{{XML_NS}}}lang", "en")
    text.text = fault.reason
    detail = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Detail")
    error = etree.SubElement(detail, f"{{{EPAS_NS}}}error", code=fault.code.value)
    error.text = fault.reason
    return _serialise(root)
