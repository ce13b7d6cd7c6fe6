"""xmpp layer."""
__all__: list[str] = []
