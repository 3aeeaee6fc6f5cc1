"""SIGTERM and SIGINT that never cut an attach in half.

Inside a critical section the signal is only noted; the section runs to its
end (an attach is bounded by its locks' timeouts) and the caller then stops.
Elsewhere the handler raises at once. Handlers run in the main thread only,
which is where the sections are.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator, Optional


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def keep_from_this_thread() -> None:
    """Call first in every worker thread: the kernel then delivers stop signals to the
    main thread, whose blocking read of the event stream they must interrupt (a signal
    taken by another thread only sets a flag the blocked main thread never looks at)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class StopRequests:
    def __init__(self, make_exception: Callable[[int], BaseException]) -> None:
        self.make_exception = make_exception
        self.pending: Optional[int] = None
        self._depth = 0
        self._raised = False  # once stopping, later signals change nothing

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        if self._raised:
            return
        if self._depth:
            self.pending = signum
            return
        self._raised = True
        raise self.make_exception(signum)

    @contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def raise_if_pending(self) -> None:
        if self.pending is not None and not self._depth and not self._raised:
            self._raised = True
            raise self.make_exception(self.pending)
