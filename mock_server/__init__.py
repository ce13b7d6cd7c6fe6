"""A mock Cisco IM and Presence Presence Redundancy Group: two nodes with CPA SOAP, XMPP and SRM."""

__all__: list[str] = []
