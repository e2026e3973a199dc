"""The CPU `broadcaster send` spends per delivery receipt on its way in (issue 22): the new
intake against the old one, in the same invocation.

    python -m loadtest.receipt_intake                      # 200k receipts, best of 3
    python -m loadtest.receipt_intake --receipts 20000 --repeat 1

N receipt deliver_sm, written exactly as the mock SMSC writes them (`ReceiptTemplates`, its
default configuration: text in the appendix B layout and the two TLVs; 90% DELIVRD, 5% UNDELIV,
5% EXPIRED), are cut into reads of `--read-size` octets and fed to a real `SmppSession` (a
transport that only counts what is written: the deliver_sm_resp) owned by a real `SmppPool`,
whose receipts go to a real `ReceiptRecorder` (its SMSC's id form settled, `same`); every
`--batch` receipts its rows are COPYed into the staging table of a real PostgreSQL (a scratch
database: `loadtest.common.scratch_database`), in a transaction, as `store.receipts.record`
does before `receipts_match` (not run: the server's part, not the sender's).

The baseline is the same pipeline with the old functions, kept in this file only: the strict
decode of every deliver_sm (`decode_short_message_pdu`, then `decode_short_message`), the old
`parse_receipt` building a frozen dataclass `Receipt`, the recorder's old row (a `datetime.now`
per receipt, `keys`, aware datetimes, a text[]) and the old staging table. Old and new
alternate `--repeat` times; each figure is the best run. (The way from the connection to the
recorder is today's for both: receipts beside the events, a read's worth at a time.) CPU is
this process's (`time.process_time`: what the send process would spend; PostgreSQL's is not
counted), in µs per receipt, for the intake alone (bytes to recorder rows) and with the COPY.
The rows the two paths COPY are checked to hold the same receipts (received_at aside).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from broadcaster.domain.receipt_ids import keys
from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc.receipts import ReceiptRun, ReceiptTemplates
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.settings import SmscConfig
from broadcaster.smpp import codec
from broadcaster.smpp.connection import (
    DeliverSmMalformed,
    MoMessage,
    ReceiptUnreadable,
    Received,
    SmppConnection,
)
from broadcaster.smpp.constants import TAG_MESSAGE_STATE, TAG_RECEIPTED_MESSAGE_ID, CommandId
from broadcaster.smpp.pool import Part, SmppPool
from broadcaster.smpp.receipts import (
    _STAT_ALIASES,
    FINAL_STATS,
    MESSAGE_STATES,
    _any_fields,
    _count,
    _date,
    _tlv_text,
)
from broadcaster.smpp.session import SmppSession
from broadcaster.store import receipts as store
from broadcaster.store.queries import queries
from broadcaster.text.encoding import decode_short_message
from loadtest.common import description, quiet_logs, scratch_database

SMSC = "smsc"
STATS = ("DELIVRD",) * 18 + ("UNDELIV", "EXPIRED")
"""The stats of the receipts, in turn (90% DELIVRD, 5% UNDELIV, 5% EXPIRED)."""
TEXT = "ALERTE: les numeros "
"""A receipt's `text:` (the first 20 characters of the part's, as the mock takes them)."""


# -- the receipts, as the mock SMSC writes them --------------------------------------------------


class _NoReceiver:
    index = 0
    system_id = "broadcaster"
    receiving = True

    def send_receipts(self, receipts: Any) -> None:
        raise NotImplementedError


def receipt_pdus(count: int) -> list[bytes]:
    """`count` receipt deliver_sm (sequence numbers from 1), by the mock's templates."""
    submitted = datetime(2026, 12, 6, 11, 0)
    templates = ReceiptTemplates(MockConfig(), datetime(2026, 12, 6, 11, 0, 12))
    run = ReceiptRun(
        "broadcaster",
        _NoReceiver(),
        submitted,
        [
            (0x1000_0000 + i, b"336%08d" % i, b"ALERTE", STATS[i % len(STATS)], TEXT, False)
            for i in range(count)
        ],
    )
    out: list[bytes] = []
    templates.encode_run(run, 0, out)
    return out


