"""The SMPP pool against the mock SMSC over TCP: rates, throttling, chaos, failover, credentials.

Each test is bounded (a few seconds at most): rates are measured over a fixed amount of work and
compared with the issue's acceptance thresholds; every part's outcome is checked against what
the mock recorded. Protocol details the mock cannot script (exact PDUs on the wire) are in
tests/integration/test_session_protocol.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from broadcaster.errors import BindError
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.settings import SmscConfig
from broadcaster.smpp.codec import SubmitTemplate, submit_templates
from broadcaster.smpp.constants import Status
from broadcaster.smpp.pool import NO_RESPONSE, SmppPool
from broadcaster.smpp.receipts import Receipt
from broadcaster.text.encoding import encode_message

StartMock = Callable[..., Awaitable[tuple[MockSmsc, SmscConfig]]]
"""The `start_mock` fixture (tests/fixtures_smsc.py)."""

TEXT = "Numeros d'urgence perturbes dans votre departement: appelez le 01 23 45 67 89."
TEMPLATE = submit_templates(
    encode_message(TEXT, reference=1), source_addr="ALERTE", source_ton=5, source_npi=0
)[0]
LONG_TEXT = "ALERTE " + "numeros d'urgence perturbes, appelez le 01 23 45 67 89. " * 5
LONG_TEMPLATES = submit_templates(
    encode_message(LONG_TEXT, reference=9), source_addr="ALERTE", source_ton=5, source_npi=0
)
SECRET = "s3cret-longer-than-eight"


def destination(i: int) -> bytes:
    return f"336{i:08d}".encode()


def everywhere(pool: SmppPool, template: SubmitTemplate) -> tuple[SubmitTemplate, ...]:
    """The same template for every SMSC of the pool (one sender for all)."""
    return (template,) * len(pool.smscs)


@dataclass
class Outcome:
    status: int
    message_id: str | None
    smsc: str
    answered_at: float
    """time.monotonic() when the pool reported it."""


@dataclass
class Collector:
    """Every outcome and receipt the pool reported."""

    outcomes: dict[object, list[Outcome]] = field(default_factory=dict)
    receipts: list[tuple[Receipt, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    duplicates: dict[object, int] = field(default_factory=dict)
    """Tag -> copies beyond one the SMSC may have received (only those above 0)."""

    def on_outcome(
        self,
        tag: object,
        status: int,
        message_id: str | None,
        smsc: str,
        submitted_at: float,
        answered_at: float,
        possible_duplicates: int = 0,
    ) -> None:
        assert submitted_at <= answered_at
        if possible_duplicates:
            self.duplicates[tag] = possible_duplicates
        self.outcomes.setdefault(tag, []).append(
            Outcome(status, message_id, smsc, time.monotonic())
        )
        self.changed.set()

    def on_receipts(self, receipts: Sequence[Receipt], smsc: str) -> None:
        self.receipts.extend((receipt, smsc) for receipt in receipts)
        self.changed.set()

    def single(self) -> dict[object, Outcome]:
        """tag -> its outcome; fails if any part was reported twice."""
        twice = {tag: v for tag, v in self.outcomes.items() if len(v) != 1}
        assert not twice, f"parts reported more than once: {twice}"
        return {tag: v[0] for tag, v in self.outcomes.items()}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., SmppPool]]:
    """Factory of pools reporting to a Collector, all closed after the test."""
    made: list[SmppPool] = []

    def make(*smscs: SmscConfig, collector: Collector, **kwargs: object) -> SmppPool:
        pool = SmppPool(
            smscs,
            collector.on_outcome,
            collector.on_receipts,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


# What the tests read from the mock, in one place.


def errors(mock: MockSmsc) -> dict[str, int]:
    """The mock's non-zero answers to submit_sm, by status name."""
    counts: dict[str, int] = mock.stats_json()["errors"]
    return counts


def binds_now(mock: MockSmsc) -> int:
    count: int = mock.stats_json()["binds_now"]
    return count


def binds_refused(mock: MockSmsc) -> int:
    count: int = mock.stats_json()["binds_refused"]
    return count


def malformed(mock: MockSmsc, reason: str) -> int:
    count: int = mock.stats_json()["malformed"].get(reason, 0)
    return count


