"""The mock SMSC, part of the product: `broadcaster mock-smsc`, and the SMSC of every test.

`MockSmsc(MockConfig(...))` in-process, or `broadcaster mock-smsc` in its own process for load
tests (its CLI lives with the other commands: this package imports nothing from the CLI).

Its parts: `scenario` (MockConfig), `server` (the listener, MockSmsc), `session` (the protocol,
one per connection); pure: `validation` (strict submit_sm checks), `fastpath` (runs of common
valid parts), `binding` (bind admission); `flow` (window and TPS), `hooks` and `faults` (one
small class per misbehaviour), `receipts`, `record` (what was accepted), `timers`.
"""

from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.mocksmsc.server import MockSmsc

__all__ = ["MockConfig", "MockSmsc"]
