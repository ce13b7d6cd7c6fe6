"""jabberemu: emulated Cisco Jabber clients for load and HA tests of Cisco IM and Presence."""

__all__ = ["__version__"]
__version__ = "0.1.0"
