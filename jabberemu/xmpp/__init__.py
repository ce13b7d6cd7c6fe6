"""The client's XMPP side: one slixmpp session per emulated client (``client``), the lean parts that
keep a connected session small and leave no reference cycles when it ends (``lean``), the
``CISCO-VTG-TOKEN`` SASL mechanism (``sasl``), the log filter that keeps passwords and one-time
passwords out of every log line (``redact``), and in-memory connections for driver tests (``memory``).

May import: ``jabberemu.config``, ``jabberemu.core`` (metrics and events it reports), slixmpp.
Never the driver, ``loadgen`` or ``report``.
"""
__all__: list[str] = []
