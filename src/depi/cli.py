"""What every depi console script shares: flag parsing with "did you mean", and one-message user errors.

A console script is written as ``def main(argv: list[str]) -> int | None`` and exposed through
:func:`run`::

    def main(argv: list[str]) -> int:
        config = parse(MyConfig, argv, prog="depi-thing")   # --help exits 0; bad flags raise UsageError
        ...

    def console() -> None:                                    # [project.scripts] depi-thing = "...:console"
        run(main, prog="depi-thing")

Exit status: 0 success (and ``--help``), 1 a failure the user can fix (:class:`~depi.errors.DepiError`, a
missing file, a bad value found while working), 2 a wrong command line (:class:`~depi.errors.UsageError`),
130 interrupted. Errors print ``<prog>: error: <message>`` on stderr without a traceback; ``--debug`` (any
position) or ``DEPI_DEBUG=1`` re-raises them so the traceback shows. Other exceptions are bugs and always
show their traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import draccus
from draccus.utils import DecodingError, ParsingError

from depi.errors import DepiError, Terminated, UsageError

T = TypeVar("T")
DEBUG_FLAGS = ("--debug", "--debug=true", "--debug=1")
HELP_FLAGS = ("-h", "--help")


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """True when ``--debug`` is in ``argv`` or ``DEPI_DEBUG`` is ``1``/``true``."""
    return any(a in DEBUG_FLAGS for a in argv) or os.environ.get("DEPI_DEBUG", "").lower() in ("1", "true")


def _unwrap_optional(tp: object) -> object:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return non_none[0]
    return tp


def known_flags(cls: type, prefix: str = "") -> set[str]:
    """Every ``--flag`` name (without the dashes) that draccus accepts for the dataclass ``cls``.

    Nested dataclasses give dotted names (``dataset.root``); a field typed by a ``draccus.ChoiceRegistry``
    accepts ``<field>.type`` and the fields of every registered choice (``policy.width`` for ``--policy.type``).
    """
    names = {"config_path"} if not prefix else set()
    choices = [cls]
    if isinstance(cls, type) and issubclass(cls, draccus.ChoiceRegistry):
        names.add(f"{prefix}type")
        choices = list(cls.get_known_choices().values()) or [cls]
    for choice in choices:
        if not dataclasses.is_dataclass(choice):
            continue
        hints = typing.get_type_hints(choice)
        for f in dataclasses.fields(choice):
            if not f.init:
                continue
            name = f"{prefix}{f.name}"
            names.add(name)
            tp = _unwrap_optional(hints.get(f.name, f.type))
            if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, draccus.ChoiceRegistry)):
                names |= known_flags(tp, prefix=f"{name}.")
    return names


def check_flags(cls: type, argv: Sequence[str], *, prog: str, extra: Iterable[str] = ()) -> None:
    """Refuse any ``--name`` in ``argv`` that ``cls`` (or ``extra``) does not define, suggesting close names.

    Raises:
        UsageError: an unknown flag, with the closest known names and where ``--help`` lists them all.
    """
    known = known_flags(cls) | set(extra)
    for arg in argv:
        if not arg.startswith("--") or arg in HELP_FLAGS:
            continue
        name = arg[2:].split("=", 1)[0]
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
        raise UsageError(f"unknown flag --{name}{hint} (`{prog} --help` lists every flag)")


def print_help(cls: type, prog: str) -> None:
    """draccus' ``--help`` for ``cls``, without the repeated line it prints for each nested config's
    ``--<field> str  Config file for <field>`` option."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            draccus.parse(cls, args=["--help"], prog=prog)
        except SystemExit:
            pass
    lines: list[str] = []
    for line in buffer.getvalue().splitlines():
        if not (lines and line == lines[-1] and line.lstrip().startswith("--")):
            lines.append(line)
    print("\n".join(lines))


