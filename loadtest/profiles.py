"""Summaries of the cProfile files written by a server run under ``--profile DIR``."""

from __future__ import annotations

import io
import pstats
from pathlib import Path


def summarize(path: Path, top: int = 25) -> str:
    """The top functions by own time (tottime) and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    out.write(f"### {path.name}: top {top} by own time\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"### {path.name}: top {top} by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
