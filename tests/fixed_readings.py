"""A stand-in for the sample's stopwatch that reads every timed call as the same time.

The in-kernel fallback times the user's function on the run's first pieces
(:class:`jupyter_par.run.fallback.Clocked`, with :class:`jupyter_par.machine.load.
Stopwatch`) and decides from those readings. A test of what the fallback does *with* a
reading (grow the pieces, keep a cheap call in the kernel) cannot rest on the real clock:
one scheduler hiccup on a busy host, or a cheap call's fixed cost scaled by 128, reads as
work, and the verdict flips. Patched in with :func:`reading`, every call of the function
the sample times reads ``seconds``; what moving would cost is still measured (the
pickling timings of :mod:`jupyter_par.run.moving` keep the real clock), and the run
itself happens for real.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_par.machine import load
from jupyter_par.run import fallback


def reading(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every call the sample times reads ``seconds`` until the test ends."""
    class FixedReading:
        def start(self) -> FixedReading:
            return self

        def stop(self) -> float:
            return seconds

    class SampleClock:
        """The fallback's view of :mod:`~jupyter_par.machine.load`: its stopwatch
        replaced, everything else read from the module at each use (so that a test's
        other patches of it still apply)."""

        Stopwatch = FixedReading

        def __getattr__(self, name: str) -> Any:
            return getattr(load, name)

    monkeypatch.setattr(fallback, "load", SampleClock())