def parse(cls: type[T], argv: Sequence[str], *, prog: str, extra: Iterable[str] = ()) -> T:
    """``draccus.parse(cls, args=argv)`` with depi's error handling.

    ``--help`` prints the flags and exits 0 (``SystemExit(0)``). A value draccus cannot decode, or a config's
    own ``__post_init__`` check, becomes a :class:`~depi.errors.UsageError` carrying the original message.

    Raises:
        UsageError: unknown flag, undecodable value, or the config refused the values.
    """
    argv = [a for a in argv if a not in DEBUG_FLAGS]
    if any(a in HELP_FLAGS for a in argv):
        print_help(cls, prog)
        raise SystemExit(0)
    check_flags(cls, argv, prog=prog, extra=extra)
    try:
        return draccus.parse(cls, args=list(argv), prog=prog)
    except (ParsingError, DecodingError) as error:
        cause = error.__cause__ if isinstance(error, ParsingError) and error.__cause__ else error
        if isinstance(cause, DepiError):
            raise cause from error
        raise UsageError(str(cause)) from error


def split_command(argv: Sequence[str], commands: Sequence[str], prog: str) -> tuple[str, list[str]] | None:
    """``(command, flags)`` of a ``prog COMMAND [flags]`` command line; None after printing the usage for
    ``--help`` alone.

    Raises:
        UsageError: no command, or one not in ``commands`` (the usage names them).
    """
    usage = f"usage: {prog} {{{','.join(commands)}}} [flags]   ({prog} <command> --help lists the flags)"
    if not argv:
        raise UsageError(f"a command is required; {usage}")
    if argv[0] in HELP_FLAGS:
        print(usage)
        return None
    if argv[0] not in commands:
        raise UsageError(f"unknown command {argv[0]!r}; {usage}")
    return argv[0], list(argv[1:])


def error_message(error: BaseException) -> str:
    """The one line shown for ``error``: its message, or its type when it has none."""
    text = str(error).strip()
    if isinstance(error, KeyError):
        text = str(error.args[0]) if error.args else ""
    return text or type(error).__name__


USER_ERRORS: tuple[type[BaseException], ...] = (DepiError, OSError, ValueError, ParsingError, DecodingError)


@contextlib.contextmanager
def signals_deferred(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold ``signals`` back while the block runs, then deliver them: for work that must finish or not start.

    Ctrl-C during an episode's save and its success flag's write then lands after both. Outside the main thread
    (where Python runs signal handlers) the block runs unguarded.

    Raises:
        KeyboardInterrupt / :class:`~depi.errors.Terminated`: on leaving the block, for a signal held back during it
            (whatever the handler in place before the block does with it; an ignored signal stays ignored).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: pending.append(signum)) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)  # the restored handler: KeyboardInterrupt, Terminated, or ignored


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`~depi.errors.Terminated` in the main thread (call it from the main thread).

    :func:`run` turns it into ``PROG: terminated (SIGTERM)`` and exit status 143 (128 + 15, the shell's).

    Raises:
        ValueError: called outside the main thread (:func:`signal.signal`'s rule).
    """

    def terminated(signum: int, frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, terminated)


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, prog: str) -> None:
    """Call ``main(argv)`` and exit with its status, printing user errors as one line (see the module doc).

    ``argv`` defaults to ``sys.argv[1:]``; ``--debug`` is removed before ``main`` sees it.

    Raises:
        SystemExit: always, with the exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a not in DEBUG_FLAGS]
    try:
        code = main(argv)
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        raise SystemExit(143) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except USER_ERRORS as error:
        if debug:
            raise
        status = error.exit_code if isinstance(error, DepiError) else 1
        if isinstance(error, (ParsingError, DecodingError)):
            status = 2
        hint = "" if status == 2 else " (--debug shows the traceback)"
        print(f"{prog}: error: {error_message(error)}{hint}", file=sys.stderr)
        raise SystemExit(status) from None
    raise SystemExit(int(code or 0))
