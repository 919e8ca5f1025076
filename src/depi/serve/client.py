"""A torch-free client of ``depi-serve`` (and of openpi's websocket policy servers): numpy, msgpack, websockets.

Usage::

    from depi.serve.client import PolicyClient

    with PolicyClient("ws://127.0.0.1:8000", timeout_s=10.0) as policy:
        meta = policy.get_server_metadata()      # action_horizon, action_dim, control_fps, camera_keys, ...
        chunk = policy.infer({"observation.state": state, "observation.images.front": image, "task": "pick"})
        chunk["actions"]                         # float32 (H, A)

One client is one connection: use one per thread. A lost connection is reopened on the next call (and the
request sent again) with bounded exponential backoff; a reply that does not come within ``timeout_s`` raises
:class:`PolicyTimeoutError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import websockets
from websockets.sync.client import ClientConnection, connect

from depi.errors import DepiError
from depi.serve import protocol, wire

logger = logging.getLogger(__name__)


class PolicyServerError(DepiError):
    """The server answered with an error (or cannot be reached).

    Attributes:
        type: the error type of the reply (``missing_key``, ``bad_shape``, ... see :mod:`depi.serve.protocol`);
            ``server_error`` for an openpi server's text traceback.
        field: the observation key at fault, or None.
    """

    def __init__(self, type: str, message: str, field: str | None = None):
        super().__init__(f"policy server error [{type}]: {message}")
        self.type = type
        self.field = field


class PolicyConnectionError(PolicyServerError):
    """The server could not be reached (or the connection kept dropping) within the retry budget."""

    def __init__(self, message: str):
        super().__init__("connection", message)


class PolicyTimeoutError(PolicyServerError, TimeoutError):
    """No reply within ``timeout_s``; the connection is dropped and reopened on the next call."""

    def __init__(self, message: str):
        super().__init__("timeout", message)


def normalize_uri(uri: str) -> str:
    """``host``, ``host:port`` or ``ws(s)://host:port[/path]`` -> a websocket URI (``ws://`` when none)."""
    return uri if uri.startswith(("ws://", "wss://")) else f"ws://{uri}"


