"""Stopping the engine between two pieces of work (torch-free).

A frame of a 10,000-class vocabulary runs hundreds of grounding forwards;
a node or a command asked to stop must not wait for all of them.
:class:`StopFlag` is set from any thread; the engine checks it before its
image encodes and between buckets of prompts (the preview's too) and
raises :class:`Interrupted`, which the stream runtime and the commands take
as a frame abandoned by the stop, not a failure.
"""

from __future__ import annotations

import threading


class Interrupted(Exception):
    """A frame abandoned because a stop was requested."""


class StopFlag:
    """A stop request, set from any thread, checked by the engine."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Abandon the frame in progress at the engine's next check, and every later frame."""
        self._event.set()

    def clear(self) -> None:
        """Frames run again (a restarted stream)."""
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Interrupted if a stop was requested."""
        if self._event.is_set():
            raise Interrupted("a stop was requested")
