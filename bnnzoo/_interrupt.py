"""Ctrl-C as a request to stop at a safe point: the handler shared by training and the search."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any


class StopRequest:
    """SIGINT state of a long loop that checkpoints.

    The first Ctrl-C sets :attr:`stop_requested` (and prints ``notice`` on stderr, if given): the
    loop finishes its step, saves and stops. Every later one sets :attr:`aborted` and raises
    ``KeyboardInterrupt`` at once (the state may be half updated, so nothing is saved), except
    while the loop is already stopping after an abort (:attr:`finishing`), when it is ignored.
    """

    def __init__(self, notice: str | None = None) -> None:
        self.notice = notice
        self.stop_requested = False  # a first Ctrl-C: stop after this step
        self.aborted = False  # a later Ctrl-C: stop at once, save nothing
        self.finishing = False  # the loop is handling the interrupt

    def handle(self, signum: int, frame: Any) -> None:
        """The SIGINT handler."""
        if not self.stop_requested:
            self.stop_requested = True
            if self.notice is not None:
                print(f"\n{self.notice}", file=sys.stderr, flush=True)
            return
        if self.aborted and self.finishing:
            return  # already stopping without saving
        self.aborted = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self, enabled: bool = True) -> Iterator[None]:
        """:meth:`handle` is the SIGINT handler inside the block (when ``enabled`` and in the main
        thread, where Python runs signal handlers); the previous handler is restored after it."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self.handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