class PolicyClient:
    """``infer(obs) -> {"actions": float32 (H, A), ...}`` over a websocket.

    Args:
        uri: ``ws://host:port`` (or ``host:port``) of a depi-serve or openpi policy server.
        timeout_s: seconds to wait for each reply (and for the metadata after connecting).
        retries: reconnection attempts after a failed connect or a dropped connection, per call.
        backoff_s: wait before the first retry; doubled at each retry up to ``max_backoff_s``.
        max_backoff_s: longest wait between two attempts.
        connect: open the connection now (the first call opens it otherwise).

    Raises:
        PolicyConnectionError: ``connect`` and the server is unreachable after ``retries`` retries.
    """

    def __init__(
        self,
        uri: str = "ws://127.0.0.1:8000",
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        connect: bool = True,
    ):
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_backoff_s < backoff_s:
            raise ValueError(
                f"PolicyClient: expected timeout_s > 0, retries >= 0, 0 <= backoff_s <= max_backoff_s; got "
                f"timeout_s={timeout_s}, retries={retries}, backoff_s={backoff_s}, max_backoff_s={max_backoff_s}"
            )
        self.uri = normalize_uri(uri)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._ws: ClientConnection | None = None
        self._metadata: dict[str, Any] | None = None
        if connect:
            self._ensure_connected()

    # --- public API -----------------------------------------------------------------------------------------
    def get_server_metadata(self) -> dict[str, Any]:
        """The metadata the server sent on connecting (see :data:`depi.serve.protocol.METADATA_KEYS`)."""
        self._ensure_connected()
        assert self._metadata is not None
        return dict(self._metadata)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """Send one observation, return the server's reply (``actions`` float32 (H, A), timings).

        Raises:
            PolicyServerError: an error reply (``.type``, ``.field`` say which check failed).
            PolicyTimeoutError: no reply within ``timeout_s``.
            PolicyConnectionError: the server is unreachable after ``retries`` retries.
            TypeError: ``obs`` holds a value msgpack-numpy cannot carry.
        """
        return self._request(wire.packb(dict(obs)))

    def reset(self, seed: int | None = None) -> None:
        """Start of an episode. With ``seed`` and a depi-serve server, reseed its noise generator (shared by all
        its clients) so the episode's chunks are reproducible; otherwise nothing (openpi's ``reset`` is a no-op).
        """
        if seed is None or self.get_server_metadata().get("server") != protocol.SERVER_NAME:
            return
        self._request(wire.packb({protocol.CONTROL: protocol.RESET, "seed": int(seed)}))

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection -----------------------------------------------------------------------------------------
    def _open(self) -> None:
        opening = connect(self.uri, open_timeout=self.timeout_s, close_timeout=1.0, compression=None, max_size=None)
        # websockets >= 17 wants connect() entered (a warning otherwise); before, it returned the connection,
        # whose __enter__ returns itself. The connection is closed by close() / _drop().
        ws = opening.__enter__()
        try:
            first = ws.recv(timeout=self.timeout_s)
            metadata = wire.unpackb(first) if isinstance(first, bytes) else None
            if not isinstance(metadata, dict):
                raise PolicyServerError(protocol.BAD_MESSAGE, f"{self.uri}: the first frame is not a metadata map")
        except BaseException:
            ws.close()
            raise
        if self._metadata is not None and _identity(metadata) != _identity(self._metadata):
            logger.warning("%s: the server now serves another policy: %s", self.uri, _identity(metadata))
        self._ws, self._metadata = ws, metadata

    def _ensure_connected(self) -> None:
        if self._ws is not None:
            return
        self._with_retries(lambda: None)

    def _with_retries(self, send_and_receive):
        delay, last_error = self.backoff_s, None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay = min(2 * delay, self.max_backoff_s)
            try:
                if self._ws is None:
                    self._open()
                return send_and_receive()
            except TimeoutError as error:
                self._drop()
                if isinstance(error, PolicyTimeoutError):
                    raise
                last_error = error  # the handshake or the metadata did not come in time
            except (OSError, websockets.exceptions.InvalidHandshake, websockets.exceptions.ConnectionClosed) as error:
                self._drop()
                last_error = error
                logger.info("%s: attempt %d/%d failed: %s", self.uri, attempt + 1, self.retries + 1, error)
        raise PolicyConnectionError(
            f"{self.uri}: no connection after {self.retries + 1} attempts ({type(last_error).__name__}: "
            f"{last_error}); is `depi-serve` running there?"
        )

    def _drop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except OSError:
                pass
            self._ws = None

    def _request(self, payload: bytes) -> dict[str, Any]:
        def send_and_receive() -> Any:
            assert self._ws is not None
            self._ws.send(payload)
            try:
                return self._ws.recv(timeout=self.timeout_s)
            except TimeoutError:
                raise PolicyTimeoutError(f"{self.uri}: no reply within {self.timeout_s} s") from None

        reply = self._with_retries(send_and_receive)
        if isinstance(reply, str):  # openpi's server sends its traceback as text, then closes
            raise PolicyServerError("server_error", reply)
        message = wire.unpackb(reply)
        if not isinstance(message, dict):
            raise PolicyServerError(protocol.BAD_MESSAGE, f"reply is a {type(message).__name__}, not a map")
        error = message.get(protocol.ERROR)
        if isinstance(error, dict):
            raise PolicyServerError(str(error.get("type")), str(error.get("message")), error.get("field"))
        return message


def _identity(metadata: Mapping[str, Any]) -> tuple:
    return metadata.get("step"), metadata.get("norm_stats_sha256"), metadata.get("embodiment")
