"""DESIGN.md section 7 targets against the latest results: a markdown table.

    python -m loadtest.targets [--results DIR] [--crypto PATH]

Reads the newest JSON per scenario in ``loadtest/results`` (and the bench_crypto JSON when
given) and prints, for each target, the figure, its ratio and met / not met.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadtest.report import RESULTS_DIR


def latest(directory: Path, scenario: str) -> dict[str, Any] | None:
    files = sorted(directory.glob(f"{scenario}-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(files[-1].read_text())["result"] if files else None


def _r(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rows(directory: Path, crypto: dict[str, Any] | None) -> list[tuple[str, str, str, str, str]]:
    out: list[tuple[str, str, str, str, str]] = []
    cr = latest(directory, "connect-rate")
    if cr:
        ratio = _r(cr["secure"]["rate_per_s"], cr["plain"]["rate_per_s"]) or 0.0
        out.append(("secure session setup rate", ">= 0.6 x plain WS connect",
                    f"{cr['secure']['rate_per_s']:,.0f}/s vs {cr['plain']['rate_per_s']:,.0f}/s",
                    f"{ratio:.2f}", "met" if ratio >= 0.6 else "NOT met"))  # fmt: skip
    if crypto:
        hs = crypto["handshake"]["server CPU per handshake"]
        raw = crypto["primitives"]["X-Wing encaps+decaps"]
        out.append(("gateway CPU per handshake (crypto layer)", "<= 200 us",
                    f"{hs:.0f} us", f"{hs / raw:.2f} x X-Wing enc+dec ({raw:.0f} us)",
                    "met" if hs <= 200 else "NOT met"))  # fmt: skip
    if cr:
        s, p = cr["secure"]["server_cpu_us_per_connect"], cr["plain"]["server_cpu_us_per_connect"]
        out.append(("gateway CPU per served session setup", "<= 200 us",
                    f"{s:,.0f} us (plain {p:,.0f} us)", f"{_r(s, p) or 0:.2f}",
                    "met" if s and s <= 200 else "NOT met"))  # fmt: skip
    rl = latest(directory, "relay")
    if rl:
        ratio = _r(rl["secure"]["throughput_per_s"], rl["plain"]["throughput_per_s"]) or 0.0
        out.append(("secure relay throughput, 256 B", ">= 0.6 x plaintext relay",
                    f"{rl['secure']['throughput_per_s']:,.0f}/s vs "
                    f"{rl['plain']['throughput_per_s']:,.0f}/s",
                    f"{ratio:.2f}", "met" if ratio >= 0.6 else "NOT met"))  # fmt: skip
    fo = latest(directory, "fan-out")
    if fo:
        for size, fig in fo["secure"].items():
            per = fig["delivered_per_cpu_s"] or 0.0
            plain = fo["plain"][size]["delivered_per_cpu_s"]
            out.append((f"delivered msgs per gateway CPU-s (fan-out {size})", "> 12,500/s",
                        f"{per:,.0f}/s (plain {plain or 0:,.0f}/s)", f"{_r(per, plain) or 0:.2f}",
                        "met" if per > 12_500 else "NOT met"))  # fmt: skip
    if rl:
        per = rl["secure"]["delivered_per_cpu_s"] or 0.0
        plain = rl["plain"]["delivered_per_cpu_s"]
        out.append(("delivered msgs per gateway CPU-s (relay 1:1, acks too)", "> 12,500/s",
                    f"{per:,.0f}/s (plain {plain or 0:,.0f}/s)", f"{_r(per, plain) or 0:.2f}",
                    "met" if per > 12_500 else "NOT met"))  # fmt: skip
    idle = latest(directory, "idle")
    if idle:
        s, p = idle["secure"]["kb_per_session"], idle["plain"]["kb_per_session"]
        out.append(("memory per idle authenticated session", "<= 30 KB",
                    f"{s:.1f} KB (plain {p:.1f} KB)", f"{_r(s, p) or 0:.2f}",
                    "met" if s is not None and s <= 30 else "NOT met"))  # fmt: skip
    out.append(("Redis-backed replay checks", "<= 15% throughput cost",
                "see loadtest/bench_resume.py", "-",
                "ticket ledger in Redis vs memory, resumptions/s in one run"))  # fmt: skip
    out.append(("Path ORAM access", "<= 0.3 ms mem, <= 1 ms Redis", "see loadtest/bench_oram.py",
                "-", "not part of this harness"))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.targets", description=__doc__)
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    p.add_argument("--crypto", type=Path, help="JSON from python -m loadtest.bench_crypto --json")
    args = p.parse_args(argv)
    crypto = json.loads(args.crypto.read_text()) if args.crypto else None
    print("| target | DESIGN 7 | figure | ratio | verdict |")
    print("|---|---|---|---|---|")
    for row in rows(args.results, crypto):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
