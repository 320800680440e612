// Known-answer checks of the browser client's protocol code (run by tests/test_web_client.py).
//
//   node clients/web/test/kat.mjs [cert-cases.json]
//
// 1. X-Wing: the draft's published vectors (keygen from seed, decapsulation, and
//    encapsulation with the vector's eseed) from tests/vectors/xwing/test-vectors.json.
// 2. Key schedule, ratchet, records and rekey secret: tests/vectors/plexichat_v1.json.
// 3. Certificates written by the Python code (crypto/cert.py), when a cases file is given:
//    each case says whether the JS verification must accept it or refuse it with 4005.
// Prints one line per group and exits non-zero on the first mismatch.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import {
  XWING, MLKEM1024_X25519, KemError, SessionError, CloseCode, RecordType,
  hexToBytes, bytesToHex, hkdfExtract, expandLabel, chainKeys, ratchetStep, nextEpochSecret,
  hmacSha256, HANDSHAKE_SALT, SendChain, ReceiveChain, ReplayWindow, parseRecord, SUITES_BY_NAME,
  parseCertificate, verifyCertificate,
} from '../src/plexichat.js';

// Node 18 (Debian 12's nodejs) has WebCrypto only as node:crypto.webcrypto; browsers and
// Node >= 19 have globalThis.crypto, which noble's randomBytes uses.
if (!globalThis.crypto) globalThis.crypto = webcrypto;

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
const hex = (b) => bytesToHex(b);
let checks = 0;
const eq = (got, want, what) => {
  assert.equal(hex(got), want, what);
  checks += 1;
};
const throwsCode = (fn, code, what) => {
  assert.throws(fn, (e) => e instanceof SessionError && e.code === code, what);
  checks += 1;
};

// -- 1. X-Wing draft vectors ---------------------------------------------------------------
const xwing = readJson(path.join(repo, 'tests', 'vectors', 'xwing', 'test-vectors.json'));
xwing.forEach((v, i) => {
  const key = XWING.fromSeed(hexToBytes(v.seed));
  eq(key.publicBytes, v.pk, `xwing[${i}] pk from seed`);
  eq(key.decapsulate(hexToBytes(v.ct)), v.ss, `xwing[${i}] decaps`);
  const { ss, ct } = XWING.encapsulate(hexToBytes(v.pk), hexToBytes(v.eseed));
  eq(ct, v.ct, `xwing[${i}] encaps ct`);
  eq(ss, v.ss, `xwing[${i}] encaps ss`);
});
{
  // Round trips and the checks of PROTOCOL.md section 3.
  for (const kem of [XWING, MLKEM1024_X25519]) {
    const k = kem.generate();
    const { ss, ct } = kem.encapsulate(k.publicBytes);
    eq(k.decapsulate(ct), hex(ss), `${kem.name} round trip`);
    // tampered ML-KEM ciphertext: implicit rejection, a different secret, no exception
    const bad = ct.slice();
    bad[0] ^= 1;
    assert.notEqual(hex(k.decapsulate(bad)), hex(ss), `${kem.name} implicit rejection`);
    // low-order X25519 ciphertext half (all zero): refused
    const lo = ct.slice();
    lo.fill(0, kem.mlkemCtSize);
    assert.throws(() => k.decapsulate(lo), KemError, `${kem.name} low-order ct`);
    const loPk = k.publicBytes.slice();
    loPk.fill(0, kem.mlkemPkSize);
    assert.throws(() => kem.encapsulate(loPk), (e) => e instanceof KemError && e.part === 'x25519');
    // ML-KEM encapsulation key with a coefficient >= q (first 12 bits = 4095): refused
    const unreduced = k.publicBytes.slice();
    unreduced[0] = 0xff;
    unreduced[1] |= 0x0f;
    assert.throws(() => kem.encapsulate(unreduced), (e) => e instanceof KemError && e.part === 'mlkem');
    checks += 4;
  }
}
console.log(`ok x-wing draft vectors (${xwing.length}) and KEM checks`);

// -- 2. key schedule and records -----------------------------------------------------------
const pv = readJson(path.join(repo, 'tests', 'vectors', 'plexichat_v1.json'));
const inp = Object.fromEntries(Object.entries(pv.inputs).map(([k, v]) => [k, hexToBytes(v)]));
const es = hkdfExtract(HANDSHAKE_SALT, inp.ss_e);
eq(es, pv.es, 'es');
const ms = hkdfExtract(es, inp.ss_s);
eq(ms, pv.ms, 'ms');
const fkC = expandLabel(ms, 'c finished', inp.th2);
const fkS = expandLabel(ms, 's finished', inp.th3);
eq(fkC, pv.fk_c, 'fk_c');
eq(fkS, pv.fk_s, 'fk_s');
eq(hmacSha256(fkC, inp.th2), pv.client_finished, 'client Finished');
eq(hmacSha256(fkS, inp.th3), pv.server_finished, 'server Finished');
const epoch0 = expandLabel(ms, 'epoch', inp.th3);
eq(epoch0, pv.epoch0, 'epoch0');
eq(expandLabel(ms, 'resumption', inp.th3), pv.resumption, 'resumption');
const [c2s, s2c] = chainKeys(epoch0, 0);
eq(c2s, pv.c2s_chain0, 'c2s chain 0');
eq(s2c, pv.s2c_chain0, 's2c chain 0');
const [mk0, ck1] = ratchetStep(c2s);
eq(mk0, pv.c2s_mk0, 'c2s message key 0');
eq(ck1, pv.c2s_chain1, 'c2s chain 1');
const epoch1 = nextEpochSecret(epoch0, inp.ss_rekey, inp.rekey_th);
eq(epoch1, pv.epoch1, 'epoch1');
const [c2s1, s2c1] = chainKeys(epoch1, 1);
eq(c2s1, pv.c2s_chain0_epoch1, 'c2s chain 0 of epoch 1');
eq(s2c1, pv.s2c_chain0_epoch1, 's2c chain 0 of epoch 1');

