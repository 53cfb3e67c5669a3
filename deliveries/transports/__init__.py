"""One transport module per protocol, each behind the interface in ``base``."""
