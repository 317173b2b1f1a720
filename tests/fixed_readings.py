"""A stand-in for the fallback's stopwatch that reads every timed call as the same time.

The in-kernel fallback times the run's first pieces with :class:`jupyter_par.machine.load.
Stopwatch` and decides from those readings. A test of what the fallback does *with* a
reading (grow the pieces, keep a cheap call in the kernel) cannot rest on the real clock:
one scheduler hiccup on a busy host, or a cheap call's fixed cost scaled by 128, reads as
work, and the verdict flips. Patched in with :func:`reading`, every call reads ``seconds``;
the run itself still happens for real.
"""

from __future__ import annotations

import pytest

from jupyter_par.machine import load


def reading(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every call the fallback times reads ``seconds`` until the test ends."""
    class FixedReading:
        def start(self) -> FixedReading:
            return self

        def stop(self) -> float:
            return seconds

    monkeypatch.setattr(load, "Stopwatch", FixedReading)
