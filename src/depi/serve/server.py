"""The websocket policy server: openpi's wire protocol, structured error replies, inference off the event loop.

:class:`PolicyServer` serves any policy with ``infer(obs) -> {"actions": (H, A)}`` (and optionally
``reset(seed)``); ``depi-serve`` (:mod:`depi.serve.cli`) builds one from a checkpoint. The protocol is in
:mod:`depi.serve.protocol`. The event loop decodes and checks each request; the policy runs in one worker thread,
so calls never overlap and many clients can stay connected. ``GET /healthz`` answers ``200 OK`` on the same port.
:meth:`PolicyServer.run` (``depi-serve``) stops gracefully on SIGINT (Ctrl-C) and on SIGTERM (``kill``, ``docker
stop``, systemd), even when the shell that started it in the background set SIGINT to be ignored: the listening
socket closes, every connection gets close code 1001 (going away), a running inference finishes. A second signal
stops at once.

Run in the background (tests, examples)::

    with PolicyServer(policy, metadata, host="127.0.0.1", port=0, validate=spec.check) as server:
        client = PolicyClient(f"ws://127.0.0.1:{server.port}")
"""

from __future__ import annotations

import asyncio
import http
import logging
import numbers
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from depi.serve import protocol, wire
from depi.serve.protocol import RequestError

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20


