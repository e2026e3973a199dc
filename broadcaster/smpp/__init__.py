"""SMPP 3.4: a pure codec (bytes in, values out; no asyncio) beside the asyncio session."""
