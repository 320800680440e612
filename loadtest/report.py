"""Tables and JSON: every figure next to its baseline and the ratio secure / plaintext."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PCTS = ("p50", "p90", "p99", "max")


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }


def ratio(secure: float | None, plain: float | None) -> float | None:
    if secure is None or not plain:
        return None
    return round(secure / plain, 3)


def rows_for(name: str, result: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, path) pairs worth a table row for scenario ``name``."""
    lat = [(f"latency {p} (us)", f"latency_us.{p}") for p in PCTS]
    if name == "connect-rate":
        return [("sessions set up / s", "rate_per_s"),
                *[(f"setup time {p} (us)", f"latency_us.{p}") for p in PCTS],
                ("server CPU per connect (us)", "server_cpu_us_per_connect")]  # fmt: skip
    if name == "relay":
        return [("delivered msgs / s", "throughput_per_s"), *lat,
                ("server CPU per msg (us)", "server_cpu_us_per_message"),
                ("delivered per server CPU-s", "delivered_per_cpu_s")]  # fmt: skip
    if name == "fan-out":
        sizes = [k for k in result.get("secure", result.get("plain", {}))]
        out = []
        for s in sizes:
            out += [(f"[{s}] deliveries / s", f"{s}.deliveries_per_s"),
                    (f"[{s}] latency p50 (us)", f"{s}.latency_us.p50"),
                    (f"[{s}] latency p99 (us)", f"{s}.latency_us.p99"),
                    (f"[{s}] latency max (us)", f"{s}.latency_us.max"),
                    (f"[{s}] delivered per server CPU-s", f"{s}.delivered_per_cpu_s")]  # fmt: skip
        return out
    if name == "idle":
        return [("sessions held", "sessions"), ("server RSS delta (kB)", "rss_delta_kb"),
                ("kB per idle session", "kb_per_session")]  # fmt: skip
    if name == "churn":
        return [("churn cycles / s", "churn_per_s"),
                *[(f"churn cycle {p} (us)", f"churn_cycle_us.{p}") for p in ("p50", "p99")],
                ("relay delivered / s", "throughput_per_s"), *lat]  # fmt: skip
    if name == "sweep":
        out = []
        pts = result.get("secure", result.get("plain", {})).get("points", [])
        for i, pt in enumerate(pts):
            r = int(pt["offered_per_s"])
            out += [(f"[{r}/s] delivered / s", f"points.{i}.throughput_per_s"),
                    (f"[{r}/s] p50 (us)", f"points.{i}.latency_us.p50"),
                    (f"[{r}/s] p99 (us)", f"points.{i}.latency_us.p99")]  # fmt: skip
        return out
    return []


def _get_any(d: dict[str, Any], path: str) -> Any:
    parts = path.split(".")
    cur: Any = d
    for part in parts:
        if isinstance(cur, list):
            idx = int(part)
            cur = cur[idx] if idx < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def add_ratios(name: str, result: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, path in rows_for(name, result):
        out[label] = ratio(
            _get_any(result.get("secure", {}), path), _get_any(result.get("plain", {}), path)
        )
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(name: str, result: dict[str, Any]) -> str:
    rows = rows_for(name, result)
    ratios = result.get("ratios") or add_ratios(name, result)
    width = max([len(label) for label, _ in rows] + [10])
    lines = [f"== {name} ==",
             f"{'':<{width}}  {'plaintext':>12}  {'secure':>12}  {'ratio s/p':>9}"]  # fmt: skip
    for label, path in rows:
        p = _get_any(result.get("plain", {}), path)
        s = _get_any(result.get("secure", {}), path)
        lines.append(
            f"{label:<{width}}  {_fmt(p):>12}  {_fmt(s):>12}  {_fmt(ratios.get(label)):>9}"
        )
    for kind in ("plain", "secure"):
        errs = _errors_in(result.get(kind, {}))
        if errs:
            lines.append(f"  {kind} errors: {errs}")
    return "\n".join(lines)


def _errors_in(d: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "errors" and isinstance(v, dict):
                for role, info in v.items():
                    if isinstance(info, dict):
                        found[role] = found.get(role, 0) + int(info.get("errors", 0))
            else:
                for r, n in _errors_in(v).items():
                    found[r] = found.get(r, 0) + n
    elif isinstance(d, list):
        for item in d:
            for r, n in _errors_in(item).items():
                found[r] = found.get(r, 0) + n
    return found


def write_json(name: str, payload: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}-{os.getpid()}.json"
    path.write_bytes(orjson.dumps(payload, default=str, option=orjson.OPT_INDENT_2))
    return path
