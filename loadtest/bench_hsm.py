"""HSM adapter benchmark: derive and wrap/unwrap ops/s, 16 concurrent callers vs baselines.

    python -m loadtest.bench_hsm [--ops N] [--threads 16]

Creates a throw-away SoftHSM2 token with `plexigate hsm init` (a subprocess, so this module
imports neither gateway nor the token tooling), then measures through the project's
PKCS#11 adapter (every call serialised on its one worker thread):
  - derive (HMAC-SHA-256 inside the token) and wrap+unwrap (AES-GCM inside the token),
  - with 16 caller threads and with 1 caller,
  - next to the software key store doing the same operations.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PIN = "bench-pin-1234"


def measure(op: Callable[[int], None], threads: int, ops: int) -> float:
    per = ops // threads

    def caller(t: int) -> None:
        for i in range(per):
            op(t * per + i)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(caller, range(threads)))
    return per * threads / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=16000, help="operations per row")
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="plexi-bench-hsm-"))
    try:
        print(f"creating SoftHSM2 token in {tmp} ...", file=sys.stderr, flush=True)
        env = dict(os.environ, PLEXI_HSM_PIN=PIN)
        subprocess.run([sys.executable, "-m", "plexigate.cli", "hsm", "init", "--dir",
                        str(tmp / "hsm"), "--label", "bench"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        os.environ["SOFTHSM2_CONF"] = str(tmp / "hsm" / "softhsm2.conf")
        from crypto.pkcs11store import Pkcs11KeyStore
        from crypto.softstore import SoftKeyStore

        hsm = Pkcs11KeyStore("bench", PIN)
        soft = SoftKeyStore.create(tmp / "soft", b"bench", scrypt_n=2**14)
        payload = os.urandom(64)  # ~ an X-Wing private key seed plus a little

        def derive_op(store: object) -> Callable[[int], None]:
            return lambda i: store.derive(b"ticket/%d" % i)  # type: ignore[attr-defined]

        def wrap_op(store: object) -> Callable[[int], None]:
            def op(_i: int) -> None:
                blob = store.wrap(payload)  # type: ignore[attr-defined]
                store.unwrap(blob)  # type: ignore[attr-defined]
            return op

        rows: list[tuple[str, float]] = []
        plan = [
            ("hsm derive", derive_op(hsm), args.threads),
            ("hsm derive", derive_op(hsm), 1),
            ("soft derive", derive_op(soft), args.threads),
            ("hsm wrap+unwrap", wrap_op(hsm), args.threads),
            ("hsm wrap+unwrap", wrap_op(hsm), 1),
            ("soft wrap+unwrap", wrap_op(soft), args.threads),
        ]
        for i, (name, op, threads) in enumerate(plan, 1):
            print(f"[{i}/{len(plan)}] {name}, {threads} caller(s), {args.ops} ops ...",
                  file=sys.stderr, flush=True)
            measure(op, threads, min(500, args.ops))  # warm-up
            rows.append((f"{name:<17} callers={threads:<3}", measure(op, threads, args.ops)))
        print(f"{'operation':<30} {'ops/s':>10}  ratio")
        ref16 = {name: rate for name, rate in rows}
        for name, rate in rows:
            kind = "derive" if "derive" in name else "wrap+unwrap"
            hsm16 = ref16[f"{'hsm ' + kind:<17} callers={args.threads:<3}"]
            print(f"{name:<30} {rate:>10,.0f}  {rate / hsm16:5.2f}x of hsm {kind} "
                  f"x{args.threads}")
        hsm.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
