"""broadcaster: area-targeted public-guidance SMS over SMPP, coordinated through PostgreSQL."""

__version__ = "0.1.0"