def _health_check(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == HEALTH_PATH:
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None  # go on with the websocket handshake


class PolicyServer:
    """Serve ``policy`` over websockets.

    Args:
        policy: ``infer(obs) -> {"actions": float32 (H, A), ...}``; ``reset(seed)`` if it has one.
        metadata: sent to every client on connecting (msgpack-able values).
        host, port: where to listen; port 0 picks a free one (see :attr:`port`).
        validate: called on each decoded observation on the event loop before inference; returns the
            observation the policy gets, raises :class:`~depi.serve.protocol.RequestError` to refuse it.
        max_message_bytes: larger frames close the connection (websocket close code 1009).
    """

    def __init__(
        self,
        policy: Any,
        metadata: Mapping[str, Any],
        host: str = "0.0.0.0",
        port: int = 8000,
        validate: Callable[[Any], Any] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ):
        self.policy = policy
        self.metadata = dict(metadata)
        self.host = host
        self.port = port
        self.validate = validate
        self.max_message_bytes = max_message_bytes
        self._metadata_frame = wire.packb(self.metadata)
        self._executor: ThreadPoolExecutor | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.stopped_by: int | None = None  # the signal that stopped run(), if one did
        self.requests = 0
        self.errors = 0

    # --- running ---------------------------------------------------------------------------------------------
    async def serve(
        self, on_listening: Callable[[int], None] | None = None, stop_signals: tuple[int, ...] = ()
    ) -> None:
        """Listen until :meth:`stop` or one of ``stop_signals``; ``on_listening(port)`` once the socket is bound.

        ``stop_signals`` need the main thread's event loop (:meth:`run` passes SIGINT and SIGTERM); the one
        received is kept in :attr:`stopped_by`.

        Raises:
            OSError: the address is in use or cannot be bound.
            KeyboardInterrupt: a second stop signal arrived while stopping.
        """
        loop = asyncio.get_running_loop()
        self._loop, self._stop, self.stopped_by = loop, asyncio.Event(), None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="depi-serve-policy")
        installed = self._add_signal_handlers(loop, stop_signals)
        try:
            async with serve(
                self._handle,
                self.host,
                self.port,
                compression=None,
                max_size=self.max_message_bytes,
                process_request=_health_check,
            ) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                if on_listening is not None:
                    on_listening(self.port)
                self._started.set()
                await self._stop.wait()
                if self.stopped_by is not None:
                    logger.info(
                        "%s received: closing %d connection(s)", signal.Signals(self.stopped_by).name,
                        len(server.connections),
                    )  # fmt: skip
            self._executor.shutdown(wait=True)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            self._started.clear()

    def _add_signal_handlers(self, loop: asyncio.AbstractEventLoop, signals: tuple[int, ...]) -> list[int]:
        installed = []
        for signum in signals:
            try:
                loop.add_signal_handler(signum, self._on_stop_signal, signum)  # replaces an inherited SIG_IGN
            except NotImplementedError:  # Windows' event loops: Ctrl-C raises KeyboardInterrupt instead
                break
            installed.append(signum)
        return installed

    def _on_stop_signal(self, signum: int) -> None:
        if self.stopped_by is not None:  # the second Ctrl-C: do not wait for the connections
            raise KeyboardInterrupt
        self.stopped_by = signum
        self._stop.set()

    def run(self, on_listening: Callable[[int], None] | None = None) -> int | None:
        """Blocking :meth:`serve` (``depi-serve``'s main loop) until SIGINT, SIGTERM or :meth:`stop`.

        Returns:
            the signal number that stopped it (:attr:`stopped_by`), or None after :meth:`stop`.
        """
        asyncio.run(self.serve(on_listening, STOP_SIGNALS))
        return self.stopped_by

    def start(self, timeout_s: float = 30.0) -> PolicyServer:
        """Serve in a daemon thread; return once listening (:attr:`port` is then the bound port).

        Raises:
            OSError: binding failed. TimeoutError: not listening within ``timeout_s``.
        """
        self._thread = threading.Thread(target=self._run_in_thread, name="depi-serve", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) and self._failure is None:
            raise TimeoutError(f"policy server on {self.host}:{self.port} not listening after {timeout_s} s")
        if self._failure is not None:
            raise self._failure
        return self

    def _run_in_thread(self) -> None:
        try:
            asyncio.run(self.serve())  # signals are the main thread's
        except BaseException as error:  # handed to start()'s caller
            self._failure = error
            self._started.set()

    def stop(self) -> None:
        """Close every connection and stop listening (from any thread); waits for a background thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> PolicyServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one connection --------------------------------------------------------------------------------------
    async def _handle(self, websocket: ServerConnection) -> None:
        peer = websocket.remote_address
        logger.info("connection from %s opened", peer)
        prev_total_ms: float | None = None
        try:
            await websocket.send(self._metadata_frame)
            while True:
                message = await websocket.recv()
                start = time.perf_counter()
                reply = await self._reply(message)
                if "server_timing" in reply:
                    timing = reply["server_timing"]
                    timing["infer_ms"] = (time.perf_counter() - start) * 1e3
                    if prev_total_ms is not None:
                        timing["prev_total_ms"] = prev_total_ms
                await websocket.send(wire.packb(reply))
                prev_total_ms = (time.perf_counter() - start) * 1e3
        except websockets.exceptions.ConnectionClosed as closed:
            logger.info("connection from %s closed (%s)", peer, closed)

    async def _reply(self, message: bytes | str) -> dict[str, Any]:
        """The reply to one frame: actions, an ack, or an error; never raises (but on cancellation)."""
        self.requests += 1
        try:
            if isinstance(message, str):
                raise RequestError(protocol.TEXT_FRAME, "text frame received; send binary msgpack-numpy frames")
            try:
                obs = wire.unpackb(message)
            except wire.WireError as error:
                raise RequestError(protocol.BAD_MESSAGE, str(error)) from None
            if isinstance(obs, dict) and protocol.CONTROL in obs:
                return await self._control(obs)
            checked = self.validate(obs) if self.validate is not None else obs
            queued = time.perf_counter()
            result, queue_ms, infer_ms = await self._in_worker(self._infer, checked, queued)
            reply = dict(result)
            reply.setdefault("policy_timing", {"infer_ms": infer_ms})
            reply["server_timing"] = {"queue_ms": queue_ms}
            return reply
        except RequestError as error:
            self.errors += 1
            return error.reply()
        except Exception as error:  # a policy bug must not take the server (or the connection) down
            self.errors += 1
            logger.exception("inference failed")
            return protocol.error_reply(protocol.INFERENCE_FAILED, f"{type(error).__name__}: {error}")

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _infer(self, obs: Any, queued: float) -> tuple[Mapping[str, Any], float, float]:
        start = time.perf_counter()
        try:
            result = self.policy.infer(obs)
        except (KeyError, ValueError) as error:  # the policy's own input checks
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            raise RequestError(protocol.BAD_VALUE, str(message)) from None
        return result, (start - queued) * 1e3, (time.perf_counter() - start) * 1e3

    async def _control(self, message: dict) -> dict[str, Any]:
        command = message[protocol.CONTROL]
        if command != protocol.RESET:
            raise RequestError(
                protocol.UNKNOWN_CONTROL, f"unknown {protocol.CONTROL!r} command {command!r}; known: {protocol.RESET!r}", protocol.CONTROL
            )
        seed = message.get("seed")
        if seed is not None and not isinstance(seed, numbers.Integral):
            raise RequestError(protocol.BAD_DTYPE, f"reset seed must be an int or None; got {seed!r}", "seed")
        reset = getattr(self.policy, "reset", None)
        if seed is not None and callable(reset):
            await self._in_worker(reset, int(seed))
        return {protocol.ACK: protocol.RESET}
