"""A one-line progress indicator on stderr (rewritten in place when stderr is a tty)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, duration_s: float, enabled: bool = True) -> None:
        self.label = label
        self.duration_s = max(duration_s, 1e-6)
        self.enabled = enabled
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._last_line = 0.0

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.start
        if not self.tty and now - self._last_line < 1.0:
            return
        self._last_line = now
        frac = min(1.0, elapsed / self.duration_s)
        bar = "#" * int(frac * 24)
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.label:<28} [{bar:<24}] {frac * 100:5.1f}% {elapsed:5.1f}s "
            f"{done:>9} done {rate:>9.0f}/s {note}"
        )
        if self.tty:
            sys.stderr.write("\r" + line[:150].ljust(150))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        self._last_line = 0.0
        self.update(done, note)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
