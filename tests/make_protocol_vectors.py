"""Regenerate tests/vectors/plexichat_v1.json (key schedule and record vectors).

Inputs are fixed byte strings; outputs come from the project's key schedule and record
layer. The test test_protocol_vectors.py recomputes every output independently of this
script with plain `cryptography` calls, so a change in either place is caught.
"""

from __future__ import annotations

import json
from pathlib import Path

from crypto.keyschedule import (
    HANDSHAKE_SALT,
    chain_keys,
    expand_label,
    finished_mac,
    hkdf_extract,
    next_epoch_secret,
    ratchet_step,
)
from crypto.record import RecordType, SendChain
from crypto.suite import XWING_CHACHA20

OUT = Path(__file__).parent / "vectors" / "plexichat_v1.json"


def main() -> None:
    ss_e = bytes(range(0x00, 0x20))
    ss_s = bytes(range(0x20, 0x40))
    th2 = bytes(range(0x40, 0x60))
    th3 = bytes(range(0x60, 0x80))
    es = hkdf_extract(HANDSHAKE_SALT, ss_e)
    ms = hkdf_extract(es, ss_s)
    fk_c = expand_label(ms, b"c finished", th2)
    fk_s = expand_label(ms, b"s finished", th3)
    epoch0 = expand_label(ms, b"epoch", th3)
    res = expand_label(ms, b"resumption", th3)
    c2s, s2c = chain_keys(epoch0, 0)
    mk0, ck1 = ratchet_step(c2s)
    chain = SendChain(XWING_CHACHA20.aead_factory(), c2s, 0, 2**32 - 1)
    payload = b'{"op":"ping","id":1}'
    rec0 = chain.seal(RecordType.APPLICATION, payload, 1_764_000_000_000)
    rec1 = chain.seal(RecordType.APPLICATION, b"", 1_764_000_000_001)
    ss_rekey = bytes(range(0x80, 0xA0))
    rekey_th = bytes(range(0xA0, 0xC0))
    epoch1 = next_epoch_secret(epoch0, ss_rekey, rekey_th)
    c2s_1, s2c_1 = chain_keys(epoch1, 1)
    psk = expand_label(res, b"ticket psk", bytes(range(0xC0, 0xD0)))
    r_es = hkdf_extract(b"plexichat v1 resume", psk)
    r_bk = expand_label(r_es, b"resume binder", b"")
    r_ms = hkdf_extract(r_es, ss_e)
    vec = {
        "inputs": {
            "ss_e": ss_e.hex(),
            "ss_s": ss_s.hex(),
            "th2": th2.hex(),
            "th3": th3.hex(),
            "ss_rekey": ss_rekey.hex(),
            "rekey_th": rekey_th.hex(),
        },
        "es": es.hex(),
        "ms": ms.hex(),
        "fk_c": fk_c.hex(),
        "fk_s": fk_s.hex(),
        "client_finished": finished_mac(fk_c, th2).hex(),
        "server_finished": finished_mac(fk_s, th3).hex(),
        "epoch0": epoch0.hex(),
        "resumption": res.hex(),
        "c2s_chain0": c2s.hex(),
        "s2c_chain0": s2c.hex(),
        "c2s_mk0": mk0.hex(),
        "c2s_chain1": ck1.hex(),
        "record0": {
            "payload": payload.hex(),
            "timestamp_ms": 1_764_000_000_000,
            "bytes": rec0.hex(),
        },
        "record1": {"payload": "", "timestamp_ms": 1_764_000_000_001, "bytes": rec1.hex()},
        "epoch1": epoch1.hex(),
        "c2s_chain0_epoch1": c2s_1.hex(),
        "s2c_chain0_epoch1": s2c_1.hex(),
        "resume": {"ticket_id": bytes(range(0xC0, 0xD0)).hex(), "psk": psk.hex(),
                   "es": r_es.hex(), "binder_key": r_bk.hex(), "ms_with_ss_e": r_ms.hex()},
    }
    OUT.write_text(json.dumps(vec, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
