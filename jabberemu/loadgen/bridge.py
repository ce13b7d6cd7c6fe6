"""The one place where gevent (Locust) meets asyncio (slixmpp, zeep, aiohttp).

Design (chosen by measurement, ``bench/bridge_spike.py``): **one real OS thread per Locust
process runs one asyncio loop**; greenlets submit coroutine *functions* to it and wait on the
result; the loop thread wakes the gevent side through ONE ref'd ``hub.loop.async_()`` watcher plus
deques of finished jobs and measurements. Measurements are timed inside the loop, pushed into a
deque and fired as ``events.request`` in batches by one pump greenlet; a measurement does not wake the
gevent side by itself (:data:`SAMPLE_FLUSH_S`), and :meth:`AsyncioBridge.flush` fires every queued one at
once (a worker's last statistics).

Why a thread and not a child process, with the spike's figures (``bench/bridge_spike.py``) and the
design's measured weakness (the GIL convoy; remedy ``--processes``): docs/ARCHITECTURE.md, "The
gevent/asyncio bridge". The bridge keeps strong references to every task it starts (asyncio holds
tasks weakly: a version without them lost 143 of 6,000 results to the GC).

Traps handled here (ENGINEERING.md, "Locust (gevent) and asyncio"):

1. the thread is started with gevent's original ``_thread.start_new_thread``;
2. the loop's selector is built on the original ``select.epoll`` and its self-pipe on the original
   ``_socket.socketpair`` (gevent's selector dies with ``LoopExit`` in a foreign thread);
3. ``loop.getaddrinfo``/``getnameinfo`` call the original resolver synchronously and the default
   executor runs inline (the patched ``ThreadPoolExecutor`` would spawn greenlets nobody runs);
   1-3 live in :mod:`jabberemu.loadgen.bridgeloop`;
4. greenlets are woken through one ref'd async watcher (thread-safe ``send()``) and a deque; the
   ref'd watcher also keeps an otherwise idle hub from raising ``LoopExit``;
5. on ``GreenletExit`` or timeout the task is cancelled with ``call_soon_threadsafe``;
6. :func:`attach` starts the bridge in ``events.init`` (``--processes`` forks after import) and
   stops it on ``test_stop``/``quitting``.

Guard rails: :meth:`AsyncioBridge.submit` from the loop thread and ``asyncio.run()`` /
``run_until_complete()`` from a greenlet while the bridge runs (locustio/locust#2383) raise
:class:`BridgeError` instead of hanging.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import gevent
import gevent.event

from jabberemu import errors
from jabberemu.core.metrics import Measurement
from jabberemu.loadgen.bridgeloop import GC_CLOCK, BridgeLoop, allocate_lock, get_ident, start_new_thread

__all__ = [
    "AsyncioBridge",
    "BridgeError",
    "BridgeErrorReason",
    "BridgeHandle",
    "BridgeState",
    "BridgeTimeoutError",
    "LocustSample",
    "attach",
]

logger = logging.getLogger(__name__)

#: Period of the loop-lag probe timer (s). Tests may lower it.
LAG_PROBE_INTERVAL_S = 0.1
#: How many lag samples are kept (about 60 s at the default interval).
LAG_SAMPLES_KEPT = 600
#: Upper bound on measurements fired per pump round before yielding to other greenlets.
PUMP_BATCH = 500
#: How long a measurement made on the loop may wait before the gevent side fires it into Locust (s, plus
#: the loop's lag; our choice). A measurement does not wake the gevent side by itself: the first of a
#: batch arms one timer on the loop, and any earlier wake-up (a finished call handed back) takes the
#: batch along. Waking the hub for every loop iteration that measured something cost a thread hand-over
#: per XEP-0199 ping of an idle swarm (250 a second at 15,000 clients); on a VM whose cores are cold
#: after a short sleep a wake-up costs 2-3x the same work done back to back (bench/wake_cost.py,
#: BENCHMARKS.md "Machine and conditions"; the change's effect: section 7). Response times are the
#: measured ones; Locust counts a sample in the second it arrives (``StatsEntry.log``), so one may move
#: to the next second's request count. Tests may raise it.
SAMPLE_FLUSH_S = 0.05
#: Submitted coroutines started per loop iteration (our choice). When Locust stops a swarm, every
#: user's ``on_stop`` submits its sign-out at once: 7,500 per worker in the 15,000-client failover,
#: whose first steps (stream close, CPA logout request, connect) then ran in ONE loop iteration, a
#: stall of up to 2.1 s that delayed every timer behind it (0.36-0.49 s at most with the slices;
#: BENCHMARKS.md, section 7). A first step costs ~0.2-0.4 ms, so a slice takes ~10-20 ms; sockets and
#: timers are handled between slices (an iteration may hold a slice and :data:`MAX_EVENTS
#: <jabberemu.eventloop.MAX_EVENTS>` ready sockets).
INBOX_SLICE = 48

_STARTED = object()  # markers the loop thread pushes through the done deque
_EXITED = object()


class BridgeState(enum.Enum):
    """Life cycle of an :class:`AsyncioBridge`."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class BridgeErrorReason(enum.Enum):
    """Why the bridge refused or failed a call."""

    NOT_RUNNING = "not-running"
    LOOP_THREAD = "called-from-loop-thread"
    NESTED_LOOP = "nested-event-loop"
    TIMEOUT = "timeout"
    STOPPED = "stopped-while-waiting"
    START_FAILED = "start-failed"


