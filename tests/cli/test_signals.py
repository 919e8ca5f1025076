"""SIGINT / SIGTERM in the console scripts: held back by :func:`depi.cli.signals_deferred`, SIGTERM as
:class:`depi.errors.Terminated` with exit status 143."""

from __future__ import annotations

import os
import signal

import pytest

from depi.cli import raise_on_sigterm, run, signals_deferred
from depi.errors import Terminated


def test_a_signal_inside_the_block_lands_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigterm_unwinds_like_ctrl_c_and_exits_143(capsys: pytest.CaptureFixture) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    unwound = []

    def main(argv: list[str]) -> int:
        raise_on_sigterm()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not raise Terminated")  # the handler raises as os.kill returns
        finally:
            unwound.append(True)  # ``with`` blocks and ``finally`` run, as on Ctrl-C
        return 0

    try:
        with pytest.raises(SystemExit) as exited:
            run(main, [], prog="depi-x")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exited.value.code == 143 and unwound == [True]
    assert "depi-x: terminated (SIGTERM)" in capsys.readouterr().err
    assert issubclass(Terminated, KeyboardInterrupt)
