"""core layer."""
__all__: list[str] = []