class BridgeError(errors.BridgeError):
    """The bridge refused a call or could not complete it.

    Attributes:
        reason: a :class:`BridgeErrorReason`.
    """

    def __init__(self, message: str, *, reason: BridgeErrorReason) -> None:
        super().__init__(message)
        self.reason = reason


class BridgeTimeoutError(BridgeError, TimeoutError):
    """A submitted coroutine did not finish within ``timeout_s``; its task was cancelled.

    Attributes:
        timeout_s: the bound that expired.
    """

    def __init__(self, message: str, *, timeout_s: float) -> None:
        super().__init__(message, reason=BridgeErrorReason.TIMEOUT)
        self.timeout_s = timeout_s


class LocustSample(NamedTuple):
    """One measurement taken in the loop thread, fired as Locust's ``events.request``.

    ``start_ts`` is Unix epoch seconds, ``response_time_ms`` was measured in the loop next to
    the socket (ENGINEERING.md: greenlet-side timing adds 15-20 ms on a busy box).
    """

    request_type: str
    name: str
    response_time_ms: float
    response_length: int
    exception: BaseException | None
    context: dict[str, Any]
    start_ts: float


class BridgeHandle:
    """A coroutine submitted with :meth:`AsyncioBridge.submit_nowait`; wait on it from a greenlet."""

    __slots__ = ("_bridge", "_fn", "_args", "_result", "_task", "_cancelled")

    def __init__(self, bridge: AsyncioBridge, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        self._bridge = bridge
        self._fn = fn
        self._args = args
        self._result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._task: asyncio.Future[Any] | None = None
        self._cancelled = False

    def done(self) -> bool:
        """Return True once the result or the exception is available on the gevent side."""
        return bool(self._result.ready())

    def cancel(self) -> None:
        """Ask the loop to cancel the task (thread-safe, no wait)."""
        self._cancelled = True
        self._bridge._cancel_soon(self)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block the calling greenlet (only) until the coroutine finishes or ``timeout_s`` passes; unlike
        :meth:`get`, a timeout leaves the task running.

        Returns:
            True once the result or the exception is available.
        """
        self._result.wait(timeout_s)
        return bool(self._result.ready())

    def get(self, timeout_s: float | None = None) -> Any:
        """Block the calling greenlet (only) until the coroutine finishes.

        Args:
            timeout_s: bound in seconds; None waits forever.

        Returns:
            The coroutine's return value.

        Raises:
            BridgeTimeoutError: after ``timeout_s``; the task is cancelled in the loop.
            BridgeError: the bridge stopped while waiting (reason STOPPED).
            BaseException: whatever the coroutine raised, re-raised in the greenlet.
            gevent.GreenletExit: the greenlet was killed; the task is cancelled in the loop.
        """
        try:
            self._result.wait(timeout_s)  # returns on timeout; an outer gevent.Timeout still raises
        except BaseException:  # GreenletExit, an outer Timeout: the task must not outlive its waiter
            if not self._result.ready():
                self.cancel()
            raise
        if not self._result.ready():
            self.cancel()
            raise BridgeTimeoutError(f"{getattr(self._fn, '__qualname__', self._fn)!s} did not finish within "
                                     f"{timeout_s} s; task cancelled", timeout_s=timeout_s or 0.0)
        return self._result.get(block=False)


class AsyncioBridge:
    """One asyncio loop in one real OS thread, driven from greenlets.

    Args:
        fire: called on the gevent side with keyword arguments of Locust's ``events.request``
            for each measurement (usually ``environment.events.request.fire``); None drops them.
    """

    def __init__(self, fire: Callable[..., Any] | None = None) -> None:
        self.fire = fire
        self.state = BridgeState.NEW
        self._loop: BridgeLoop | None = None
        self._loop_thread_id: int | None = None
        self._owner_thread_id: int | None = None
        self._watcher: Any = None
        self._inbox: collections.deque[BridgeHandle] = collections.deque()
        self._inbox_scheduled = False
        self._notify_scheduled = False  # loop thread only
        self._flush_scheduled = False  # loop thread only
        self._tasks: set[asyncio.Future[Any]] = set()  # loop thread only
        self._done: collections.deque[tuple[BridgeHandle, bool, Any]] = collections.deque()
        self._samples: collections.deque[LocustSample | tuple[Measurement, float]] = collections.deque()
        self._samples_ready = gevent.event.Event()
        self._thread_exited = gevent.event.Event()
        self._thread_started = gevent.event.Event()
        self._thread_lock = allocate_lock()
        self._pump: gevent.Greenlet | None = None
        self._lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=LAG_SAMPLES_KEPT)
        self._health_mark = time.monotonic()
        self._cpu_mark = (time.monotonic(), time.process_time())
        self.samples_fired = 0

    # ---- life cycle (gevent side) ------------------------------------------------------------
    def start(self, timeout_s: float = 5.0) -> None:
        """Start the loop thread and wait until the loop runs.

        Raises:
            BridgeError: already running, or the loop did not come up within ``timeout_s``.
        """
        if self.state in (BridgeState.RUNNING, BridgeState.STOPPING):
            raise BridgeError("bridge already running", reason=BridgeErrorReason.START_FAILED)
        self._owner_thread_id = get_ident()
        self._cpu_mark = (time.monotonic(), time.process_time())  # after a --processes fork, too
        self._watcher = gevent.get_hub().loop.async_(ref=True)
        self._watcher.start(self._on_wakeup)
        self._inbox_scheduled = False
        self._thread_exited.clear()
        self._thread_started.clear()
        self._lags.clear()
        self._health_mark = time.monotonic()
        GC_CLOCK.install()
        self._thread_lock.acquire()
        start_new_thread(self._thread_main, ())
        if not self._thread_started.wait(timeout_s) or self._thread_exited.is_set():
            self._thread_exited.wait(timeout_s)
            self._watcher.stop()
            self._watcher = None
            raise BridgeError("bridge loop did not start", reason=BridgeErrorReason.START_FAILED)
        self._pump = gevent.spawn(self._pump_samples)
        self.state = BridgeState.RUNNING
        _RUNNING_OWNERS[id(self)] = self._owner_thread_id
        _install_nested_run_guard()
        logger.debug("bridge loop running in thread %s", self._loop_thread_id)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Cancel every task in the loop, stop it, join its thread and flush measurements.

        Waiting greenlets get :class:`BridgeError` (reason STOPPED). Safe to call twice.

        Returns:
            True if the thread exited within ``timeout_s``.
        """
        if self.state is not BridgeState.RUNNING:
            return self.state is not BridgeState.STOPPING
        self.state = BridgeState.STOPPING
        _RUNNING_OWNERS.pop(id(self), None)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._begin_shutdown, timeout_s * 0.8)
        exited = self._thread_exited.wait(timeout_s)
        joined = exited and self._thread_lock.acquire(timeout=1.0)
        if joined:
            self._thread_lock.release()
        self._on_wakeup()  # results and samples pushed last
        self._fail_pending()
        if self._pump is not None:
            self._drain_samples(limit=None)
            self._pump.kill(block=False)
            self._pump = None
        self._watcher.stop()
        self._watcher.close()
        self._watcher = None
        self.state = BridgeState.STOPPED
        if not joined:
            logger.warning("bridge loop thread did not exit within %.1f s", timeout_s)
        return bool(joined)

    # ---- submitting (gevent side) ------------------------------------------------------------
    def submit_nowait(self, coro_fn: Callable[..., Awaitable[Any]], *args: Any) -> BridgeHandle:
        """Schedule ``coro_fn(*args)`` on the loop; return at once.

        Raises:
            BridgeError: not running (NOT_RUNNING) or called from the loop thread (LOOP_THREAD).
        """
        self._check_caller()
        handle = BridgeHandle(self, coro_fn, args)
        self._inbox.append(handle)
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._drain_inbox)
        return handle

    def submit(self, coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout_s: float | None = 30.0) -> Any:
        """Run ``coro_fn(*args)`` on the loop and block the calling greenlet until it returns.

        Returns:
            The coroutine's result. Raises what :meth:`BridgeHandle.get` raises.
        """
        return self.submit_nowait(coro_fn, *args).get(timeout_s)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a plain callable in the loop thread, fire and forget (errors go to the loop's log)."""
        self._check_caller(allow_loop_thread=True)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def _check_caller(self, *, allow_loop_thread: bool = False) -> None:
        if self.state is not BridgeState.RUNNING:
            raise BridgeError(f"bridge is {self.state.value}", reason=BridgeErrorReason.NOT_RUNNING)
        if not allow_loop_thread and get_ident() == self._loop_thread_id:
            raise BridgeError("submit() called from the bridge loop thread would deadlock; await the "
                              "coroutine instead", reason=BridgeErrorReason.LOOP_THREAD)

    def _cancel_soon(self, handle: BridgeHandle) -> None:
        loop = self._loop
        if loop is not None and self.state is not BridgeState.STOPPED and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._cancel_in_loop, handle)
            except RuntimeError:  # loop closed between the check and the call
                pass

    # ---- measurements (loop side, thread-safe) -----------------------------------------------
    def record(self, request_type: str, name: str, response_time_ms: float, *, response_length: int = 0,
               exception: BaseException | None = None, context: dict[str, Any] | None = None,
               start_ts: float | None = None) -> None:
        """Queue one measurement for Locust; call it in the loop thread where it was timed."""
        self.record_sample(LocustSample(request_type, name, response_time_ms, response_length, exception,
                                        context or {}, time.time() if start_ts is None else start_ts))

    def record_sample(self, sample: LocustSample) -> None:
        """Queue a ready-made :class:`LocustSample` (thread-safe): fired about :data:`SAMPLE_FLUSH_S` later
        (plus the loop's lag) when recorded in the loop thread, at once from any other thread."""
        self._samples.append(sample)
        self._flush_later()

    def record_measurement(self, client_id: str, measurement: Measurement) -> None:
        """The runtime's measurement callback: queue ``measurement`` as it is, with the wall-clock time;
        the pump fires it into Locust (``context`` = its node) as :meth:`record_sample` says. Thread-safe;
        the one hand-off of a measurement to the gevent side."""
        self._samples.append((measurement, time.time()))
        self._flush_later()

    def _flush_later(self) -> None:
        """Wake the gevent side for queued samples: from the loop thread once per :data:`SAMPLE_FLUSH_S`
        at most (one timer per batch); from any other thread at once."""
        if get_ident() != self._loop_thread_id:
            self._notify_gevent()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_later(SAMPLE_FLUSH_S, self._flush_samples)

    def _flush_samples(self) -> None:
        self._flush_scheduled = False
        if self._samples and self._watcher is not None:
            self._watcher.send()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Fire every measurement recorded so far into Locust now (gevent side): one round trip through
        the loop, so that what its thread recorded before the call is queued, then the queue drained here
        rather than by the pump greenlet. A worker calls it before it sends its last statistics."""
        if self.state is BridgeState.RUNNING:
            try:
                self.submit(_nothing, timeout_s=timeout_s)
            except BridgeError:  # stopped meanwhile, or the loop did not answer: fire what is queued
                logger.debug("bridge flush without its round trip", exc_info=True)
        self._drain_samples(limit=None)

    @contextmanager
    def measure(self, request_type: str, name: str, context: dict[str, Any] | None = None) -> Iterator[None]:
        """Time the body (use it inside a coroutine on the loop) and :meth:`record` it.

        An exception from the body is recorded as the failure and re-raised.
        """
        start_ts = time.time()
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.record(request_type, name, (time.perf_counter() - t0) * 1000.0, exception=exc,
                        context=context, start_ts=start_ts)
            raise
        self.record(request_type, name, (time.perf_counter() - t0) * 1000.0, context=context, start_ts=start_ts)

    # ---- generator health --------------------------------------------------------------------
    def health_interval(self, stall_ms: float) -> tuple[float | None, float, float, float]:
        """The loop's health since the previous call: (worst probe lateness ms or None without a probe,
        total lateness of the probes later than ``stall_ms``, garbage collection ms, longest
        collection ms). Called once a second by the run-data collector (``report.health``)."""
        now = time.monotonic()
        since, self._health_mark = self._health_mark, now
        lags = [lag for ts, lag in self._lags.copy() if since < ts <= now]
        gc_ms, gc_max_ms = GC_CLOCK.take()
        return (max(lags) if lags else None, sum(lag for lag in lags if lag > stall_ms), gc_ms, gc_max_ms)

    def loop_lag_ms(self, percentile: float = 99.0, window_s: float = 10.0) -> float | None:
        """Lateness of the periodic probe timer: the ``percentile`` over the last ``window_s``.

        Returns:
            Milliseconds, or None when the window holds no sample yet.
        """
        horizon = time.monotonic() - window_s
        lags = sorted(lag for ts, lag in self._lags.copy() if ts >= horizon)
        if not lags:
            return None
        rank = max(0, math.ceil(percentile / 100.0 * len(lags)) - 1)
        return lags[rank]

    def cpu_percent(self) -> float:
        """Process CPU (all threads) since the previous call, in percent of one core."""
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        return 0.0 if now <= then else 100.0 * (cpu - cpu_then) / (now - then)

    # ---- loop thread -------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            # reset here, in the thread that owns them: a loop thread of a stop that timed out may
            # still set them until its loop closes
            self._notify_scheduled = self._flush_scheduled = False
            self._loop_thread_id = get_ident()
            loop = self._loop = BridgeLoop()
            asyncio.set_event_loop(loop)
            loop.call_soon(self._finish, _STARTED, True, None)
            loop.call_soon(self._probe_lag, loop.time() + LAG_PROBE_INTERVAL_S)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        except BaseException:  # noqa: BLE001 - last resort in a bare thread
            logger.exception("bridge loop thread crashed")
        finally:
            self._loop_thread_id = None
            self._thread_lock.release()
            self._done.append((_EXITED, False, None))  # type: ignore[arg-type]
            if self._watcher is not None:
                self._watcher.send()

    def _probe_lag(self, expected: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self._lags.append((time.monotonic(), max(0.0, (now - expected) * 1000.0)))
        self._loop.call_at(now + LAG_PROBE_INTERVAL_S, self._probe_lag, now + LAG_PROBE_INTERVAL_S)

    def _drain_inbox(self) -> None:
        """Start at most :data:`INBOX_SLICE` submitted coroutines; the rest in the next iterations.

        Once :meth:`stop` has begun, nothing more is started: what is left in the inbox is failed with
        STOPPED by :meth:`stop` (a task started after the shutdown took its list of tasks to cancel would
        be left pending, its greenlet never answered).
        """
        self._inbox_scheduled = False
        if self.state is not BridgeState.RUNNING:
            return
        inbox = self._inbox
        for _ in range(INBOX_SLICE):
            if not inbox:
                return
            handle = inbox.popleft()
            if handle._cancelled:
                self._finish(handle, False, asyncio.CancelledError())
                continue
            try:
                task = asyncio.ensure_future(handle._fn(*handle._args))
            except BaseException as exc:  # noqa: BLE001 - reported to the waiting greenlet
                self._finish(handle, False, exc)
                continue
            handle._task = task
            self._tasks.add(task)  # the loop holds tasks weakly: a dropped handle must not lose one
            task.add_done_callback(functools.partial(self._on_task_done, handle))
        if inbox and not self._inbox_scheduled:  # a second drain scheduled by a racing submit is harmless
            self._inbox_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain_inbox)

    def _on_task_done(self, handle: BridgeHandle, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            self._finish(handle, False, asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            self._finish(handle, False, exc)
        else:
            self._finish(handle, True, task.result())

    def _finish(self, handle: Any, ok: bool, value: Any) -> None:
        self._done.append((handle, ok, value))
        self._notify_gevent()

    def _notify_gevent(self) -> None:
        """Wake the hub once per loop iteration, not once per item (fewer GIL hand-overs)."""
        if get_ident() != self._loop_thread_id:
            watcher = self._watcher
            if watcher is not None:
                watcher.send()
        elif not self._notify_scheduled:
            self._notify_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._send_wakeup)

    def _send_wakeup(self) -> None:
        self._notify_scheduled = False
        self._watcher.send()

    def _cancel_in_loop(self, handle: BridgeHandle) -> None:
        if handle._task is not None:
            handle._task.cancel()

    def _begin_shutdown(self, grace_s: float) -> None:
        task = asyncio.ensure_future(self._shutdown(grace_s))
        self._tasks.add(task)  # strong reference until the loop stops

    async def _shutdown(self, grace_s: float) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() | self._tasks if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        asyncio.get_running_loop().stop()

    # ---- gevent side wake-up -----------------------------------------------------------------
    def _on_wakeup(self) -> None:
        """Hub callback (watcher): hand finished results to waiting greenlets."""
        done = self._done
        while done:
            handle, ok, value = done.popleft()
            if handle is _EXITED:
                self._thread_exited.set()
            elif handle is _STARTED:
                self._thread_started.set()
            elif ok:
                handle._result.set(value)
            elif isinstance(value, asyncio.CancelledError) and self.state is not BridgeState.RUNNING:
                handle._result.set_exception(BridgeError("bridge stopped while the call was pending",
                                                         reason=BridgeErrorReason.STOPPED))
            else:
                handle._result.set_exception(value)
        if self._samples:
            self._samples_ready.set()

    def _fail_pending(self) -> None:
        while self._inbox:
            handle = self._inbox.popleft()
            handle._result.set_exception(BridgeError("bridge stopped before the call started",
                                                     reason=BridgeErrorReason.STOPPED))

    def _pump_samples(self) -> None:
        while True:
            self._samples_ready.wait()
            self._samples_ready.clear()
            try:
                while self._drain_samples(limit=PUMP_BATCH):
                    gevent.sleep(0)
            except Exception:  # a failing listener must not stop the delivery of later samples
                logger.exception("firing a measurement failed")

    def _drain_samples(self, limit: int | None) -> bool:
        """Fire queued samples; return True if some are left."""
        samples, fire, n = self._samples, self.fire, 0
        while samples and (limit is None or n < limit):
            s = samples.popleft()
            n += 1
            if fire is None:
                continue
            if isinstance(s, LocustSample):
                fire(request_type=s.request_type, name=s.name, response_time=s.response_time_ms,
                     response_length=s.response_length, exception=s.exception, context=s.context,
                     start_time=s.start_ts)
            else:
                m, ts = s
                fire(request_type=m.request_type.value, name=m.name, response_time=m.response_time_ms,
                     response_length=m.response_length, exception=m.exception, context={"node": m.node},
                     start_time=ts)
        self.samples_fired += n
        return bool(samples)


async def _nothing() -> None:
    """The round trip of :meth:`AsyncioBridge.flush`."""


_RUNNING_OWNERS: dict[int, int | None] = {}  # id(bridge) -> thread id of the gevent side
_guard_installed = False


def _refuse_nested(what: str) -> None:
    if get_ident() in _RUNNING_OWNERS.values():
        raise BridgeError(f"{what} from a greenlet while the asyncio bridge runs would block every greenlet "
                          "(locustio/locust#2383); submit the coroutine with bridge.submit() instead",
                          reason=BridgeErrorReason.NESTED_LOOP)


def _install_nested_run_guard() -> None:
    """Make ``asyncio.run()`` and ``loop.run_until_complete()`` refuse on the gevent thread."""
    global _guard_installed
    if _guard_installed:
        return
    _guard_installed = True
    runner_run = asyncio.runners.Runner.run
    run_until_complete = asyncio.base_events.BaseEventLoop.run_until_complete

    def guarded_runner_run(self: asyncio.Runner, coro: Any, *, context: Any = None) -> Any:
        try:
            _refuse_nested("asyncio.run()")
        except BridgeError:
            if asyncio.iscoroutine(coro):
                coro.close()  # no "never awaited" warning on top of the error
            raise
        return runner_run(self, coro, context=context)

    def guarded_run_until_complete(self: asyncio.BaseEventLoop, future: Any) -> Any:
        try:
            _refuse_nested("loop.run_until_complete()")
        except BridgeError:
            if asyncio.iscoroutine(future):
                future.close()
            raise
        return run_until_complete(self, future)

    asyncio.runners.Runner.run = guarded_runner_run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop.run_until_complete = guarded_run_until_complete  # type: ignore[method-assign]


def attach(events: Any, bridge: AsyncioBridge | None = None, *, stop_timeout_s: float = 5.0) -> AsyncioBridge:
    """Wire a bridge to Locust's events: start on ``init`` (and again on ``test_start`` after a
    stop), stop on ``test_stop`` and ``quitting``; measurements go to ``events.request``.

    Args:
        events: ``locust.events`` or ``environment.events``.
        bridge: an existing bridge, or None for a new one.

    Returns:
        The bridge (not started yet: ``init`` starts it).
    """
    bridge = bridge or AsyncioBridge()
    bridge.fire = events.request.fire

    def _start(**_kw: Any) -> None:
        if bridge.state is not BridgeState.RUNNING:
            bridge.start()

    def _stop(**_kw: Any) -> None:
        bridge.stop(stop_timeout_s)

    events.init.add_listener(_start)
    events.test_start.add_listener(_start)
    events.test_stop.add_listener(_stop)
    events.quitting.add_listener(_stop)
    return bridge
