"""The client's CPA SOAP side: the zeep client of the Client Profile Agent (``cpa``), its aiohttp
transport (``transport``) and a template fast path for the hot login calls (``fastpath``), with the
bundled WSDL (``wsdl/``).

May import: ``jabberemu.config``, ``jabberemu.errors``, zeep, aiohttp, lxml. Never the driver,
``loadgen`` or ``report``.
"""
__all__: list[str] = []
