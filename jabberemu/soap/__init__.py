"""soap layer."""
__all__: list[str] = []
