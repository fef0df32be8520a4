"""Worker processes for the participant level: each worker holds one image at a time, so the parent always knows
which image a worker was processing.

concurrent.futures cannot give this: one dead worker (kill -9, the OOM killer) breaks its pool and fails every
image, and after Ctrl-C its shutdown waits for the queued images. Here a dead worker fails only its own image and
a new worker takes its place; when the parent is interrupted it kills the workers at once and processes nothing
more. The workers ignore the terminal's Ctrl-C (the parent handles it), keep the default SIGTERM action (they stop
at once, even inside ANTs), and are killed by the kernel when the parent dies (PR_SET_PDEATHSIG, Linux).
Even one image runs in a worker: the parent stays free to answer a signal within a second, where ANTs in the
parent's own thread would hold it off until N4 or the registration returns.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_GRACE_SECONDS = 1.0  # SIGTERM, then SIGKILL after this


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits, however it exits (kill -9 too)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def how_it_ended(exitcode: int | None) -> str:
    """A worker's end in words, from multiprocessing's exit code (minus the signal number when killed).

    >>> how_it_ended(-9)
    'was killed by SIGKILL (signal 9; the out-of-memory killer sends it too)'
    >>> how_it_ended(1)
    'exited with code 1'
    """
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = "; the out-of-memory killer sends it too" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name} (signal {-exitcode}{hint})"
    return f"exited with code {exitcode}"


def _serve(
    conn: Connection,
    parent_pid: int,
    initializer: Callable[..., None],
    initargs: tuple,
    work: Callable[[Any], Any],
) -> None:
    """Worker loop: receive an item, send back (True, result) or (False, exception); stop when the pipe closes."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    initializer(*initargs)
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, work(item)))
        except Exception as exc:  # the parent re-raises it; a worker never decides to stop the run
            conn.send((False, exc))


class _Worker:
    def __init__(self, initializer: Callable[..., None], initargs: tuple, work: Callable[[Any], Any]):
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(
            target=_serve, args=(child, os.getpid(), initializer, initargs, work)
        )
        self.process.start()
        child.close()
        self.item: Any = None

    def give(self, item: Any) -> None:
        self.item = item
        self.conn.send(item)

    def answer(self) -> tuple[bool, Any] | None:
        """The worker's reply, or None when it died without one."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, ConnectionError):
            return None

    def stop(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_GRACE_SECONDS)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


def run_in_workers(
    items: Iterable[Any],
    nprocs: int,
    work: Callable[[Any], Any],
    on_death: Callable[[Any, str], Any],
    initializer: Callable[..., None],
    initargs: tuple = (),
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """`work(item)` for each item in up to `nprocs` workers (each started with `initializer(*initargs)`); an item
    whose worker died gives `on_death(item, how_it_ended)` instead. Results come in the order they finish, and
    `on_result` hears of each as it comes.

    An exception raised by `work` stops the run and is raised here; so is anything that interrupts the parent
    (KeyboardInterrupt, a SIGTERM handler's exception), after every worker has been ended."""
    queue = deque(items)
    started: list[_Worker] = []  # every worker not yet stopped, busy or idle
    busy: list[_Worker] = []
    results: list[Any] = []
    try:
        while queue or busy:
            while queue and len(busy) < nprocs:
                idle = [w for w in started if w not in busy]
                worker = idle[0] if idle else _Worker(initializer, initargs, work)
                if not idle:
                    started.append(worker)
                worker.give(queue.popleft())
                busy.append(worker)
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                busy.remove(worker)
                reply = worker.answer()
                if reply is None:
                    started.remove(worker)
                    worker.stop()
                    value = on_death(worker.item, how_it_ended(worker.process.exitcode))
                else:
                    done, value = reply
                    if not done:
                        raise value
                results.append(value)
                if on_result is not None:
                    on_result(value)
    finally:
        for worker in started:
            worker.stop()
    return results
