"""One bounded retry policy for every Hub request depi makes: exponential backoff with equal jitter that
honours ``Retry-After`` on 429 / 5xx, a fixed number of tries, then a :class:`RetriesExhausted` that names
the request and the last error (the caller excludes the dataset with that reason).

Retried: HTTP 408, 429, 500, 502, 503, 504 (``huggingface_hub.errors.HfHubHTTPError`` with its response) and
transport errors (``httpx`` connect / read timeouts, connections dropped mid-response). Anything else (404,
401, a bad reply) is raised at once. The sleep before retry ``k`` (1-based) is
``min(max_wait_s, base_wait_s * 2**(k-1)) * U(0.5, 1)`` ("equal jitter", AWS Architecture Blog,
*Exponential Backoff And Jitter*, 2015), or the server's ``Retry-After`` seconds when larger (capped at
``max_retry_after_s``).
"""

from __future__ import annotations

import importlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

T = TypeVar("T")
log = logging.getLogger("depi.hub")

def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection / timeout / protocol errors of the HTTP client huggingface_hub uses (``httpx2`` in 2.x,
    ``httpx`` in 1.x)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP status codes worth another try."""


class RetriesExhausted(OSError):
    """A request failed ``tries`` times in a row; ``status`` is the last HTTP status (None: transport error)."""

    def __init__(self, what: str, tries: int, last: BaseException, status: int | None) -> None:
        self.what, self.tries, self.last, self.status = what, tries, last, status
        reason = f"HTTP {status}" if status is not None else type(last).__name__
        super().__init__(f"{what}: gave up after {tries} tries (last: {reason}: {str(last).splitlines()[0]})")


@dataclass(frozen=True)
class RetryPolicy:
    """Attributes:
    max_retries: retries after the first try (0: one try only).
    base_wait_s: backoff of the first retry, seconds (doubled each retry).
    max_wait_s: cap of the exponential backoff, seconds.
    max_retry_after_s: cap on a server's ``Retry-After``, seconds.
    """

    max_retries: int = 5
    base_wait_s: float = 1.0
    max_wait_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError(f"retry policy {self}: values must be >= 0")

    def backoff_s(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based)."""
        wait = min(self.max_wait_s, self.base_wait_s * 2 ** (retry - 1)) * rng.uniform(0.5, 1.0)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return wait


@dataclass
class RetryStats:
    """Counts shared by the threads of one download (read for the summary and the benchmark)."""

    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, requests: int = 0, retries: int = 0, waited_s: float = 0.0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.waited_s += waited_s


def _retry_after_s(response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form; an HTTP date counts as absent)."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def classify(error: BaseException) -> tuple[bool, int | None, float | None]:
    """``(retryable, status, retry_after_s)`` of an exception raised by a Hub call."""
    if isinstance(error, HfHubHTTPError):
        response = getattr(error, "response", None)
        status = response.status_code if response is not None else None
        return status in RETRY_STATUS, status, _retry_after_s(response)
    if isinstance(error, OfflineModeIsEnabled):  # a ConnectionError that no retry can fix
        return False, None, None
    if isinstance(error, TRANSPORT_ERRORS):
        return True, None, None
    return False, None, None


def with_retries(
    call: Callable[[], T],
    what: str,
    policy: RetryPolicy,
    *,
    stats: RetryStats | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call()`` under ``policy``; each retry is logged at WARNING with its reason and wait.

    Raises:
        RetriesExhausted: ``max_retries + 1`` tries failed with retryable errors.
        Exception: the first non-retryable error, unchanged.
    """
    rng = rng or random.Random()
    for attempt in range(policy.max_retries + 1):
        if stats is not None:
            stats.add(requests=1)
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - classified below, re-raised when not retryable
            retryable, status, retry_after = classify(error)
            if not retryable:
                raise
            if attempt == policy.max_retries:
                raise RetriesExhausted(what, attempt + 1, error, status) from error
            wait = policy.backoff_s(attempt + 1, retry_after, rng)
            reason = f"HTTP {status}" if status is not None else type(error).__name__
            log.warning("%s: %s, retry %d/%d in %.2f s", what, reason, attempt + 1, policy.max_retries, wait)
            if stats is not None:
                stats.add(retries=1, waited_s=wait)
            sleep(wait)
    raise AssertionError("unreachable")
