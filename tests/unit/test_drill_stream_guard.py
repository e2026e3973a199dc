"""The engine's drill stream guard: rows pass on without their test_group flag, whatever the
buffer boundaries, and the first non-test row stops everything from its buffer on."""

from __future__ import annotations

from broadcaster.engine.runner import _TestGroupOnly


async def test_rows_split_across_buffers_pass_on_without_the_flag() -> None:
    seen: list[bytes] = []
    refused: list[bytes] = []

    async def consume(data: bytes) -> None:
        seen.append(data)

    guard = _TestGroupOnly(consume, refused.append)
    for piece in (b"33600000001\tfr\tt\n3360000", b"0002\ten\tt", b"\n33600000003\tfr\tt\n"):
        await guard(piece)
    assert b"".join(seen) == b"33600000001\tfr\n33600000002\ten\n33600000003\tfr\n"
    assert refused == []


async def test_a_non_test_row_stops_its_whole_buffer_and_what_follows() -> None:
    seen: list[bytes] = []
    refused: list[bytes] = []

    async def consume(data: bytes) -> None:
        seen.append(data)

    guard = _TestGroupOnly(consume, refused.append)
    await guard(b"33600000001\tfr\tt\n")
    await guard(b"33600000002\tfr\tt\n33600000003\tfr\tf\n33600000004\tfr\tt\n")
    await guard(b"33600000005\tfr\tt\n")
    assert seen == [b"33600000001\tfr\n"]  # nothing of the buffer with the public subscriber
    assert refused == [b"33600000003"]
