"""Time per pipeline stage, across threads, for `dagan animate --profile`.

Each stage's time is exclusive: a stage timed while another is open on the same thread (decode
inside detect/track, which pulls frames) is subtracted from the outer one. Stages on background
threads run concurrently with the networks, so the shares of wall time may add up to more than
100 %; "networks busy" is the share of wall time spent in depth+keypoints and the generator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["STAGES", "NETWORK_STAGES", "Profile"]

STAGES = ("decode", "detect/track", "crop", "depth+keypoints", "generator", "compose/paste", "encode")
NETWORK_STAGES = ("depth+keypoints", "generator")


class Profile:
    """Accumulates seconds per named stage (thread-safe) and the wall time between start and stop."""

    def __init__(self, overlapped: bool = True, clock=time.perf_counter):
        self.clock = clock
        self.overlapped = overlapped  # stages ran on background threads (the table says so)
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.frames = 0
        self.notes: list[str] = []  # extra lines for the table (e.g. how often the detector ran)
        self.wall = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._started: float | None = None

    def start(self) -> None:
        self._started = self.clock()

    def stop(self) -> None:
        if self._started is not None:
            self.wall = self.clock() - self._started
            self._started = None

    @contextmanager
    def stage(self, name: str):
        """Time the block as `name`, minus any stage nested inside it on this thread."""
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(0.0)  # time spent in nested stages
        begin = self.clock()
        try:
            yield
        finally:
            elapsed = self.clock() - begin
            nested = stack.pop()
            if stack:
                stack[-1] += elapsed
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - nested

    def iterate(self, name: str, items: Iterable) -> Iterator:
        """Yield from `items`, timing each step of the iteration as `name`."""
        iterator = iter(items)
        try:
            while True:
                with self.stage(name):
                    item = next(iterator, _END)
                if item is _END:
                    return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    @property
    def network_seconds(self) -> float:
        return sum(self.seconds.get(name, 0.0) for name in NETWORK_STAGES)

    @property
    def network_share(self) -> float:
        """Fraction of the wall time the networks were busy (0 before `stop`)."""
        return self.network_seconds / self.wall if self.wall > 0 else 0.0

    def table(self) -> str:
        """The per-stage table `--profile` prints (one line per stage, then wall and networks busy)."""
        frames = max(self.frames, 1)
        lines = [f"{'stage':<16}{'seconds':>9}{'ms/frame':>10}{'of wall':>9}"]
        for name in self.seconds:
            s = self.seconds[name]
            share = s / self.wall if self.wall > 0 else 0.0
            lines.append(f"{name:<16}{s:>9.2f}{1000 * s / frames:>10.1f}{share:>9.0%}")
        lines.append(f"{'wall':<16}{self.wall:>9.2f}{1000 * self.wall / frames:>10.1f}{1:>9.0%}")
        rate = self.frames / self.wall if self.wall > 0 else 0.0
        lines.append(f"networks busy {self.network_share:.0%} of the wall time "
                     f"({self.frames} frames, {rate:.2f} frames/s)")
        lines.extend(self.notes)
        if self.overlapped:
            lines.append("decode, detect/track and crop run on one background thread, compose/paste and encode on "
                         "another: their shares overlap the networks'")
        return "\n".join(lines)


_END = object()
