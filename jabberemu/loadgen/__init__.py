"""loadgen layer."""
__all__: list[str] = []