// Sealing the vector payloads reproduces the record bytes (ChaCha20-Poly1305 suite) ...
const aead = SUITES_BY_NAME.get('XWING_CHACHA20POLY1305_SHA256').aead;
const send = new SendChain(aead, hexToBytes(pv.c2s_chain0), 0, 2 ** 32 - 1);
for (const r of [pv.record0, pv.record1]) {
  eq(send.seal(RecordType.APPLICATION, hexToBytes(r.payload), r.timestamp_ms), r.bytes, 'seal record');
}
// ... and opening them with the receive side gives the payloads, through the replay window.
const recv = new ReceiveChain(aead, hexToBytes(pv.c2s_chain0), 0);
const win = new ReplayWindow(0, 30_000, 2 ** 32 - 1);
for (const r of [pv.record0, pv.record1]) {
  const rec = parseRecord(hexToBytes(r.bytes));
  win.check(rec.epoch, rec.seq, rec.timestampMs, r.timestamp_ms);
  eq(recv.open(rec), r.payload, 'open record');
  win.commit(rec.seq, rec.timestampMs);
}
{
  const r0 = hexToBytes(pv.record0.bytes);
  const now = pv.record0.timestamp_ms;
  // replay of record 0 after both were accepted: 4012, nothing opened
  const rec = parseRecord(r0);
  throwsCode(() => win.check(rec.epoch, rec.seq, rec.timestampMs, now), CloseCode.REPLAY, 'replay');
  // a flipped tag byte fails with 4011 and does not move the chain
  const fresh = new ReceiveChain(aead, hexToBytes(pv.c2s_chain0), 0);
  const bad = r0.slice();
  bad[bad.length - 1] ^= 1;
  throwsCode(() => fresh.open(parseRecord(bad)), CloseCode.DECRYPT_FAILED, 'tampered tag');
  eq(fresh.open(parseRecord(r0)), pv.record0.payload, 'chain unchanged by forgery');
  // a changed header byte (AAD) fails too: the timestamp is authenticated
  const fresh2 = new ReceiveChain(aead, hexToBytes(pv.c2s_chain0), 0);
  const hdr = r0.slice();
  hdr[21] ^= 1;
  throwsCode(() => fresh2.open(parseRecord(hdr)), CloseCode.DECRYPT_FAILED, 'tampered header');
  // the s2c chain cannot open a c2s record (direction separation, a reflected record)
  const reflected = new ReceiveChain(aead, hexToBytes(pv.s2c_chain0), 0);
  throwsCode(() => reflected.open(parseRecord(r0)), CloseCode.DECRYPT_FAILED, 'reflected');
  // gap, wrong epoch, far-future 2^31 jump, timestamp outside the skew
  const w = new ReplayWindow(0, 30_000, 2 ** 32 - 1);
  throwsCode(() => w.check(0, 1n, now, now), CloseCode.SEQUENCE, 'gap');
  throwsCode(() => w.check(0, 2n ** 31n, now, now), CloseCode.SEQUENCE, '2^31 jump');
  throwsCode(() => w.check(1, 0n, now, now), CloseCode.SEQUENCE, 'wrong epoch');
  throwsCode(() => w.check(0, 0n, now + 31_000, now), CloseCode.TIMESTAMP, 'far future ts');
  throwsCode(() => parseRecord(r0.subarray(0, 37)), CloseCode.RECORD_MALFORMED, 'short record');
}
console.log('ok key schedule, ratchet, records and rekey secret (plexichat_v1.json)');

// -- 3. certificates made by the Python code -----------------------------------------------
const casesFile = process.argv[2];
if (casesFile) {
  const cases = readJson(casesFile);
  const root = hexToBytes(cases.root_public);
  for (const c of cases.certs) {
    const run = () => {
      const cert = parseCertificate(hexToBytes(c.cert));
      verifyCertificate(cert, c.root_public ? hexToBytes(c.root_public) : root, cases.now);
      // the certified key must load too (PROTOCOL.md section 4, last check)
      try {
        cert.kem.encapsulate(cert.publicKey);
      } catch (e) {
        if (e instanceof KemError && e.part === 'mlkem') {
          throw new SessionError(CloseCode.BAD_CERTIFICATE, 'certified public key is malformed');
        }
        throw e;
      }
      return cert;
    };
    if (c.expect === 'ok') {
      const cert = run();
      assert.equal(cert.kem.kemId, c.kem_id, `${c.name}: kem id`);
      assert.equal(hex(cert.keyId), c.key_id, `${c.name}: key id`);
      checks += 1;
    } else {
      assert.throws(run, (e) => {
        if (!(e instanceof SessionError) || e.code !== CloseCode.BAD_CERTIFICATE) return false;
        return !c.reason || e.reason.includes(c.reason);
      }, `${c.name}: must be refused with 4005 (${c.reason ?? ''})`);
      checks += 1;
    }
  }
  console.log(`ok certificates from the Python code (${cases.certs.length} cases)`);
}
console.log(`KAT OK: ${checks} checks`);
