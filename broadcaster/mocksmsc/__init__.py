"""The mock SMSC, part of the product: `broadcaster mock-smsc`, and the SMSC of every test.

`MockSmsc(MockConfig(...))` in-process, or the CLI in its own process for load tests.
"""

from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.mocksmsc.server import MockSmsc

__all__ = ["MockConfig", "MockSmsc"]