async def test_paces_at_the_contract_and_never_slows_down(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """The mock enforces T parts/s per bind and a window W: the pool paces 1.5% under the
    contract, a part at a time, so the mock has no reason to throttle it and its pacers never
    cut. No timing assert (a shared machine may stall the loop): the achieved rate is measured
    by the load test (`python -m loadtest paced`, target >= 97% of the contract); here a
    throttle caused by such a stall is retried, and a stray one is not evidence to slow down."""
    tps, window, binds, seconds = 300.0, 16, 2, 3
    mock, smsc = await start_mock(
        MockConfig(tps=tps, window=window, seed=1), tps=tps, window=window, binds=binds
    )
    collector = Collector()
    pool = pools(smsc, collector=collector)
    await pool.start()
    parts = int(tps * binds * seconds)
    for i in range(parts):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    await pool.drain()
    assert {o.status for o in collector.single().values()} == {0}
    assert all(b.pacer.cuts == 0 and b.pacer.rate == b.pacer.ceiling for b in pool.binds)
    assert pool.stats.throttled <= 0.01 * parts
    assert errors(mock) == (
        {"ESME_RTHROTTLED": pool.stats.throttled} if pool.stats.throttled else {}
    )
    assert mock.record.parts_received == parts
    assert len(mock.record.messages) == parts


async def test_settles_under_a_throttling_smsc_and_loses_nothing(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """The mock accepts only 60% of the contracted rate: the pool slows down to it (>= 85% of
    the real capacity once settled) and every part is accepted in the end."""
    contract, binds = 300.0, 2
    real = 0.6 * contract
    mock, smsc = await start_mock(
        MockConfig(tps=contract, throttle_above=0.6, window=32, seed=1),
        tps=contract,
        window=32,
        binds=binds,
    )
    collector = Collector()
    pool = pools(smsc, collector=collector)
    await pool.start()
    parts = 1400
    started = time.monotonic()
    for i in range(parts):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    await pool.drain()
    outcomes = collector.single()
    assert {o.status for o in outcomes.values()} == {0}
    assert pool.stats.throttled > 0  # it was throttled, and slowed down
    assert errors(mock) == {"ESME_RTHROTTLED": pool.stats.throttled}
    assert all(b.pacer.rate < 0.8 * contract for b in pool.binds)
    settled = sorted(o.answered_at for o in outcomes.values() if o.answered_at >= started + 1.0)
    rate = (len(settled) - 1) / (settled[-1] - settled[0])
    assert rate >= 0.85 * real * binds, f"{rate:.1f} parts/s of {real * binds:.0f}"
    assert len(mock.record.messages) == parts


async def test_every_part_ends_accepted_or_failed_with_a_reason_through_chaos(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Disconnects, stalls, a corrupt stream, vendor statuses, unreadable replies (some of them
    unknown PDUs) and malformed receipts mid-run: each part gets exactly one outcome, accepted
    or a status, the counts add up, and each accepted part was received by an SMSC."""
    flaky, flaky_smsc = await start_mock(
        MockConfig(
            disconnect_after=120,
            errors={0x401: 0.02, Status.ESME_RINVDSTADR: 0.01, Status.ESME_RTHROTTLED: 0.02},
            malformed_reply_rate=0.02,
            receipts=True,
            receipt_12_digit_dates=True,
            malformed_receipt_rate=0.1,
            receipt_mix={"DELIVRD": 0.8, "UNDELIV": 0.1, "EXPIRED": 0.1},
            latency_ms=4,
            latency_jitter_ms=3,
            seed=2,
        ),
        name="flaky",
        window=20,
        response_timeout_s=0.5,
    )
    stalling, stalling_smsc = await start_mock(
        MockConfig(stall_after=90, stall_seconds=3.0, seed=3),
        name="stalling",
        window=20,
        response_timeout_s=0.6,
    )
    corrupt, corrupt_smsc = await start_mock(
        MockConfig(corrupt_stream_after=70, seed=4), name="corrupt", binds=1, window=10
    )
    collector = Collector()
    pool = pools(
        flaky_smsc, stalling_smsc, corrupt_smsc, collector=collector, housekeeping_interval=0.05
    )
    await pool.start()
    parts = 2000
    for i in range(parts):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    async with asyncio.timeout(15):
        await pool.drain()
    outcomes = collector.single()
    assert set(outcomes) == set(range(parts))  # no part lost, none reported twice
    statuses = [o.status for o in outcomes.values()]
    accepted = statuses.count(0)
    failed = len(statuses) - accepted
    stats = pool.stats
    assert (stats.submitted, stats.accepted, stats.failed) == (parts, accepted, failed)
    assert pool.outstanding == 0
    # Failures carry the SMSC's status (vendor codes included), never a silent drop.
    assert set(statuses) - {0} <= {0x401, Status.ESME_RINVDSTADR, NO_RESPONSE}
    assert stats.failed_by_status.get(0x401, 0) > 0
    assert sum(stats.failed_by_status.values()) == failed
    # Accepted parts were received: every accepted recipient is in some mock's record, with
    # its text (a re-sent part may arrive twice: counted as a possible duplicate). Parts
    # accepted with an unreadable message_id are not in the mock's record (see the report).
    received: dict[str, list[str]] = {}
    for mock in (flaky, stalling, corrupt):
        for number, texts in mock.record.messages.items():
            received.setdefault(number, []).extend(texts)
    for tag, outcome in outcomes.items():
        if outcome.status == 0 and outcome.message_id is not None:
            assert TEXT in received[destination(tag).decode()]  # type: ignore[arg-type]
    duplicates = sum(len(texts) - 1 for texts in received.values())
    assert duplicates <= stats.requeued_inflight
    # Everything that could go wrong did, and the pool said so.
    assert stats.reconnects >= 3
    assert stats.requeued_inflight > 0
    assert stats.stalls >= 1
    assert stats.timeouts > 0
    assert stats.malformed > 0
    assert stats.unknown_commands > 0  # answered with generic_nack, the bind kept
    assert stats.throttled > 0
    assert stats.unreadable_receipts > 0
    assert stats.receipts > 0
    # Receipts match accepted parts by id, except for parts whose reply was lost with the
    # connection or unreadable (their re-sent copy got another id): each of those is counted.
    known = {o.message_id for o in outcomes.values() if o.message_id}
    unmatched = [r for r, _smsc in collector.receipts if r.message_id not in known]
    assert len(unmatched) <= stats.requeued_inflight + stats.malformed


async def test_unknown_pdus_get_generic_nack_and_the_bind_stays_up(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """The mock answers some parts with a PDU of unknown command_id: each gets generic_nack,
    the part it stood for is retried after its response timeout, the bind never drops."""
    mock, smsc = await start_mock(
        MockConfig(malformed_reply_rate=0.1, seed=5), binds=1, response_timeout_s=0.3
    )
    collector = Collector()
    pool = pools(smsc, collector=collector, housekeeping_interval=0.05)
    await pool.start()
    for i in range(300):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    async with asyncio.timeout(10):
        await pool.drain()
    statuses = [o.status for o in collector.single().values()]
    assert set(statuses) <= {0, NO_RESPONSE}
    assert pool.stats.unknown_commands > 0
    assert pool.stats.timeouts >= pool.stats.unknown_commands
    assert pool.stats.reconnects == 0
    assert binds_now(mock) == 1
    assert malformed(mock, "generic_nack_received") == pool.stats.unknown_commands


async def test_one_site_dies_mid_run_and_the_other_finishes(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    paris, paris_smsc = await start_mock(MockConfig(latency_ms=1, seed=6), name="paris", tps=400.0)
    _lyon, lyon_smsc = await start_mock(MockConfig(latency_ms=1, seed=7), name="lyon", tps=400.0)
    collector = Collector()
    pool = pools(paris_smsc, lyon_smsc, collector=collector)
    await pool.start()
    parts = 2400
    for i in range(parts):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    await collector.wait_for(lambda: len(collector.outcomes) >= parts // 4)
    await paris.stop()
    died = time.monotonic()
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert len(outcomes) == parts
    assert {o.status for o in outcomes.values()} == {0}
    after = [o for o in outcomes.values() if o.answered_at > died + 0.1]
    assert after
    assert {o.smsc for o in after} == {"lyon"}
    by_site = {"paris": 0, "lyon": 0}
    for o in outcomes.values():
        by_site[o.smsc] += 1
    assert by_site["paris"] >= parts // 8  # it did its share while it lived
    health = {h.name: h for h in pool.health()}
    assert health["paris"].state == "down"
    assert health["lyon"].state == "up"
    assert health["lyon"].binds_up == 2


async def test_stalled_site_stops_getting_parts_and_its_parts_come_back(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """A site that stops answering gets no new parts once silent; what it held comes back
    after the response timeout, and the other site delivers everything."""
    _hung, hung_smsc = await start_mock(
        MockConfig(stall_after=30, seed=8),
        name="hung",
        tps=200.0,
        window=100,
        response_timeout_s=1.0,
    )
    _fine, fine_smsc = await start_mock(MockConfig(seed=9), name="fine", tps=200.0, window=100)
    collector = Collector()
    pool = pools(hung_smsc, fine_smsc, collector=collector, housekeeping_interval=0.05)
    await pool.start()
    parts = 1000
    for i in range(parts):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert {o.status for o in outcomes.values()} == {0}
    # Each hung connection answered 30 parts, then the pool fed it only until it had been
    # silent for the stall threshold (0.2 s, about 40 parts at 200/s): far from its window
    # of 100. Those came back after the response timeout and went to the other site.
    stalls = pool.stats.stalls
    assert stalls >= 2
    assert pool.stats.timeouts / stalls <= 80
    assert pool.stats.requeued_inflight == pool.stats.timeouts


async def test_long_messages_arrive_whole_through_disconnects(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Two-part messages through an SMSC that drops every connection after 50 parts: every
    recipient's text is reassembled by the mock, exactly as written."""
    mock, smsc = await start_mock(MockConfig(disconnect_after=50, seed=10), binds=2, window=10)
    collector = Collector()
    pool = pools(smsc, collector=collector)
    await pool.start()
    recipients = 200
    for i in range(recipients):
        for n, template in enumerate(LONG_TEMPLATES):
            pool.submit(everywhere(pool, template), destination(i), (i, n))
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert len(outcomes) == recipients * len(LONG_TEMPLATES) == pool.stats.accepted
    messages = mock.record.messages
    assert len(messages) == recipients
    assert all(set(texts) == {LONG_TEXT} for texts in messages.values())
    assert pool.stats.reconnects >= 5


async def test_a_lost_connection_is_told_with_its_smsc_so_receipt_ids_are_forgotten(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """An SMSC that drops its connections may have restarted and give ids again: the pool tells
    `on_lost` (the engine's receipt recorder forgets the ids that SMSC gave, engine/sent_parts)
    each time, naming the SMSC."""
    _mock, smsc = await start_mock(MockConfig(disconnect_after=50, seed=11), binds=2, window=10)
    lost: list[str] = []
    pool = pools(smsc, collector=Collector(), on_lost=lost.append)
    await pool.start()
    for i in range(200):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    async with asyncio.timeout(10):
        await pool.drain()
    assert pool.stats.reconnects >= 2  # each bind dropped after 50 parts
    assert len(lost) >= pool.stats.reconnects and set(lost) == {smsc.name}


async def test_window_overflow_is_retried_not_lost(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """A pool configured with a wider window than the SMSC allows: ESME_RMSGQFUL slows the
    bind down and each refused part is sent again."""
    mock, smsc = await start_mock(MockConfig(window=8, latency_ms=5, seed=11), window=40, binds=1)
    collector = Collector()
    pool = pools(smsc, collector=collector)
    await pool.start()
    for i in range(400):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    async with asyncio.timeout(10):
        await pool.drain()
    assert {o.status for o in collector.single().values()} == {0}
    assert errors(mock) == {"ESME_RMSGQFUL": pool.stats.throttled}
    assert pool.stats.throttled > 0
    assert len(mock.record.messages) == 400


async def test_receipts_come_back_parsed_and_matchable(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    _mock, smsc = await start_mock(
        MockConfig(
            receipts=True,
            receipt_12_digit_dates=True,
            receipt_mix={"DELIVRD": 0.5, "UNDELIV": 0.5},
            receipt_tlv=False,  # the id from the text only
            seed=12,
        ),
        bind_mode="transceiver",
    )
    collector = Collector()
    pool = pools(smsc, collector=collector)
    await pool.start()
    for i in range(200):
        pool.submit(everywhere(pool, TEMPLATE), destination(i), i)
    await pool.drain()
    await collector.wait_for(lambda: len(collector.receipts) == 200)
    ids = {o.message_id for o in collector.single().values()}
    receipts = [r for r, _smsc in collector.receipts]
    assert {r.message_id for r in receipts} == ids  # matched as strings, leading zeros kept
    assert {r.stat for r in receipts} == {"DELIVRD", "UNDELIV"}
    assert all(r.done_date is not None for r in receipts)
    assert pool.stats.receipts == 200
    assert pool.stats.reconnects == 0


async def test_bad_credentials_raise_bind_error_saying_so(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    mock, smsc = await start_mock(
        MockConfig(system_id="prefecture75-primary", password=SECRET, seed=13),
        system_id="prefecture75-primary",
        password="not-it",
    )
    with pytest.raises(BindError, match=r"ESME_RINVPASWD: invalid password: check the password"):
        await pools(smsc, collector=Collector()).start()
    assert binds_now(mock) == 0
    assert binds_refused(mock) == 2  # one attempt per bind: no hammering
    # The right credentials, longer than SMPP 3.4's 15 and 8, bind.
    good = pools(
        SmscConfig(name="good", port=mock.port, system_id="prefecture75-primary", password=SECRET),
        collector=Collector(),
    )
    await good.start()
    assert binds_now(mock) == 2


async def test_each_smsc_gets_parts_with_its_own_sender_and_receipt_request(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Two SMSCs, each with its own template of the same part: a part carried by an SMSC is
    encoded with that SMSC's template. The mocks keep the first parts of concatenated messages
    pending under (source_addr, destination, reference), so each mock's record shows which
    sender it received; only the SMSC whose template asks for receipts sends any."""
    paris, paris_smsc = await start_mock(MockConfig(receipts=True, seed=14), name="paris")
    lyon, lyon_smsc = await start_mock(MockConfig(receipts=True, seed=15), name="lyon")
    message = encode_message(LONG_TEXT, reference=21)
    firsts = tuple(
        submit_templates(
            message, source_addr=source, source_ton=5, source_npi=0, registered_delivery=receipts
        )[0]
        for source, receipts in (("PREF75", 1), ("PREF69", 0))  # in the pool's smscs order
    )
    collector = Collector()
    pool = pools(paris_smsc, lyon_smsc, collector=collector)
    await pool.start()
    recipients = 300
    for i in range(recipients):
        pool.submit(firsts, destination(i), i)
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert {o.status for o in outcomes.values()} == {0}
    carried: dict[str, set[bytes]] = {"paris": set(), "lyon": set()}
    for tag, outcome in outcomes.items():
        carried[outcome.smsc].add(destination(tag))  # type: ignore[arg-type]
    assert len(carried["paris"]) > recipients // 4  # both carried a fair share (weights 1:1)
    assert len(carried["lyon"]) > recipients // 4
    for mock, source, name in ((paris, b"PREF75", "paris"), (lyon, b"PREF69", "lyon")):
        received = mock.record.pending
        assert {source_addr for source_addr, _dest, _ref in received} == {source}, name
        assert {dest for _source, dest, _ref in received} == carried[name]
    await collector.wait_for(lambda: len(collector.receipts) == len(carried["paris"]))
    assert {smsc for _receipt, smsc in collector.receipts} == {"paris"}
    assert pool.stats.receipts == len(carried["paris"])


async def test_submit_wants_one_template_per_smsc(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    _mock, smsc = await start_mock(name="one")
    _other, other = await start_mock(name="two")
    pool = pools(smsc, other, collector=Collector())
    with pytest.raises(ValueError, match="1 templates for 2 SMSCs"):
        pool.submit((TEMPLATE,), destination(1), 1)
    assert (pool.backlog, pool.outstanding, pool.stats.submitted) == (0, 0, 0)


# All the parts of a message through one SMSC: each SMSC sends with its own sender, and a phone
# joins the parts of a message by (sender, reference). Judged by the mocks' records: a part
# sent through the wrong SMSC leaves an incomplete message pending at both.

SENDERS = ("PREF75", "PREF69")
"""The sender of each SMSC of the two-site pools below, in the pools' order."""
TEXTS = (
    TEXT,  # one part
    LONG_TEXT,  # two
    "ALERTE " + "numeros d'urgence perturbes, appelez le 01 23 45 67 89. " * 7,  # three
)


def message_parts(text: str, reference: int) -> list[tuple[SubmitTemplate, ...]]:
    """One message's parts, each with one template per SMSC (each with its own sender)."""
    message = encode_message(text, reference=reference)
    by_smsc = [
        submit_templates(message, source_addr=sender, source_ton=5, source_npi=0)
        for sender in SENDERS
    ]
    return list(zip(*by_smsc, strict=True))


MESSAGES = [message_parts(text, reference) for reference, text in enumerate(TEXTS, 1)]


def submit_messages(pool: SmppPool, recipients: int) -> dict[str, str]:
    """Recipient i gets text i % 3, its parts submitted one after the other; returns the
    text each destination must receive."""
    assert [len(parts) for parts in MESSAGES] == [1, 2, 3]
    expected: dict[str, str] = {}
    for i in range(recipients):
        parts = MESSAGES[i % len(MESSAGES)]
        for n, templates in enumerate(parts, 1):
            pool.submit(templates, destination(i), (i, n), n < len(parts))
        expected[destination(i).decode()] = TEXTS[i % len(TEXTS)]
    return expected


def assert_each_smsc_carried_whole_messages(*mocks: MockSmsc) -> None:
    """Each mock (in `SENDERS` order) received parts with its own sender only, and every
    concatenated message it received is complete."""
    for mock, sender in zip(mocks, SENDERS, strict=True):
        senders = {s for per_recipient in mock.record.senders.values() for s in per_recipient}
        assert senders <= {sender}
        assert {source for source, _dest, _ref in mock.record.pending} <= {sender.encode()}
        pending = sorted(mock.record.pending)
        assert mock.record.incomplete() == 0, f"{sender}: {len(pending)} incomplete: {pending[:3]}"


def received_texts(*mocks: MockSmsc) -> dict[str, list[str]]:
    """destination -> every whole text the mocks received for it."""
    received: dict[str, list[str]] = {}
    for mock in mocks:
        for number, texts in mock.record.messages.items():
            received.setdefault(number, []).extend(texts)
    return received


async def test_messages_are_never_split_between_smscs(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Single, two- and three-part messages through two SMSCs that enforce their windows and
    rates strictly: each SMSC gets whole messages with its own sender, both carry a share,
    and a session finishing a message on lent pacing tokens never overruns either limit."""
    config = MockConfig(window=8, tps=400.0, latency_ms=2, seed=31)
    paris, paris_smsc = await start_mock(config, name="paris", window=8, tps=400.0)
    lyon, lyon_smsc = await start_mock(config.replace(seed=32), name="lyon", window=8, tps=400.0)
    collector = Collector()
    pool = pools(paris_smsc, lyon_smsc, collector=collector)
    await pool.start()
    expected = submit_messages(pool, 600)
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert len(outcomes) == pool.stats.submitted == 1200
    assert {o.status for o in outcomes.values()} == {0}
    assert errors(paris) == errors(lyon) == {}  # no ESME_RMSGQFUL, no ESME_RTHROTTLED
    assert_each_smsc_carried_whole_messages(paris, lyon)
    assert received_texts(paris, lyon) == {d: [text] for d, text in expected.items()}
    assert len(paris.record.messages) > 600 // 4  # both carried a share
    assert len(lyon.record.messages) > 600 // 4
    for i in range(600):  # what the pool reported agrees: each message through one SMSC
        parts = len(MESSAGES[i % 3])
        assert len({outcomes[(i, n)].smsc for n in range(1, parts + 1)}) == 1
    assert pool.stats.split_messages == 0


async def test_a_throttled_part_is_sent_again_through_the_smsc_of_its_message(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Paris accepts only half its contract and throttles the rest: each throttled part of a
    long message is sent again through Paris (never through Lyon, whose sender would not
    match), while everything else flows on; no message ends up incomplete."""
    paris, paris_smsc = await start_mock(
        MockConfig(tps=300.0, throttle_above=0.5, window=16, seed=33),
        name="paris",
        tps=300.0,
        window=16,
    )
    lyon, lyon_smsc = await start_mock(
        MockConfig(tps=300.0, window=16, seed=34), name="lyon", tps=300.0, window=16
    )
    collector = Collector()
    pool = pools(paris_smsc, lyon_smsc, collector=collector)
    await pool.start()
    expected = submit_messages(pool, 900)
    async with asyncio.timeout(15):
        await pool.drain()
    outcomes = collector.single()
    assert {o.status for o in outcomes.values()} == {0}
    assert pool.stats.throttled > 20  # Paris did throttle, parts of long messages among them
    assert errors(paris) == {"ESME_RTHROTTLED": pool.stats.throttled}
    assert errors(lyon) == {}
    assert_each_smsc_carried_whole_messages(paris, lyon)
    assert received_texts(paris, lyon) == {d: [text] for d, text in expected.items()}
    assert len(paris.record.messages) > 900 // 8  # throttled, it still carried its share
    assert pool.stats.split_messages == 0


async def kill(mock: MockSmsc) -> None:
    """The SMSC goes down without a word: its connections dropped with parts unanswered, no
    unbind, and no bind accepted any more."""
    for session in list(mock.connections):
        if session.transport is not None:
            session.transport.abort()
    await mock.stop()


async def test_a_site_killed_mid_run_releases_its_parts_and_counts_split_messages(
    start_mock: StartMock, pools: Callable[..., SmppPool]
) -> None:
    """Paris dies with parts of long messages in flight. Those wait for Paris (their messages
    went there) for its response timeout, then go to Lyon: every part gets an outcome, the
    run ends, and each message that may have arrived incomplete is counted."""
    paris, paris_smsc = await start_mock(
        MockConfig(latency_ms=30, seed=35), name="paris", tps=300.0, response_timeout_s=0.5
    )
    lyon, lyon_smsc = await start_mock(MockConfig(latency_ms=5, seed=36), name="lyon", tps=300.0)
    collector = Collector()
    pool = pools(paris_smsc, lyon_smsc, collector=collector, housekeeping_interval=0.05)
    await pool.start()
    recipients = 900
    expected = submit_messages(pool, recipients)
    parts = pool.stats.submitted
    await collector.wait_for(lambda: len(collector.outcomes) >= parts // 4)
    inflight = sum(b.session.inflight for b in pool.binds if b.smsc is paris_smsc and b.session)
    assert inflight > 5  # parts of long messages among them, surely
    await kill(paris)
    killed = time.monotonic()
    async with asyncio.timeout(10):
        await pool.drain()
    outcomes = collector.single()
    assert len(outcomes) == parts  # none lost
    assert {o.status for o in outcomes.values()} == {0}  # none failed: sent again elsewhere
    stats = pool.stats
    assert stats.split_messages > 0
    assert stats.requeued_inflight >= stats.split_messages
    # The pinned parts waited for Paris's response timeout before going to Lyon.
    late = [o.answered_at - killed for o in outcomes.values() if o.answered_at > killed]
    assert max(late) >= 0.5
    # Each recipient got its text whole from one SMSC, but for the split messages counted.
    received = received_texts(paris, lyon)
    missing = [d for d, text in expected.items() if text not in received.get(d, [])]
    assert len(missing) <= stats.split_messages
    assert len(paris.record.pending) <= stats.split_messages
    assert len(lyon.record.pending) <= stats.split_messages
    # Every message received whole came through one SMSC, with that SMSC's sender.
    for mock, sender in ((paris, "PREF75"), (lyon, "PREF69")):
        senders = {s for per_recipient in mock.record.senders.values() for s in per_recipient}
        assert senders <= {sender}
    health = {h.name: h for h in pool.health()}
    assert health["paris"].state == "down"
