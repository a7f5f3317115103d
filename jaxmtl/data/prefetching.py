"""A prefetching batch iterator: batches are produced (read, augmented, stacked, put on the
device) by a background thread while the jitted step runs.

NumPy file reads, PIL decoding and most NumPy work release the GIL, so one
producer thread overlaps them with XLA's execution; ``size`` batches wait in the
queue. The producer's exceptions are re-raised in the consumer, and closing the
iterator (or leaving a ``for`` loop early) stops the thread. A thread whose consumer
was left by an exception (Ctrl-C: the suspended iterator lives on in the traceback)
is stopped at the interpreter's exit, before JAX's own teardown: a daemon thread
still producing while the interpreter finalises could crash it.
"""
from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import jax

_DONE = object()
_RUNNING: set[tuple[threading.Event, threading.Thread]] = set()
"""The producers running now: their stop events and threads."""


@atexit.register
def stop_all(timeout: float = 5.0) -> None:
    """Stops every producer thread still running (registered to run at exit)."""
    running = list(_RUNNING)
    for stop, _ in running:
        stop.set()
    for _, thread in running:
        thread.join(timeout)


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(batches: Iterable[Any], size: int = 2, device_put: bool = True) -> Iterator[Any]:
    """Yields the items of ``batches`` (``jax.device_put`` when ``device_put``), ``size`` ahead."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not put(jax.device_put(batch) if device_put else batch):
                    return
            put(_DONE)
        except BaseException as err:  # re-raised in the consumer
            put(_Raised(err))

    thread = threading.Thread(target=produce, daemon=True, name="jaxmtl-prefetch")
    entry = (stop, thread)
    _RUNNING.add(entry)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
        _RUNNING.discard(entry)
