"""``depi-serve``: a checkpoint behind a websocket, spoken to by openpi-client or :class:`depi.serve.client.PolicyClient`.

Usage::

    depi-serve --policy.path=outputs/demo_run --env=so101_pick_place --port=8000
    depi-serve --policy.path=outputs/demo_run/checkpoints/000000500 --dataset.root=outputs/sim_demos/so101_pick_place
    depi-serve --policy.path=CKPT --policy.dtype=bfloat16 --policy.device=cuda --policy.num_steps=5

Without ``--env`` / ``--dataset.*`` the first dataset of the checkpoint's mixture picks the robot layout.
Prints ``depi-serve: listening on ws://HOST:PORT`` once ready (``--port=0`` picks a free port). Ctrl-C stops it
(exit status 130), SIGTERM too (exit status 0); both close the connections first.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass, field

from depi.cli import parse, run
from depi.errors import UsageError
from depi.threads import configure_threads
from depi.eval.policy_runner import EvalPolicyConfig

PROG = "depi-serve"


@dataclass
class ServeDatasetConfig:
    """The robot layout from a dataset.

    Attributes:
        root: a LeRobot dataset folder recorded on the robot (reads its meta/info.json).
        repo_id: the dataset's id in the checkpoint's mixture; alone, picks that mixture entry.
    """

    root: str | None = None
    repo_id: str | None = None


@dataclass
class ServeConfig:
    """Flags of ``depi-serve``.

    Attributes:
        policy: ``--policy.path`` (checkpoint or run folder), ``.device``, ``.dtype``, ``.compile``, ``.num_steps``.
        env: bind the robot layout of this sim env (``so101_pick_place``, ``metaworld/<task>``, ...).
        dataset: bind the layout of a dataset (``--dataset.root``) or of a mixture entry (``--dataset.repo_id``).
        host: interface to listen on (``0.0.0.0``: every interface).
        port: TCP port; 0 picks a free one (printed).
        seed: seed of the flow-matching noise (a client's ``reset(seed)`` reseeds it).
        max_message_mb: largest request accepted (MiB); a larger frame closes its connection.
        log_level: ``DEBUG``, ``INFO`` (connections opened / closed), ``WARNING``.
    """

    policy: EvalPolicyConfig = field(default_factory=EvalPolicyConfig)
    env: str | None = None
    dataset: ServeDatasetConfig = field(default_factory=ServeDatasetConfig)
    host: str = "0.0.0.0"
    port: int = 8000
    seed: int = 0
    max_message_mb: float = 64.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.policy.path:
            raise ValueError("--policy.path is required: a checkpoint folder or a run folder written by depi-train")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port={self.port}: expected 0..65535 (0 picks a free port)")
        if self.env and self.dataset.root:
            raise ValueError("give one of --env and --dataset.root, not both: each names the robot layout")
        if self.max_message_mb <= 0:
            raise ValueError(f"--max_message_mb={self.max_message_mb}: expected > 0")


def build_server(config: ServeConfig):
    """Load the checkpoint, bind the layout, and return the (not yet started) :class:`PolicyServer`.

    Raises:
        FileNotFoundError / ValueError / ModuleNotFoundError: see :func:`depi.eval.policy_runner.load_checkpoint`
            and :func:`depi.serve.policy.resolve_binding`.
    """
    from depi.eval.policy_runner import PolicyRunner, load_checkpoint
    from depi.serve.policy import BindingSource, ServedPolicy, resolve_binding, server_metadata
    from depi.serve.protocol import ObservationSpec
    from depi.serve.server import PolicyServer

    checkpoint = load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
    binding = resolve_binding(checkpoint, BindingSource(config.env, config.dataset.root, config.dataset.repo_id))
    runner = PolicyRunner(
        checkpoint, binding, num_steps=config.policy.num_steps, seed=config.seed, compile=config.policy.compile
    )
    metadata = server_metadata(checkpoint, binding, config.policy.num_steps, config.policy.dtype)
    return PolicyServer(
        ServedPolicy(runner),
        metadata,
        host=config.host,
        port=config.port,
        validate=ObservationSpec.from_metadata(metadata).check,
        max_message_bytes=int(config.max_message_mb * 2**20),
    )


def main(argv: list[str]) -> int:
    """Parse the flags, load the policy, serve until interrupted."""
    config = parse(ServeConfig, argv, prog=PROG)
    level = getattr(logging, config.log_level.upper(), None)
    if not isinstance(level, int):
        raise UsageError(f"--log_level={config.log_level}: expected DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))
    configure_threads()  # depi.threads: OMP_NUM_THREADS, else every available CPU
    server = build_server(config)
    meta = server.metadata
    print(
        f"{PROG}: {meta['policy_type']} step {meta['step']} bound to {meta['repo_id']} ({meta['embodiment']}): "
        f"H={meta['action_horizon']} x A={meta['action_dim']} at {meta['control_fps']:g} Hz, "
        f"cameras {meta['camera_keys']}, state ({meta['state_dim']},)",
        flush=True,
    )

    def listening(port: int) -> None:
        print(f"{PROG}: listening on ws://{config.host}:{port} (health: http://{config.host}:{port}/healthz)",
              flush=True)

    stopped_by = server.run(listening)
    if stopped_by == signal.SIGINT:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if stopped_by is not None:
        print(f"{PROG}: stopped by {signal.Signals(stopped_by).name}", file=sys.stderr)
    return 0


def console() -> None:
    """Console script entry point (``depi-serve``)."""
    run(main, prog=PROG)


if __name__ == "__main__":
    console()
