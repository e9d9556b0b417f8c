"""The runner: runs claimed tasks, one at a time or N at once, and hands back their outcomes.

With ``concurrency=1`` a task runs in the calling thread (the batch's own), exactly as bgtask always
ran: a ``SIGALRM`` timer stops it at its ``timeout`` (which also interrupts blocking I/O), and an
``async def`` task runs on an event loop of that thread.

With ``concurrency=N`` (N > 1) up to N tasks are in flight at once: sync tasks on a pool of N
threads, ``async def`` tasks as coroutines on one event loop in a thread of its own. Their sum never
exceeds N. A sync task's time limit is raised in its thread at its next Python instruction (not
inside a blocking C call; ``bgtask.timeouts``); an async task is cancelled at its next ``await``.
Each thread closes its database connections when the batch ends, and drops a broken one after a
task.

The runner writes nothing: each finished task's ``Outcome`` is queued for the batch's thread,
which gives it to the completer (``bgtask.worker.completer``). So every outcome is written by one
writer, in one thread, on one connection, however many tasks ran at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from bgtask import current, timeouts
from bgtask.exceptions import TaskAbandoned, TaskCancelled
from bgtask.models import Task
from bgtask.worker.execution import (
    Outcome,
    aexecute,
    close_loop,
    execute,
    is_async,
    outcome_of_error,
)

logger = logging.getLogger("bgtask.runner")


# What a runner tells the batch when a task starts and ends (the heartbeat's bookkeeping).
StartedCallback = Callable[[int], None]
FinishedCallback = Callable[[int], None]
# The batch's rule for starting a claimed task now: its time limit, or None (not now).
Admit = Callable[[Task], "timeouts.Limit | None"]


@dataclass(slots=True)
class _Running:
    """One task in flight: where it runs, so that a lost lease can stop it."""

    task: Task
    thread_id: int | None = None  # a sync task's thread
    coroutine_task: asyncio.Task[Any] | None = None  # an async task's asyncio.Task
    loop: asyncio.AbstractEventLoop | None = None
    stopped: bool = False  # TaskAbandoned or TaskCancelled was sent to it (at most once)
    ending: bool = False  # its function has returned: no stop is sent any more


class Runner:
    """Runs up to ``concurrency`` tasks at once (see the module's docstring).

    >>> runner = Runner(concurrency=8, on_started=beat.task_started, on_finished=beat.task_ended)
    >>> while runner.free_slots(): runner.start(task, limit)
    >>> for outcome in runner.finished(timeout=0.5): completer.record(outcome)
    >>> runner.close()
    """

    def __init__(
        self,
        concurrency: int,
        *,
        on_started: StartedCallback | None = None,
        on_finished: FinishedCallback | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int of 1 or more, got {concurrency!r}.")
        self.concurrency = concurrency
        self.on_started = on_started or (lambda task_id: None)
        self.on_finished = on_finished or (lambda task_id: None)
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._in_flight = 0
        # concurrency 1: an event loop for the calling thread's async tasks, made at the first
        # one. Not made the thread's current loop (asyncio.Runner would, and would leave the
        # thread without one afterwards, which breaks asyncio.get_event_loop() callers there).
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        # Whether each task name is an ``async def`` one, looked up once per batch.
        self._async_names: dict[str, bool] = {}
        # concurrency N: the pool's threads and their work queue, and one event loop thread.
        self._work: queue.SimpleQueue[tuple[Task, timeouts.Limit] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_tasks: set[asyncio.Task[Outcome]] = set()
        # Set when the batch leaves tasks in flight behind (past a hard deadline): close() then
        # does not wait for their threads.
        self.abandon_in_flight = False
        # refill_from(): the batch's claimed tasks, and its rule for starting one.
        self._ready: deque[Task] | None = None
        self._admit: Admit | None = None

    # -- what the batch asks --------------------------------------------------------------------

    def free_slots(self) -> int:
        if self.concurrency == 1:
            # No lock: the task runs in the caller's thread, the only one that changes the count.
            return 1 - self._in_flight
        # Under the lock: a pool thread queues an outcome and frees its slot in one hold, so the
        # batch never sees the outcome with its slot still taken (and then waits a slice).
        with self._lock:
            return self.concurrency - self._in_flight

    def in_flight(self) -> int:
        if self.concurrency == 1:
            return self._in_flight
        with self._lock:
            return self._in_flight

    def has_outcomes(self) -> bool:
        """True when a task's outcome waits to be taken with ``finished()``."""
        return not self._done.empty()

    def start_ready(self, ready: deque[Task], admit: Admit) -> bool | None:
        """Concurrency N: start the first task of ``ready`` (the batch's claimed tasks) if a slot
        is free and ``admit`` gives it a time limit. True: started; False: no slot or nothing
        ready (a pool thread may have taken it); None: ``admit`` refused it (it stays first)."""
        with self._lock:
            if not ready or self._in_flight >= self.concurrency:
                return False
            task = ready[0]
            limit = admit(task)
            if limit is None:
                return None
            ready.popleft()  # started: never released
            self._in_flight += 1
            self._running[task.id] = _Running(task)
        self._dispatch(task, limit)
        return True

    def refill_from(self, ready: deque[Task], admit: Admit) -> None:
        """Let a pool thread whose task ended start the next sync task of ``ready`` itself,
        when ``admit`` allows it, without waiting for the batch's thread (which may be inside a
        claim or a group write): the slot is not left idle for a round trip."""
        self._ready, self._admit = ready, admit

    def start(self, task: Task, limit: timeouts.Limit) -> Outcome | None:
        """Start ``task`` (a free slot must be there). With concurrency 1 it runs to its end
        before this returns, and its ``Outcome`` is returned (not queued for ``finished``)."""
        if self.concurrency == 1:
            return self._run_inline(task, limit)
        with self._lock:
            if self._in_flight >= self.concurrency:
                raise RuntimeError("Runner.start() called with no free slot.")
            self._in_flight += 1
            self._running[task.id] = _Running(task)
        self._dispatch(task, limit)
        return None

    def _dispatch(self, task: Task, limit: timeouts.Limit) -> None:
        """Hand a started task (slot taken) to the event loop if it is async, else to a thread."""
        if is_async(task):
            self._start_async(task, limit)
        else:
            self._start_thread(task, limit)

    def finished(self, timeout: float | None = 0.0) -> list[Outcome]:
        """The outcomes of tasks that ended since the last call. Waits up to ``timeout`` seconds
        (None: until one ends) when none has ended yet and some are in flight."""
        done = self._done
        if done.empty():
            if timeout == 0.0 or not self.in_flight():
                return []
            try:
                outcomes = [done.get(timeout=timeout)]
            except queue.Empty:
                return []
        else:
            outcomes = []
        while not done.empty():  # only the batch's thread takes from this queue
            outcomes.append(done.get_nowait())
        return outcomes

    def stop_abandoned(self, task_ids: set[int]) -> int:
        """Stop the tasks in flight whose lease was lost (another worker took them over): raise
        ``TaskAbandoned`` in a sync task's thread, cancel an async task. Returns how many."""
        return self._stop(
            task_ids,
            TaskAbandoned,
            "this worker's lease was lost and another worker took the task over; stopping this "
            "run of it (TaskAbandoned)",
        )

    def stop_cancelled(self, task_ids: set[int]) -> int:
        """Stop the tasks in flight whose cancel was asked (``bgtask.cancel``): ``TaskCancelled``
        in a sync task's thread, an async task cancelled. Returns how many."""
        for task_id in task_ids:
            current.cancel_seen(task_id)
        return self._stop(task_ids, TaskCancelled, "a cancel was asked; stopping it")

    def _stop(self, task_ids: set[int], error: type[BaseException], why: str) -> int:
        stopped = 0
        with self._lock:
            for task_id in task_ids:
                running = self._running.get(task_id)
                if running is None or running.stopped or running.ending:
                    continue
                if running.coroutine_task is not None and running.loop is not None:
                    running.loop.call_soon_threadsafe(running.coroutine_task.cancel, error())
                elif running.thread_id is not None:
                    timeouts.raise_in_thread(running.thread_id, error)
                else:
                    continue
                running.stopped = True
                stopped += 1
                logger.warning("Task %s #%s: %s.", running.task.task_name, task_id, why)
        return stopped

    def close(self) -> None:
        """End the pool's threads and the event loop (each closes its database connections).
        Call once nothing is in flight."""
        wait = None if not self.abandon_in_flight else 0.0
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join(wait)
        self._threads.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(wait)
            self._loop = self._loop_thread = None
        if self._inline_loop is not None:
            close_loop(self._inline_loop)
            self._inline_loop = None

    # -- running --------------------------------------------------------------------------------

    def _began(self, task: Task) -> _Running | None:
        with self._lock:
            running = self._running.get(task.id)
            if running is not None:
                running.thread_id = threading.get_ident()
        self.on_started(task.id)
        return running

    def _no_more_stops(self, task_id: int) -> None:
        """The task's function has returned: send it no stop from now on, and drop one that was
        sent but not raised yet."""
        with self._lock:
            running = self._running.get(task_id)
            if running is None:
                return
            running.ending = True
            if running.stopped and running.thread_id is not None:
                timeouts.clear_pending_in_thread(running.thread_id)

    def _execute_here(self, task: Task, limit: timeouts.Limit) -> Outcome:
        """Run ``task`` in this thread. A stop (``TaskAbandoned``, ``TaskCancelled``) is sent at
        most once and can land anywhere up to ``_no_more_stops``: inside the task it becomes the
        outcome; after the function returned, the outcome stands."""
        outcome = None
        try:
            try:
                self._began(task)
                outcome = execute(task, limit)  # async tasks go to the event loop's thread
            finally:
                self._no_more_stops(task.id)
        except (TaskAbandoned, TaskCancelled) as exc:
            if outcome is None:
                outcome = outcome_of_error(task, exc)
        return outcome

    def _ended(self, outcome: Outcome) -> tuple[Task, timeouts.Limit] | None:
        """Hand ``outcome`` to the batch and free its slot, in one hold of the lock (whoever sees
        the slot free can also take the outcome); or, for a pool thread, keep the slot and
        return the next ready task it may start (``refill_from``)."""
        task_id = outcome.task.id
        following = None
        with self._lock:
            self._running.pop(task_id, None)
            self._done.put(outcome)
            ready, admit = self._ready, self._admit
            # A pool thread takes a sync task, the event loop's thread an async one.
            if (
                ready
                and admit is not None
                and is_async(ready[0]) == (threading.current_thread() is self._loop_thread)
            ):
                task = ready[0]
                limit = admit(task)
                if limit is not None:
                    ready.popleft()  # started: never released
                    self._running[task.id] = _Running(task)
                    following = (task, limit)
            if following is None:
                self._in_flight -= 1
        self.on_finished(task_id)
        return following

    def _run_inline(self, task: Task, limit: timeouts.Limit) -> Outcome:
        """Concurrency 1: ``_execute_here``'s work with two lock holds instead of five, since the
        task runs in the caller's thread (the no-op drain pays for every one).

        A stop is sent at most once and may land anywhere until ``ending`` is set under the
        lock: inside the task it is the outcome; in the bookkeeping, the outer ``finally``
        redoes what it cut short. A failure of the runner itself (not of the task) frees the
        slot and goes up to the batch; the task then stays running until its lease ends."""
        thread_id = threading.get_ident()
        running = _Running(task, thread_id=thread_id)
        with self._lock:
            if self._in_flight:
                raise RuntimeError("Runner.start() called with no free slot.")
            self._in_flight = 1
            self._running[task.id] = running
        outcome: Outcome | None = None
        ended = False
        try:
            try:
                self.on_started(task.id)
                asynchronous = self._async_names.get(task.task_name)
                if asynchronous is None:
                    asynchronous = self._async_names[task.task_name] = is_async(task)
                if asynchronous:
                    if self._inline_loop is None:
                        self._inline_loop = asyncio.new_event_loop()
                    outcome = self._inline_loop.run_until_complete(
                        self._inline_aexecute(task, limit)
                    )
                else:
                    outcome = execute(task, limit)
            finally:
                with self._lock:
                    running.ending = True
                    if running.stopped:
                        timeouts.clear_pending_in_thread(thread_id)
                    self._running.pop(task.id, None)
                    self._in_flight = 0
                ended = True
        except (TaskAbandoned, TaskCancelled) as exc:
            if outcome is None:
                outcome = outcome_of_error(task, exc)
        finally:
            if not ended:
                with self._lock:
                    self._running.pop(task.id, None)
                    self._in_flight = 0
            self.on_finished(task.id)
        assert outcome is not None  # set by the task's run or by its stop
        return outcome

    def _start_thread(self, task: Task, limit: timeouts.Limit) -> None:
        self._work.put((task, limit))
        with self._lock:
            busy = self._in_flight - sum(1 for r in self._running.values() if r.coroutine_task)
        if len(self._threads) < min(self.concurrency, busy):
            thread = threading.Thread(
                target=self._thread_main, name=f"bgtask-task-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _thread_main(self) -> None:
        try:
            item = self._work.get()
            while item is not None:
                task, limit = item
                try:
                    outcome = self._execute_here(task, limit)
                except BaseException as exc:  # the runner's own failure: still an outcome
                    outcome = outcome_of_error(task, exc)
                _drop_broken_connections()
                item = self._ended(outcome) or self._work.get()
        finally:
            connections.close_all()  # this thread's own connections

    def _start_async(self, task: Task, limit: timeouts.Limit) -> None:
        if self._loop is None:
            ready = threading.Event()

            def loop_main() -> None:
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                self._loop = loop
                ready.set()
                try:
                    loop.run_forever()
                finally:
                    close_loop(loop)
                    connections.close_all()

            self._loop_thread = threading.Thread(
                target=loop_main, name="bgtask-event-loop", daemon=True
            )
            self._loop_thread.start()
            ready.wait()
        assert self._loop is not None  # loop_main set it before ready
        asyncio.run_coroutine_threadsafe(self._aexecute(task, limit), self._loop).add_done_callback(
            lambda future: None
        )

    async def _inline_aexecute(self, task: Task, limit: timeouts.Limit) -> Outcome:
        with self._lock:
            running = self._running.get(task.id)
            if running is not None:  # a lost lease cancels it rather than raising in the thread
                running.coroutine_task = asyncio.current_task()
                running.loop = asyncio.get_running_loop()
        return await aexecute(task, limit)

    async def _aexecute(self, task: Task, limit: timeouts.Limit) -> Outcome:
        current = asyncio.current_task()
        with self._lock:
            running = self._running.get(task.id)
            if running is not None:
                running.coroutine_task, running.loop = current, asyncio.get_running_loop()
        self.on_started(task.id)
        try:
            outcome = await aexecute(task, limit)
        except BaseException as exc:  # the runner's own failure: still an outcome, never lost
            outcome = outcome_of_error(task, exc)
        following = self._ended(outcome)
        if following is not None:  # the next ready async task, on this loop at once
            coroutine_task = asyncio.get_running_loop().create_task(self._aexecute(*following))
            # The loop keeps only a weak reference to a task: hold it until it is done.
            self._loop_tasks.add(coroutine_task)
            coroutine_task.add_done_callback(self._loop_tasks.discard)
        return outcome


def _drop_broken_connections() -> None:
    """After a task on a pool thread: close a connection the task left broken or inside a
    transaction, so the thread's next task starts clean."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block or (connection.errors_occurred and not _usable(connection)):
            with contextlib.suppress(Exception):
                connection.close()
        connection.errors_occurred = False


def _usable(connection: BaseDatabaseWrapper) -> bool:
    try:
        return connection.is_usable()
    except Exception:
        return False
