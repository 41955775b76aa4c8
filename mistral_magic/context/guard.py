"""Wall-clock bounds for describing values.

Describers are bounded by construction (see :mod:`describe`), but ``repr`` of an arbitrary
user object is user code and may be slow. Two layers keep one bad value from stalling a
request:

* a **hard per-value limit**: :func:`time_limit` raises :class:`DescribeTimeout` inside the
  slow Python code. Preferably with a one-shot ``SIGALRM`` timer (``signal.setitimer``; no
  overhead), used only where that is safe: on the main thread, on platforms with
  ``setitimer``, when nobody else has a ``SIGALRM`` handler or a running real-time timer.
  Otherwise, for values whose description may run user code, with a temporary
  ``sys.settrace`` hook that checks the clock on every traced line (about 4× slower code while
  active, so only then, and never when a debugger already traces). Otherwise no hard limit.
  ``DescribeTimeout`` derives from ``BaseException`` so an ``except Exception`` in user code
  does not swallow it. (C code that never returns to Python cannot be interrupted.)
* a **total deadline** (:class:`Deadline`): the collector checks it between values and stops
  describing once it has passed; the remaining values get a one-line label instead.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class DescribeTimeout(BaseException):
    """Raised inside a describer that ran past its time limit."""


class Deadline:
    """A point in time after which optional work is skipped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.perf_counter() + seconds

    def remaining(self) -> float:
        return self._end - time.perf_counter()

    def passed(self) -> bool:
        return time.perf_counter() >= self._end


_armed = threading.local()


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if getattr(_armed, "active", False):
        _armed.active = False
        raise DescribeTimeout()


def _can_use_alarm() -> bool:
    if not hasattr(signal, "setitimer") or not hasattr(signal, "SIGALRM"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None, _on_alarm):
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@contextmanager
def time_limit(seconds: float, *, allow_tracing: bool = True) -> Iterator[str]:
    """Raise :class:`DescribeTimeout` in the body after ``seconds`` (when possible).

    Yields the mechanism in use: ``"alarm"``, ``"trace"`` or ``"none"``.
    """
    if seconds <= 0:
        yield "none"
    elif _can_use_alarm():
        with _alarm(seconds):
            yield "alarm"
    elif allow_tracing and sys.gettrace() is None:
        with _trace(seconds):
            yield "trace"
    else:
        yield "none"


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _armed.active = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _armed.active = False  # a late alarm becomes a no-op before we cancel it
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def _trace(seconds: float) -> Iterator[None]:
    end = time.perf_counter() + seconds
    clock = time.perf_counter

    def check(frame: FrameType, event: str, arg: Any) -> Any:
        if clock() > end:
            raise DescribeTimeout()  # also makes Python drop this trace function
        return check

    sys.settrace(check)
    try:
        yield
    finally:
        sys.settrace(None)
