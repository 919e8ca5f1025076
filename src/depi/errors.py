"""depi's own error types: failures a user can fix, printed by the console scripts as one message.

A message says what was wrong, where (the file, the field, the flag) and the fix, e.g.
``outputs/x/meta/info.json: field 'fps' is missing; re-export the dataset or add "fps": 30``.
:func:`depi.cli.run` prints it without a traceback (``--debug`` or ``DEPI_DEBUG=1`` shows one) and exits with
:attr:`DepiError.exit_code`.
"""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, systemd) raised in the main thread: unwinds like Ctrl-C (exit status 143).

    Raised by the handler :func:`depi.cli.raise_on_sigterm` installs, so ``with`` blocks (torque off, the dataset
    writer's discard of an unsaved episode) run instead of the process dying where it stands.
    """


class DepiError(Exception):
    """A failure caused by the user's input or environment (exit status 1)."""

    exit_code = 1


class UsageError(DepiError):
    """A wrong command line: unknown flag, bad value, missing argument (exit status 2)."""

    exit_code = 2


class DatasetSelectionError(DepiError, RuntimeError):
    """Too few of the selected datasets are usable (each excluded one is listed with its reason)."""
