"""Background stages: order, bounded queues, errors reaching the caller, and clean shutdown."""

import threading

import pytest

from dagan.inference.profile import NETWORK_STAGES, STAGES, Profile
from dagan.inference.workers import Drain, Prefetch, drain, prefetch


def _dagan_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dagan-")]


def test_prefetch_yields_everything_in_order_on_another_thread():
    threads = []

    def produce():
        threads.append(threading.current_thread())
        yield from range(50)

    with Prefetch(produce, 4) as items:
        assert list(items) == list(range(50))
    assert threads[0] is not threading.main_thread()
    assert not _dagan_threads()


def test_prefetch_stays_at_most_maxsize_ahead():
    produced = []
    gate = threading.Event()

    def produce():
        for i in range(100):
            produced.append(i)
            yield i

    with Prefetch(produce, 3) as items:
        iterator = iter(items)
        next(iterator)
        gate.wait(0.3)  # give the worker time to run ahead as far as it can
        assert len(produced) <= 1 + 3 + 1  # consumed + queued + one waiting to be queued
    assert not _dagan_threads()


def test_prefetch_hands_the_worker_error_to_the_caller():
    def produce():
        yield 1
        raise ValueError("broken frame 2")

    with Prefetch(produce, 2) as items, pytest.raises(ValueError, match="broken frame 2"):
        list(items)
    assert not _dagan_threads()


def test_prefetch_close_stops_the_worker_and_closes_its_iterable():
    closed = []

    def produce():
        try:
            i = 0
            while True:  # endless: only close() ends it
                yield i
                i += 1
        finally:
            closed.append(threading.current_thread() is not threading.main_thread())

    with pytest.raises(KeyboardInterrupt):
        with Prefetch(produce, 2) as items:
            for i in items:
                if i == 5:
                    raise KeyboardInterrupt  # Ctrl-C (or SIGTERM via the CLI) in the caller
    assert closed == [True]  # closed on the worker's own thread
    assert not _dagan_threads()


def test_drain_consumes_in_order_and_reraises_its_error():
    seen = []
    with Drain(seen.append, 2) as sink:
        for i in range(20):
            sink.put(i)
        sink.finish()
    assert seen == list(range(20))

    def consume(item):
        if item == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with Drain(consume, 2) as sink:
            for i in range(100):
                sink.put(i)
            sink.finish()
    assert not _dagan_threads()


def test_inline_variants_run_in_the_caller():
    where = []
    with prefetch(lambda: iter(range(3)), 1, background=False) as items:
        assert list(items) == [0, 1, 2]
    with drain(lambda x: where.append(threading.current_thread()), 1, background=False) as sink:
        sink.put(0)
        sink.finish()
    assert where == [threading.main_thread()]
    with pytest.raises(ValueError):
        Prefetch(lambda: [], 0)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_profile_times_are_exclusive_and_shares_add_up():
    clock = FakeClock()
    profile = Profile(clock=clock, overlapped=False)
    profile.start()

    def frames():
        for _ in range(2):
            clock.now += 1.0  # decoding one frame: 1 s
            yield None

    def tracked():
        for frame in profile.iterate("decode", frames()):
            clock.now += 0.5  # tracking one frame, around the nested decode
            yield frame

    for _ in profile.iterate("detect/track", tracked()):
        with profile.stage("generator"):
            clock.now += 3.0
    profile.frames = 2
    clock.now += 1.0  # untimed work
    profile.stop()
    assert profile.seconds["decode"] == 2.0 and profile.seconds["detect/track"] == 1.0  # decode subtracted
    assert profile.seconds["generator"] == 6.0 and profile.wall == 10.0
    assert profile.network_share == 0.6
    table = profile.table()
    assert all(name in table for name in STAGES) and "networks busy 60%" in table
    assert set(NETWORK_STAGES) <= set(STAGES)
