"""Background threads for the pipeline's stages, with bounded queues and clean shutdown.

`Prefetch` runs a producer (decode → track → crop) ahead of the caller; `Drain` runs a consumer
(compose → encode) behind it. Either way at most `maxsize` items wait, so memory stays bounded,
and the caller's thread keeps the networks busy. An exception on a worker reaches the caller at
its next hand-over; an exception in the caller (Ctrl-C, SIGTERM turned into KeyboardInterrupt by
the CLI, a DaganError) stops the workers on `close()`, which the `with` blocks guarantee. Workers
are daemon threads and poll a stop flag, so a stuck worker can never keep the process alive.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Prefetch", "Drain", "prefetch", "drain"]

_POLL = 0.05  # seconds between checks of the stop flag while a queue is full or empty
_JOIN = 10.0  # seconds to wait for a worker to notice the stop flag
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetch:
    """Iterate `produce()` on a background thread, `maxsize` items ahead of the consumer.

    The iterable is created, consumed and closed on the worker thread (a video decoder lives and
    dies there). Use as `with Prefetch(lambda: items(), 16) as items: for x in items: ...`.
    """

    def __init__(self, produce: Callable[[], Iterable], maxsize: int, name: str = "prefetch"):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(produce,), name=f"dagan-{name}", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, produce: Callable[[], Iterable]) -> None:
        iterator = None
        try:
            iterator = iter(produce())
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the background reader stopped without a result") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        """Stop the worker and wait for it (it closes its iterable)."""
        self._stop.set()
        while True:  # unblock a worker waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(_JOIN)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Drain:
    """Call `consume(item)` on a background thread for every `put` item, in order.

    `finish()` waits until every item is consumed and re-raises a worker exception; `close()`
    (also on leaving the `with` block) stops the worker without consuming what is left.
    """

    def __init__(self, consume: Callable[[Any], None], maxsize: int, name: str = "drain"):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(consume,), name=f"dagan-{name}", daemon=True)
        self._thread.start()

    def _work(self, consume: Callable[[Any], None]) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            try:
                consume(item)
            except BaseException as exc:  # re-raised in the caller at its next put/finish
                self._error = exc
                self._stop.set()
                return

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: Any) -> None:
        """Queue one item (blocks while `maxsize` are waiting); raises a worker's exception."""
        while True:
            self._check()
            if self._stop.is_set():
                raise RuntimeError("the background writer has stopped")
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every queued item is consumed; raises a worker's exception."""
        self.put(_DONE)
        while self._thread.is_alive():
            self._thread.join(_POLL)
        self._check()

    def close(self) -> None:
        """Stop the worker (queued items are dropped) and wait for it."""
        self._stop.set()
        self._thread.join(_JOIN)

    def __enter__(self) -> Drain:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Inline:
    """`Prefetch`/`Drain` without a thread: the same interface, run in the caller (for measurements)."""

    def __init__(self, produce: Callable[[], Iterable] | None = None, consume: Callable[[Any], None] | None = None):
        self._iterator = iter(produce()) if produce is not None else None
        self._consume = consume

    def __iter__(self) -> Iterator:
        return self._iterator

    def put(self, item: Any) -> None:
        self._consume(item)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prefetch(produce: Callable[[], Iterable], maxsize: int, *, background: bool = True, name: str = "prefetch"):
    """A `Prefetch`, or with `background=False` the same iteration in the calling thread."""
    return Prefetch(produce, maxsize, name) if background else _Inline(produce=produce)


def drain(consume: Callable[[Any], None], maxsize: int, *, background: bool = True, name: str = "drain"):
    """A `Drain`, or with `background=False` each `put` consumed at once in the calling thread."""
    return Drain(consume, maxsize, name) if background else _Inline(consume=consume)
