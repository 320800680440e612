"""PNG plot of latency percentiles versus offered load (relay sweep, secure vs plaintext)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_sweep(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_tp) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"plain": "--", "secure": "-"}
    for kind in ("plain", "secure"):
        pts = result.get(kind, {}).get("points", [])
        if not pts:
            continue
        offered = [p["offered_per_s"] for p in pts]
        for pct, marker in (("p50", "o"), ("p90", "s"), ("p99", "^"), ("max", "x")):
            ys = [(p["latency_us"][pct] or 0) / 1000 for p in pts]
            ax_lat.plot(offered, ys, styles[kind], marker=marker, label=f"{kind} {pct}")
        ax_tp.plot(offered, [p["throughput_per_s"] for p in pts], styles[kind], marker="o",
                   label=kind)  # fmt: skip
    ax_lat.set_xscale("log")
    ax_lat.set_yscale("log")
    ax_lat.set_xlabel("offered load (messages/s, 256-byte body)")
    ax_lat.set_ylabel("publisher-send -> subscriber-receive latency (ms)")
    ax_lat.set_title("Relay latency vs offered load")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=7, ncol=2)
    ax_tp.set_xscale("log")
    ax_tp.set_xlabel("offered load (messages/s)")
    ax_tp.set_ylabel("delivered (messages/s)")
    ax_tp.set_title("Delivered vs offered")
    ax_tp.grid(True, which="both", alpha=0.3)
    ax_tp.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