# -- the old intake (before issue 22's short cut), kept here as the baseline ----------------------


@dataclass(frozen=True, slots=True)
class OldReceipt:
    message_id: str
    stat: str
    err: str | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    sub: int | None = None
    dlvrd: int | None = None
    text_message_id: str | None = None
    source: str | None = None

    @property
    def delivered(self) -> bool:
        return self.stat == "DELIVRD"

    @property
    def final(self) -> bool:
        return self.stat in FINAL_STATS


_STANDARD = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*) err:(\S*)"
    r" text:(.*)",
    re.DOTALL,
)


def old_parse_receipt(
    short_message: str, tlvs: Mapping[int, bytes], source: str | None = None
) -> OldReceipt | None:
    standard = _STANDARD.fullmatch(short_message)
    if standard is not None:
        text_id, sub, dlvrd, submitted, done, stat, err, _text = standard.groups()
    else:
        fields = _any_fields(short_message)
        text_id, sub, dlvrd = fields.get("id"), fields.get("sub"), fields.get("dlvrd")
        submitted, done = fields.get("submit date"), fields.get("done date")
        stat, err = fields.get("stat", ""), fields.get("err")
    text_id = text_id or None
    tlv_id = _tlv_text(tlvs.get(TAG_RECEIPTED_MESSAGE_ID))
    message_id = tlv_id or text_id
    if message_id is None:
        return None
    stat = stat.upper()
    stat = _STAT_ALIASES.get(stat, stat)
    if not stat:
        state = tlvs.get(TAG_MESSAGE_STATE)
        stat = MESSAGE_STATES.get(state[0], "UNKNOWN") if state else "UNKNOWN"
    return OldReceipt(
        message_id=message_id,
        stat=stat,
        err=err or None,
        submit_date=_date(submitted),
        done_date=_date(done),
        sub=_count(sub),
        dlvrd=_count(dlvrd),
        text_message_id=text_id if text_id != message_id else None,
        source=source or None,
    )


def old_encode_deliver_sm_resp(sequence: int, status: int = 0) -> bytes:
    return (
        codec.HEADER.pack(codec.HEADER_LENGTH + 1, CommandId.DELIVER_SM_RESP, status, sequence)
        + b"\0"
    )


