"""CPU thread policy: how many torch intra-op threads a depi process uses, chosen from the CPUs it may run on.

* :func:`available_cpus`: the CPUs this process is allowed on (``os.sched_getaffinity``: a container's or
  ``taskset``'s limit, not the machine's core count), else ``os.cpu_count()``.
* :func:`default_num_threads`: ``OMP_NUM_THREADS`` when set (the user's choice wins); else this process's share
  of the available CPUs (``accelerate launch`` starts ``LOCAL_WORLD_SIZE`` processes per node) minus the
  DataLoader workers that run beside it, at least 1, so threads never outnumber free cores.
* OpenMP's wait policy (:func:`set_wait_policy`, called by ``import depi``): when the CPUs are already busy as
  the process starts (1-minute load average >= half the available CPUs) and ``OMP_WAIT_POLICY`` is unset, it is
  set to ``PASSIVE``, so threads that finish a parallel region sleep instead of spinning on cores other
  processes need. On idle, dedicated cores OpenMP's own default is faster and is left alone.
  ``benchmarks/bench_threads.py`` measures both side by side (docs/training.md: on 2 CPUs with one busy
  neighbour, 2 threads take 0.32 s per tiny step with the default policy, 0.17 s passive, 0.15-0.17 s with 1
  thread; idle, 2 threads with the default policy take 0.11 s, passive 0.16 s). OpenMP reads the variable once,
  when torch is first imported: it has no effect if torch was imported before depi.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

WAIT_POLICY = "PASSIVE"


def cpus_busy() -> bool:
    """True when the 1-minute load average is at least half the available CPUs (False where it is unknown)."""
    try:
        return os.getloadavg()[0] >= available_cpus() / 2
    except OSError:
        return False


def set_wait_policy() -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if it is unset and :func:`cpus_busy` (module docstring); call before torch
    is imported. Returns the policy in effect (None: OpenMP's default)."""
    if "OMP_WAIT_POLICY" not in os.environ and cpus_busy():
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return os.environ.get("OMP_WAIT_POLICY")


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask, else ``os.cpu_count()``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_num_threads(num_workers: int = 0) -> int:
    """Torch intra-op threads for the main process.

    Args:
        num_workers: DataLoader worker processes running beside it (each uses 1 thread).

    Returns:
        ``OMP_NUM_THREADS`` if set to a positive integer, else
        ``max(1, available_cpus() // LOCAL_WORLD_SIZE - num_workers)`` (``LOCAL_WORLD_SIZE`` 1 when unset).

    Raises:
        ValueError: ``OMP_NUM_THREADS`` is set but not a positive integer.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"OMP_NUM_THREADS={value!r}: expected a positive integer (or unset it)")
        return int(value)
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, available_cpus() // local_processes - max(0, num_workers))


def configure_threads(num_workers: int = 0) -> int:
    """``torch.set_num_threads(default_num_threads(num_workers))``; returns the count (logged)."""
    import torch

    threads = default_num_threads(num_workers)
    torch.set_num_threads(threads)
    logger.info(
        "torch threads: %d (%d CPUs available, %d DataLoader workers, OMP_WAIT_POLICY=%s)",
        threads, available_cpus(), num_workers, os.environ.get("OMP_WAIT_POLICY", "OpenMP default"),
    )  # fmt: skip
    return threads
