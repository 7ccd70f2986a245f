"""The worker's live output (services/worker/logs.py): batching, the per-execution limit and its
marker, the end chunk, masking, and the shipper's holding, resending, acknowledging and
back-pressure."""

from __future__ import annotations

import asyncio

from attune.internal.worker.v1 import worker_pb2
from attune.security.masking import SecretValues
from attune_services.worker.logs import END_STREAM, LogShipper, RunLog, cut_marker


def _shipper(buffer_bytes: int = 1 << 20) -> LogShipper:
    return LogShipper(buffer_bytes=buffer_bytes)


def _sent(shipper: LogShipper) -> list[worker_pb2.LogChunk]:
    return shipper.take(1 << 30) if shipper.has_outgoing() else []


async def test_writes_are_batched_until_the_interval_and_nothing_waits_for_silence() -> None:
    shipper = _shipper()
    log = RunLog(shipper, "e1", limit=1000, flush_interval=0.05)
    assert log._timer is None  # a run that prints nothing arms no timer
    log.write("stdout", b"one\n")
    log.write("stdout", b"two\n")
    log.write("stderr", b"oops\n")
    assert not shipper.has_outgoing()
    await asyncio.sleep(0.1)
    chunks = _sent(shipper)
    assert [(c.seq, c.stream, c.data) for c in chunks] == [(1, "stdout", b"one\ntwo\n"), (2, "stderr", b"oops\n")]
    assert log._timer is None


async def test_a_full_chunk_goes_at_once_and_close_sends_the_rest() -> None:
    shipper = _shipper()
    log = RunLog(shipper, "e1", limit=10_000, flush_interval=60, chunk_bytes=100)
    log.write("stdout", b"x" * 250)
    assert [len(c.data) for c in _sent(shipper)] == [100, 100, 50]
    log.write("stdout", b"tail")
    assert not shipper.has_outgoing()
    log.close()
    assert [(c.stream, c.data) for c in _sent(shipper)] == [("stdout", b"tail"), (END_STREAM, b"")]  # the end
    log.write("stdout", b"late")  # after the pipes closed: ignored
    assert not shipper.has_outgoing()


async def test_output_past_the_limit_is_cut_with_one_marker() -> None:
    shipper = _shipper()
    log = RunLog(shipper, "e1", limit=10, flush_interval=60)
    log.write("stdout", b"12345")
    log.write("stdout", b"67890abcdef")
    log.write("stderr", b"more")
    log.close()
    chunks = _sent(shipper)
    assert b"".join(c.data for c in chunks) == b"1234567890\n" + cut_marker(10)
    assert [c.seq for c in chunks] == [1, 2, 3]  # the kept bytes, the marker, the end
    assert log.dropped == 10  # "abcdef" and "more"
    assert b"ATTUNE_LOG_LIMIT_BYTES" in cut_marker(10)


async def test_secret_values_are_masked() -> None:
    shipper = _shipper()
    log = RunLog(shipper, "e1", limit=1000, secrets=SecretValues.of(["hunter2"]), flush_interval=60)
    log.write("stdout", b"password is hunter2\n")
    log.close()
    assert _sent(shipper)[0].data == b"password is ********\n"


async def test_chunks_are_held_until_acked_and_sent_again_after_a_reconnect() -> None:
    shipper = _shipper()
    log = shipper.open("e1", limit=1000)
    for piece in (b"a\n", b"b\n", b"c\n"):
        log.write("stdout", piece)
        log.flush()
    assert [c.seq for c in _sent(shipper)] == [1, 2, 3]
    shipper.acked([worker_pb2.LogAck(execution_id="e1", seq=1)])
    shipper.resend_all()  # a new session: what is not acked goes again
    assert [c.seq for c in _sent(shipper)] == [2, 3]
    log.close()  # the end: chunk 4
    assert [c.seq for c in _sent(shipper)] == [4]
    assert not await shipper.delivered("e1", timeout=0.01)
    assert not shipper.idle()
    shipper.acked([worker_pb2.LogAck(execution_id="e1", seq=3)])
    assert not await shipper.delivered("e1", timeout=0.01)
    shipper.acked([worker_pb2.LogAck(execution_id="e1", seq=4)])
    assert await shipper.delivered("e1", timeout=0.01)
    assert shipper.held_bytes == 0 and shipper.execution_ids() == [] and shipper.idle()


async def test_a_full_buffer_pauses_every_run_until_acks_free_room() -> None:
    shipper = _shipper(buffer_bytes=100)
    calls: list[str] = []
    log = shipper.open("e1", limit=10_000)
    log.hold_with(lambda: calls.append("pause"), lambda: calls.append("resume"))
    log.write("stdout", b"x" * 150)
    log.flush()
    assert calls == ["pause"] and shipper.paused
    shipper.acked([worker_pb2.LogAck(execution_id="e1", seq=1)])
    assert calls == ["pause", "resume"] and not shipper.paused


async def test_output_past_the_limit_is_read_slowly() -> None:
    shipper = _shipper()
    calls: list[str] = []
    log = shipper.open("e1", limit=10)
    log.hold_with(lambda: calls.append("pause"), lambda: calls.append("resume"))
    log.write("stdout", b"x" * 10)
    assert calls == []  # within the limit: read at full speed
    log.write("stdout", b"y" * 100_000)  # dropped: reading waits ~6 ms (DROP_RATE_BYTES_PER_S)
    assert calls == ["pause"]
    await asyncio.sleep(0.05)
    assert calls == ["pause", "resume"]