class OldConnection(SmppConnection[Part]):
    """Every deliver_sm through the old `_on_deliver_sm`."""

    def _on_receipt(self, received: Received[Part], pdu: bytes, sequence: int) -> bool:
        return False

    def _on_deliver_sm(
        self, received: Received[Part], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        try:
            message = codec.decode_short_message_pdu(pdu)
        except SmppProtocolError as exc:
            received.events.append(DeliverSmMalformed(str(exc)))
            received.replies.append(old_encode_deliver_sm_resp(header.sequence, exc.command_status))
            return
        received.replies.append(old_encode_deliver_sm_resp(header.sequence, 0))
        if not message.is_receipt:
            received.events.append(MoMessage())
            return
        text = decode_short_message(message.user_data, message.data_coding)
        receipt = old_parse_receipt(text, message.tlvs, message.source_addr)
        if receipt is None:
            received.events.append(ReceiptUnreadable(text))
        else:
            received.receipts.append(receipt)  # type: ignore[arg-type]


class OldRecorder(ReceiptRecorder):
    """The recorder's old row: a datetime per receipt, `keys` as a list, aware done dates."""

    def received(self, receipts: Sequence[Any], smsc: str) -> None:
        for receipt in receipts:
            self(receipt, smsc)

    def __call__(self, receipt: Any, smsc: str) -> None:
        now = datetime.now(UTC)
        self.ids.seen(smsc, now)
        done = receipt.done_date.replace(tzinfo=UTC) if receipt.done_date else None
        ids = (receipt.message_id, receipt.text_message_id)
        self._rows.append(
            (
                smsc,
                receipt.message_id,
                receipt.text_message_id,
                receipt.source,
                receipt.stat,
                receipt.err,
                done,
                now,
                keys(ids, self.ids.form(smsc)),
            )
        )


OLD_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS receipts_in_old (
    smsc            text NOT NULL,
    message_id      text NOT NULL,
    text_message_id text,
    reported_msisdn text,
    stat            text NOT NULL,
    err             text,
    done_at         timestamptz,
    received_at     timestamptz NOT NULL,
    keys            text[] NOT NULL
) ON COMMIT DELETE ROWS"""
OLD_COLUMNS = (
    "smsc",
    "message_id",
    "text_message_id",
    "reported_msisdn",
    "stat",
    "err",
    "done_at",
    "received_at",
    "keys",
)


# -- the pipeline ------------------------------------------------------------------------------


class _Transport(asyncio.Transport):
    """Counts what the session writes (the bind, then the deliver_sm_resp)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


@dataclass
class Path:
    name: str
    connection: type[SmppConnection[Part]]
    recorder: type[ReceiptRecorder]
    stage: str
    table: str
    columns: tuple[str, ...]


OLD = Path("old", OldConnection, OldRecorder, OLD_STAGE, "receipts_in_old", OLD_COLUMNS)
NEW = Path(
    "new",
    SmppConnection,
    ReceiptRecorder,
    queries["receipts_stage"],
    "receipts_in",
    store.STAGED_COLUMNS,
)


async def run(
    path: Path, chunks: list[bytes], count: int, batch: int, conn: asyncpg.Connection | None
) -> dict[str, float]:
    """Feed the reads to a bound session; (CPU µs per receipt, intake alone and with COPY)."""
    smsc = SmscConfig(name=SMSC, receipt_ids="same")
    recorder = path.recorder(None, [smsc])  # type: ignore[arg-type]  # never flushes itself
    pool = SmppPool([smsc], on_outcome=lambda *_: None, on_receipts=recorder.received)
    session: SmppSession[Part] = SmppSession(
        pool, name="smsc#1", smsc=smsc, site=0, pacer=pool.binds[0].pacer
    )
    session.connection = path.connection(system_id="broadcaster", password="")
    transport = _Transport()
    session.connection_made(transport)
    session.data_received(
        codec.encode_bind_resp(int(CommandId.BIND_TRANSCEIVER_RESP), 1, 0, "SMSC")
    )
    assert session.bound.done()
    written = transport.written
    intake = copy = 0.0
    gc.collect()
    for start in range(0, len(chunks), batch):
        begin = time.process_time()
        for chunk in chunks[start : start + batch]:
            session.data_received(chunk)
        rows, recorder._rows = recorder._rows, []
        middle = time.process_time()
        if conn is not None and rows:
            async with conn.transaction():
                await conn.execute(path.stage)
                await conn.copy_records_to_table(path.table, records=rows, columns=path.columns)
        intake += middle - begin
        copy += time.process_time() - middle
    assert pool.stats.receipts == count, (pool.stats.receipts, count)
    assert transport.written - written == 17 * count  # a deliver_sm_resp each
    return {"intake_us": intake / count * 1e6, "copy_us": copy / count * 1e6}


def cut(pdus: list[bytes], read_size: int) -> list[bytes]:
    stream = b"".join(pdus)
    return [stream[i : i + read_size] for i in range(0, len(stream), read_size)]


# -- checks ------------------------------------------------------------------------------------


async def same_rows(conn: asyncpg.Connection, chunks: list[bytes], count: int) -> bool:
    """The two paths stage the same receipts (but received_at) from the same PDUs."""
    staged: dict[str, list[tuple[Any, ...]]] = {}
    for path in (OLD, NEW):
        smsc = SmscConfig(name=SMSC, receipt_ids="same")
        recorder = path.recorder(None, [smsc])  # type: ignore[arg-type]
        pool = SmppPool([smsc], on_outcome=lambda *_: None, on_receipts=recorder.received)
        session: SmppSession[Part] = SmppSession(
            pool, name="smsc#1", smsc=smsc, site=0, pacer=pool.binds[0].pacer
        )
        session.connection = path.connection(system_id="broadcaster", password="")
        session.connection_made(_Transport())
        for chunk in chunks:
            session.data_received(chunk)
        async with conn.transaction():
            await conn.execute(path.stage)
            await conn.copy_records_to_table(
                path.table, records=recorder._rows, columns=path.columns
            )
            keys = (  # the new table stages the first key and the others (receipts_stage)
                "keys"
                if path.name == "old"
                else "CASE WHEN first_key IS NULL THEN '{}'::text[]"
                " ELSE array_prepend(first_key, coalesce(more_keys, '{}'::text[])) END"
            )
            columns = (
                f"smsc, message_id, text_message_id, reported_msisdn, stat, err, done_at, {keys}"
            )
            query = f"SELECT {columns} FROM {path.table} ORDER BY message_id"  # noqa: S608
            staged[path.name] = [tuple(r) for r in await conn.fetch(query)]
    return len(staged["new"]) == count and staged["old"] == staged["new"]


# -- main --------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    pdus = receipt_pdus(args.receipts)
    chunks = cut(pdus, args.read_size)
    batch = max(1, args.batch * len(chunks) // max(1, args.receipts))  # reads per COPY
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            same = await same_rows(conn, cut(pdus[:2000], args.read_size), 2000)
            best: dict[str, dict[str, float]] = {}
            for _ in range(args.repeat):
                for path in (OLD, NEW):
                    figures = await run(path, chunks, args.receipts, batch, conn)
                    figures["total_us"] = figures["intake_us"] + figures["copy_us"]
                    kept = best.setdefault(path.name, figures)
                    for key, value in figures.items():
                        kept[key] = min(kept[key], value)
        finally:
            await conn.close()
    old, new = best["old"], best["new"]
    return {
        "receipts": args.receipts,
        "read_size": args.read_size,
        "copy_batch": args.batch,
        "old_intake_us": round(old["intake_us"], 3),
        "old_copy_us": round(old["copy_us"], 3),
        "old_us_per_receipt": round(old["total_us"], 3),
        "new_intake_us": round(new["intake_us"], 3),
        "new_copy_us": round(new["copy_us"], 3),
        "new_us_per_receipt": round(new["total_us"], 3),
        "intake_ratio": round(old["intake_us"] / new["intake_us"], 2),
        "ratio": round(old["total_us"] / new["total_us"], 2),
        "same_rows": same,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--receipts", type=int, default=200_000)
    parser.add_argument("--read-size", type=int, default=65_536, help="octets per read")
    parser.add_argument("--batch", type=int, default=15_000, help="receipts per COPY")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path (best kept)")
    args = parser.parse_args(argv)
    quiet_logs()
    f = asyncio.run(measure(args))
    print(
        f"{f['receipts']:,} receipts, reads of {f['read_size']:,} octets, COPY every"
        f" {f['copy_batch']:,}; send's CPU per receipt (best of {args.repeat}):"
    )
    for name in ("old", "new"):
        print(
            f"  {name}: {f[f'{name}_us_per_receipt']:6.2f} µs = intake {f[f'{name}_intake_us']:.2f}"
            f" + COPY {f[f'{name}_copy_us']:.2f}"
        )
    print(
        f"ratio old ÷ new: {f['ratio']:.2f} x (intake alone {f['intake_ratio']:.2f} x);"
        f" the same rows staged: {'yes' if f['same_rows'] else 'NO'}"
    )
    print(json.dumps(f))
    return 0 if f["same_rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
