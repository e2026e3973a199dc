"""Mock SMSC fixtures over real TCP on 127.0.0.1 (auto-loaded by conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.settings import SmscConfig

StartMock = Callable[..., Awaitable[tuple[MockSmsc, SmscConfig]]]


@pytest.fixture
async def start_mock() -> AsyncIterator[StartMock]:
    """Factory: `mock, smsc = await start_mock(MockConfig(...), binds=2, window=64, ...)`.

    Returns the running mock and an `SmscConfig` pointing at it (extra keywords go to
    SmscConfig); every mock started is stopped after the test.
    """
    started: list[MockSmsc] = []

    async def start(
        config: MockConfig | None = None, **smsc: object
    ) -> tuple[MockSmsc, SmscConfig]:
        mock = MockSmsc(config or MockConfig(seed=1))
        port = await mock.start()
        started.append(mock)
        settings = {"name": f"mock{len(started)}", "port": port, "binds": 2, "window": 64}
        settings.update(smsc)
        return mock, SmscConfig(**settings)  # type: ignore[arg-type]

    yield start
    for mock in started:
        await mock.stop()


@pytest.fixture
async def mock_smsc(start_mock: StartMock) -> tuple[MockSmsc, SmscConfig]:
    """A well-behaved mock SMSC and the SmscConfig for it."""
    return await start_mock()
