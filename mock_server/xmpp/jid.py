"""JIDs as the mock reads them: ``local@domain/resource`` (RFC 7622), split and lower-cased.

A light stand-in for the RFC 7622 PRECIS profiles: local part and domain are compared lower-cased,
the resource as is. Pure.
"""

from __future__ import annotations

__all__ = ["split_jid"]


def split_jid(jid: str) -> tuple[str, str, str]:
    """Split ``local@domain/resource`` into lower-cased local and domain, and the resource as is
    (a light stand-in for the RFC 7622 PRECIS profiles). Missing parts are ``""``."""
    bare, _, resource = jid.partition("/")
    local, at, domain = bare.rpartition("@")
    if not at:
        local, domain = "", bare
    return local.lower(), domain.lower(), resource
