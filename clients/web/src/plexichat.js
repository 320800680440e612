// PlexiChat v1 browser client: the wire protocol of docs/PROTOCOL.md, in JavaScript.
//
// Layout (mirrors crypto/ in the Python reference):
//   bytes helpers                            small big-endian reader/writer
//   hybrid KEMs  (PROTOCOL.md section 3)     X-Wing and MLKEM1024-X25519 over audited noble code
//   suites       (section 2)                 id -> KEM + AEAD
//   certificate  (section 4)                 parse, ML-DSA-65 verify with context string
//   handshake    (section 5)                 ClientHello / ServerHello / ClientKem / ServerFinished
//   key schedule (section 5, 6)              HKDF-SHA256 with ExpandLabel, per-record HMAC ratchet
//   records      (section 6)                 22-byte header as AAD, replay window, rekey
//   ClientSession                            sans-I/O state machine (like crypto/session.py)
//   PlexiChatClient                          thin WebSocket driver + JSON ops (section 7)
//
// No cryptographic primitive is implemented here: ML-KEM, ML-DSA (@noble/post-quantum),
// X25519 (@noble/curves), SHA-2/SHA-3/SHAKE/HMAC/HKDF (@noble/hashes) and the AEADs
// (@noble/ciphers) come from audited libraries; randomness is crypto.getRandomValues
// (through @noble/hashes randomBytes). This file only combines them as the protocol says.

import { ml_kem768, ml_kem1024 } from '@noble/post-quantum/ml-kem.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { hmac } from '@noble/hashes/hmac.js';
import { expand as hkdfExpand } from '@noble/hashes/hkdf.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { equalBytes } from '@noble/ciphers/utils.js';

export const VERSION = 1;
const TE = new TextEncoder();
const TD = new TextDecoder('utf-8', { fatal: true });

// ------------------------------------------------------------------------------------------
// Close codes and errors (PROTOCOL.md section 8; crypto/errors.py)
// ------------------------------------------------------------------------------------------

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  PROTOCOL_ERROR: 4000,
  HANDSHAKE_MALFORMED: 4001,
  HANDSHAKE_FAILED: 4002,
  NO_SHARED_SUITE: 4003,
  HANDSHAKE_TIMEOUT: 4004,
  BAD_CERTIFICATE: 4005,
  RECORD_MALFORMED: 4010,
  DECRYPT_FAILED: 4011,
  REPLAY: 4012,
  SEQUENCE: 4013,
  TIMESTAMP: 4014,
  LIMIT_REACHED: 4015,
  AUTH_REQUIRED: 4020,
  AUTH_FAILED: 4021,
  TOKEN_EXPIRED: 4022,
  TOO_MANY_CONNECTIONS: 4023,
  SLOW_CONSUMER: 4030,
  RATE_LIMITED: 4031,
  IDLE_TIMEOUT: 4032,
});

/** The peer sent something that ends the session; `code` is the close code. */
export class SessionError extends Error {
  constructor(code, reason) {
    super(reason);
    this.name = 'SessionError';
    this.code = code;
    this.reason = reason;
  }
}
const handshakeError = (r = 'malformed handshake message') =>
  new SessionError(CloseCode.HANDSHAKE_MALFORMED, r);
const handshakeFailed = (r = 'handshake verification failed') =>
  new SessionError(CloseCode.HANDSHAKE_FAILED, r);
const certificateError = (r = 'gateway certificate rejected') =>
  new SessionError(CloseCode.BAD_CERTIFICATE, r);
const recordError = (r = 'malformed record') => new SessionError(CloseCode.RECORD_MALFORMED, r);

/** Local code misused an object (wrong state, wrong type): a bug, not an attack. */
export class LocalProtocolError extends Error {
  constructor(msg) {
    super(msg);
    this.name = 'LocalProtocolError';
  }
}

/** A public key or ciphertext is malformed, or X25519 gave the all-zero secret. */
export class KemError extends Error {
  constructor(msg, part) {
    super(msg);
    this.name = 'KemError';
    this.part = part; // 'mlkem' (key refused, e.g. modulus check) or 'x25519' (low order)
  }
}

// ------------------------------------------------------------------------------------------
// Bytes
// ------------------------------------------------------------------------------------------

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function hexToBytes(hex) {
  const s = hex.trim();
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error('not a hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const u8 = (n) => Uint8Array.of(n & 0xff);
const u16 = (n) => Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
const u32 = (n) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const u64 = (n) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};
const vec16 = (b) => {
  if (b.length > 0xffff) throw new LocalProtocolError('vector too long');
  return concat(u16(b.length), b);
};

/** Strict reader: every read past the end is a malformed handshake message. */
class Reader {
  constructor(data, off = 0) {
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.off = off;
  }
  take(n) {
    const end = this.off + n;
    if (end > this.data.length) throw handshakeError('handshake message truncated');
    const out = this.data.subarray(this.off, end);
    this.off = end;
    return out;
  }
  u8() {
    return this.take(1)[0];
  }
  u16() {
    const b = this.take(2);
    return (b[0] << 8) | b[1];
  }
  u64() {
    // Times fit easily in a double for any real clock; larger values stay exact as BigInt
    // until converted, and a value past 2^53 is absurd as milliseconds anyway.
    const b = this.take(8);
    return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0));
  }
  vec16() {
    return this.take(this.u16());
  }
  end() {
    if (this.off !== this.data.length) throw handshakeError('trailing bytes after handshake message');
  }
}

// ------------------------------------------------------------------------------------------
// Hybrid KEMs (PROTOCOL.md section 3; crypto/kem.py)
// ------------------------------------------------------------------------------------------

const X25519_SIZE = 32;
export const SEED_SIZE = 32;
const XWING_LABEL = Uint8Array.of(0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c); // "\.//^\"
const MLKEM1024X25519_LABEL = TE.encode('PlexiChat MLKEM1024-X25519 v1');

function x25519Shared(sk, pk) {
  // noble refuses an all-zero output (low-order point) with an exception: the KEM check
  // that PROTOCOL.md section 3 requires.
  try {
    return x25519.getSharedSecret(sk, pk);
  } catch {
    throw new KemError('X25519 point of low order', 'x25519');
  }
}

class HybridKem {
  constructor(kemId, name, label, mlkem, level) {
    this.kemId = kemId;
    this.name = name;
    this.label = label;
    this.mlkem = mlkem;
    this.level = level;
    this.mlkemPkSize = mlkem.lengths.publicKey;
    this.mlkemCtSize = mlkem.lengths.cipherText;
    this.publicKeySize = this.mlkemPkSize + X25519_SIZE;
    this.ciphertextSize = this.mlkemCtSize + X25519_SIZE;
  }

  /** ss = SHA3-256(ss_M || ss_X || ct_X || pk_X || label): the draft's combiner, label last. */
  combine(ssM, ssX, ctX, pkX) {
    return sha3_256(concat(ssM, ssX, ctX, pkX, this.label));
  }

  /** KeyGen from a 32-byte seed: SHAKE256(seed, 96) = d || z || sk_X. */
  fromSeed(seed) {
    if (!(seed instanceof Uint8Array) || seed.length !== SEED_SIZE) {
      throw new LocalProtocolError(`seed must be ${SEED_SIZE} bytes`);
    }
    const expanded = shake256(seed, { dkLen: 96 });
    const { publicKey: pkM, secretKey: skM } = this.mlkem.keygen(expanded.subarray(0, 64));
    const skX = expanded.slice(64, 96);
    const pkX = x25519.getPublicKey(skX);
    expanded.fill(0);
    return new HybridPrivateKey(this, seed, skM, skX, concat(pkM, pkX));
  }

  generate() {
    return this.fromSeed(randomBytes(SEED_SIZE));
  }

  /**
   * Encapsulate to a public key. `eseed` (64 bytes: ML-KEM m || X25519 ephemeral) is only for
   * known-answer tests; normal calls draw fresh randomness.
   * Returns { ss, ct }. Throws KemError on a malformed key (size, ML-KEM modulus check) or a
   * low-order X25519 key.
   */
  encapsulate(pk, eseed) {
    if (!(pk instanceof Uint8Array) || pk.length !== this.publicKeySize) {
      throw new KemError('public key has the wrong size', 'mlkem');
    }
    const pkM = pk.subarray(0, this.mlkemPkSize);
    const pkX = pk.subarray(this.mlkemPkSize);
    let enc;
    try {
      // noble's encapsulate runs the FIPS 203 encapsulation-key modulus check.
      enc = this.mlkem.encapsulate(pkM, eseed ? eseed.subarray(0, 32) : undefined);
    } catch {
      throw new KemError('invalid ML-KEM public key', 'mlkem');
    }
    const ekX = eseed ? eseed.slice(32, 64) : randomBytes(32);
    const ctX = x25519.getPublicKey(ekX);
    const ssX = x25519Shared(ekX, pkX);
    ekX.fill(0);
    const ss = this.combine(enc.sharedSecret, ssX, ctX, pkX);
    return { ss, ct: concat(enc.cipherText, ctX) };
  }
}

class HybridPrivateKey {
  constructor(kem, seed, skM, skX, publicBytes) {
    this.kem = kem;
    this._seed = seed;
    this._skM = skM;
    this._skX = skX;
    this.publicBytes = publicBytes;
  }

  /** ML-KEM implicit rejection: a tampered ct_M gives a wrong secret, never an error. */
  decapsulate(ct) {
    if (!this._skM) throw new LocalProtocolError('key erased');
    if (!(ct instanceof Uint8Array) || ct.length !== this.kem.ciphertextSize) {
      throw new KemError('ciphertext has the wrong size', 'mlkem');
    }
    const ctM = ct.subarray(0, this.kem.mlkemCtSize);
    const ctX = ct.subarray(this.kem.mlkemCtSize);
    const ssM = this.kem.mlkem.decapsulate(ctM, this._skM);
    const ssX = x25519Shared(this._skX, ctX);
    const pkX = this.publicBytes.subarray(this.kem.mlkemPkSize);
    return this.kem.combine(ssM, ssX, ctX, pkX);
  }

  /** Best-effort erasure (JS gives no guarantee, but the references are dropped). */
  erase() {
    for (const b of [this._seed, this._skM, this._skX]) if (b) b.fill(0);
    this._seed = this._skM = this._skX = null;
  }
}

export const XWING = new HybridKem(0x0001, 'X-Wing', XWING_LABEL, ml_kem768, 3);
export const MLKEM1024_X25519 = new HybridKem(
  0x0002, 'MLKEM1024-X25519', MLKEM1024X25519_LABEL, ml_kem1024, 5,
);
export const KEMS = new Map([[XWING.kemId, XWING], [MLKEM1024_X25519.kemId, MLKEM1024_X25519]]);

// ------------------------------------------------------------------------------------------
// Suites (PROTOCOL.md section 2; crypto/suite.py)
// ------------------------------------------------------------------------------------------

// An AEAD factory: (key) -> { seal(nonce, pt, aad), open(nonce, ct, aad) }; ct includes the tag.
const CHACHA = (key) => ({
  seal: (nonce, pt, aad) => chacha20poly1305(key, nonce, aad).encrypt(pt),
  open: (nonce, ct, aad) => chacha20poly1305(key, nonce, aad).decrypt(ct),
});
const AESGCM = (key) => ({
  seal: (nonce, pt, aad) => gcm(key, nonce, aad).encrypt(pt),
  open: (nonce, ct, aad) => gcm(key, nonce, aad).decrypt(ct),
});

export const Level = Object.freeze({ STANDARD: 1, HIGH: 2 });

function suite(id, name, kem, aeadName, aead, level) {
  return Object.freeze({ id, name, kem, aeadName, aead, level });
}
export const SUITES = Object.freeze([
  suite(0x0101, 'XWING_CHACHA20POLY1305_SHA256', XWING, 'ChaCha20-Poly1305', CHACHA, Level.STANDARD),
  suite(0x0102, 'XWING_AES256GCM_SHA256', XWING, 'AES-256-GCM', AESGCM, Level.STANDARD),
  suite(0x0201, 'MLKEM1024X25519_CHACHA20POLY1305_SHA256', MLKEM1024_X25519, 'ChaCha20-Poly1305',
    CHACHA, Level.HIGH),
  suite(0x0202, 'MLKEM1024X25519_AES256GCM_SHA256', MLKEM1024_X25519, 'AES-256-GCM', AESGCM,
    Level.HIGH),
]);
export const SUITES_BY_ID = new Map(SUITES.map((s) => [s.id, s]));
export const SUITES_BY_NAME = new Map(SUITES.map((s) => [s.name, s]));
const MAX_OFFERED_SUITES = 8;

// ------------------------------------------------------------------------------------------
// Key schedule (PROTOCOL.md section 5 and 6; crypto/keyschedule.py)
// ------------------------------------------------------------------------------------------

const LABEL_PREFIX = TE.encode('plexichat v1 ');
export const HANDSHAKE_SALT = TE.encode('plexichat v1 handshake');

export const hash = (...parts) => sha256(concat(...parts));
export const hmacSha256 = (key, data) => hmac(sha256, key, data);
/** RFC 5869 Extract: PRK = HMAC(salt, IKM) (the salt is the HMAC key). */
export const hkdfExtract = (salt, ikm) => hmacSha256(salt, ikm);

/** info = u16(L) || u8(len("plexichat v1 " + label)) || "plexichat v1 " + label || u8(len(ctx)) || ctx */
export function expandLabel(secret, label, context, length = 32) {
  const full = concat(LABEL_PREFIX, typeof label === 'string' ? TE.encode(label) : label);
  if (full.length > 255 || context.length > 255) throw new LocalProtocolError('label or context too long');
  const info = concat(u16(length), u8(full.length), full, u8(context.length), context);
  return hkdfExpand(sha256, secret, info, length);
}

/** (c2s, s2c) initial chain keys of epoch e; the context is u32(e). */
export function chainKeys(epochSecret, epoch) {
  const ctx = u32(epoch);
  return [expandLabel(epochSecret, 'c2s chain', ctx), expandLabel(epochSecret, 's2c chain', ctx)];
}

/** One ratchet step: (message key, next chain key) = (HMAC(ck, 0x01), HMAC(ck, 0x02)). */
export function ratchetStep(chainKey) {
  return [hmacSha256(chainKey, Uint8Array.of(1)), hmacSha256(chainKey, Uint8Array.of(2))];
}

/** epoch_{e+1} = HKDF-Extract(salt = epoch_e, IKM = ss || H(u32(e+1) || pk || ct)). */
export function nextEpochSecret(epochSecret, ssRekey, rekeyTh) {
  return hkdfExtract(epochSecret, concat(ssRekey, rekeyTh));
}
export const rekeyTranscript = (epoch, pk, ct) => hash(u32(epoch), pk, ct);

/** es, ms, finished keys, epoch 0 and resumption secrets from the two KEM secrets. */
export function handshakeSecrets(ssE, ssS, th2, th3) {
  const es = hkdfExtract(HANDSHAKE_SALT, ssE);
  const ms = hkdfExtract(es, ssS);
  return {
    es,
    ms,
    fkC: expandLabel(ms, 'c finished', th2),
    fkS: expandLabel(ms, 's finished', th3),
    epoch0: expandLabel(ms, 'epoch', th3),
    resumption: expandLabel(ms, 'resumption', th3),
  };
}

// ------------------------------------------------------------------------------------------
// Gateway certificate (PROTOCOL.md section 4; crypto/cert.py)
// ------------------------------------------------------------------------------------------

const CERT_MAGIC = TE.encode('PXC1');
export const CERT_SIG_CONTEXT = TE.encode('plexichat gateway cert v1');
export const ROOT_PUBLIC_KEY_SIZE = 1952;
const MAX_CERT_SIZE = 8192;
const CERT_FIXED = 4 + 2 + 16 + 8 + 8;

const computeKeyId = (kemId, pk) => hash(u16(kemId), pk).subarray(0, 16);

/** Parse a certificate; throws SessionError(4005) on any malformed byte. */
export function parseCertificate(data) {
  if (!(data instanceof Uint8Array) || data.length > MAX_CERT_SIZE || data.length < CERT_FIXED + 4) {
    throw certificateError('certificate has a bad length');
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (!equalBytes(data.subarray(0, 4), CERT_MAGIC)) throw certificateError('not a PlexiChat certificate');
  const kemId = v.getUint16(4);
  const kem = KEMS.get(kemId);
  if (!kem) throw certificateError('certificate names an unknown KEM');
  const keyId = data.slice(6, 22);
  const notBefore = Number(v.getBigUint64(22));
  const notAfter = Number(v.getBigUint64(30));
  let off = CERT_FIXED;
  const pkLen = v.getUint16(off);
  off += 2;
  if (off + pkLen + 2 > data.length) throw certificateError('certificate truncated');
  const publicKey = data.slice(off, off + pkLen);
  off += pkLen;
  const sigLen = v.getUint16(off);
  off += 2;
  if (off + sigLen !== data.length) throw certificateError('certificate has a bad length');
  const signature = data.slice(off);
  return { kem, keyId, notBefore, notAfter, publicKey, signature, tbs: data.slice(0, off - 2) };
}

/**
 * Verify in the order of PROTOCOL.md section 4: signature under the pinned root (ML-DSA-65,
 * FIPS 204 pure, context "plexichat gateway cert v1"), key id, validity period (client clock).
 * The last check, that the public key loads, happens when the client encapsulates to it.
 */
export function verifyCertificate(cert, rootPublicKey, nowS) {
  if (!(rootPublicKey instanceof Uint8Array) || rootPublicKey.length !== ROOT_PUBLIC_KEY_SIZE) {
    throw certificateError('pinned root key is malformed');
  }
  let ok = false;
  try {
    ok = ml_dsa65.verify(cert.signature, cert.tbs, rootPublicKey, { context: CERT_SIG_CONTEXT });
  } catch {
    ok = false; // malformed signature or key: not valid
  }
  if (!ok) throw certificateError('certificate signature invalid');
  if (!equalBytes(computeKeyId(cert.kem.kemId, cert.publicKey), cert.keyId)) {
    throw certificateError('certificate key id mismatch');
  }
  if (!(cert.notBefore <= nowS && nowS <= cert.notAfter)) {
    throw certificateError('certificate outside its validity period');
  }
  if (cert.publicKey.length !== cert.kem.publicKeySize) {
    throw certificateError('certified public key is malformed');
  }
}

// ------------------------------------------------------------------------------------------
// Handshake messages (PROTOCOL.md section 5; crypto/messages.py)
// ------------------------------------------------------------------------------------------

export const HandshakeType = Object.freeze({
  CLIENT_HELLO: 1, SERVER_HELLO: 2, CLIENT_KEM: 3, SERVER_FINISHED: 4,
});
const MAC_SIZE = 32;
const MAX_HANDSHAKE_MESSAGE = 16384;

function openMessage(data, expected) {
  if (data.length > MAX_HANDSHAKE_MESSAGE) throw handshakeError('handshake message too large');
  if (data.length < 2) throw handshakeError('handshake message truncated');
  if (data[0] !== VERSION) throw handshakeError('unsupported protocol version');
  if (data[1] !== expected) throw handshakeError('unexpected handshake message type');
  return new Reader(data, 2);
}

export function encodeClientHello(timeMs, suiteIds, shares) {
  const parts = [u8(VERSION), u8(HandshakeType.CLIENT_HELLO), u64(timeMs), u8(suiteIds.length)];
  for (const id of suiteIds) parts.push(u16(id));
  parts.push(u8(shares.length));
  for (const [kemId, pk] of shares) parts.push(u16(kemId), vec16(pk));
  return concat(...parts);
}

export function parseServerHello(data) {
  const r = openMessage(data, HandshakeType.SERVER_HELLO);
  const suiteId = r.u16();
  const serverTimeMs = r.u64();
  const ciphertext = r.vec16();
  const certificate = r.vec16();
  r.end();
  return { suiteId, serverTimeMs, ciphertext, certificate };
}

const clientKemWithoutMac = (ct) => concat(u8(VERSION), u8(HandshakeType.CLIENT_KEM), vec16(ct));

export function parseServerFinished(data) {
  const r = openMessage(data, HandshakeType.SERVER_FINISHED);
  const mac = r.take(MAC_SIZE);
  r.end();
  return mac;
}

// ------------------------------------------------------------------------------------------
// Records (PROTOCOL.md section 6; crypto/record.py, crypto/replay.py)
// ------------------------------------------------------------------------------------------

export const RecordType = Object.freeze({
  APPLICATION: 0x10, REKEY_INIT: 0x11, REKEY_ACK: 0x12, REKEY_FIN: 0x13, REKEY_REQUEST: 0x14,
  // Resumption ticket from the gateway (crypto/ticket.py). This client does not resume (it
  // keeps no secret beyond the page's life), so a ticket is authenticated and then dropped.
  NEW_TICKET: 0x15,
});
const RECORD_TYPES = new Set(Object.values(RecordType));
// What a client may receive once keys exist (the type byte is authenticated as AAD).
const CLIENT_RECEIVES = new Set([
  RecordType.APPLICATION, RecordType.REKEY_ACK, RecordType.REKEY_REQUEST, RecordType.NEW_TICKET,
]);
export const HEADER_SIZE = 22;
export const TAG_SIZE = 16;
export const MAX_EPOCH = 2 ** 32 - 1;

/** u8 version || u8 type || u32 epoch || u64 sequence || u64 timestamp_ms */
export function encodeHeader(type, epoch, seq, timestampMs) {
  const h = new Uint8Array(HEADER_SIZE);
  const v = new DataView(h.buffer);
  v.setUint8(0, VERSION);
  v.setUint8(1, type);
  v.setUint32(2, epoch);
  v.setBigUint64(6, BigInt(seq));
  v.setBigUint64(14, BigInt(timestampMs));
  return h;
}

/** Split a record into header fields, header bytes (the AAD) and ciphertext; 4010 if malformed. */
export function parseRecord(data) {
  if (data.length < HEADER_SIZE + TAG_SIZE) throw recordError('record truncated');
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint8(0) !== VERSION) throw recordError('unsupported record version');
  const type = v.getUint8(1);
  if (!RECORD_TYPES.has(type)) throw recordError('unknown record type');
  return {
    type,
    epoch: v.getUint32(2),
    seq: v.getBigUint64(6), // BigInt: compared exactly, whatever the peer sent
    timestampMs: Number(v.getBigUint64(14)),
    headerBytes: data.subarray(0, HEADER_SIZE),
    ciphertext: data.subarray(HEADER_SIZE),
  };
}

/** nonce_n = 00 00 00 00 || u64(n) */
const recordNonce = (seq) => concat(new Uint8Array(4), u64(seq));

/** Seals the records of one direction of one epoch; each chain key is dropped once used. */
export class SendChain {
  constructor(aead, chainKey, epoch, maxSeq) {
    this.aead = aead;
    this.chainKey = chainKey;
    this.epoch = epoch;
    this.maxSeq = maxSeq;
    this.nextSeq = 0;
  }
  seal(type, payload, timestampMs) {
    if (!this.chainKey) throw new LocalProtocolError('send chain is closed');
    const seq = this.nextSeq;
    if (seq > this.maxSeq) throw new SessionError(CloseCode.LIMIT_REACHED, 'sequence limit reached; rekey or close');
    const header = encodeHeader(type, this.epoch, seq, timestampMs);
    const [mk, next] = ratchetStep(this.chainKey);
    this.chainKey.fill(0);
    this.chainKey = next;
    this.nextSeq = seq + 1;
    const sealed = this.aead(mk).seal(recordNonce(seq), payload, header);
    mk.fill(0);
    return concat(header, sealed);
  }
  close() {
    if (this.chainKey) this.chainKey.fill(0);
    this.chainKey = null;
  }
}

/** Opens the records of one direction of one epoch; moves forward only after a good tag. */
export class ReceiveChain {
  constructor(aead, chainKey, epoch) {
    this.aead = aead;
    this.chainKey = chainKey;
    this.epoch = epoch;
  }
  open(rec) {
    if (!this.chainKey) throw new LocalProtocolError('receive chain is closed');
    const [mk, next] = ratchetStep(this.chainKey);
    let plaintext;
    try {
      plaintext = this.aead(mk).open(recordNonce(rec.seq), rec.ciphertext, rec.headerBytes);
    } catch {
      next.fill(0);
      throw new SessionError(CloseCode.DECRYPT_FAILED, 'record authentication failed');
    } finally {
      mk.fill(0);
    }
    this.chainKey.fill(0);
    this.chainKey = next;
    return plaintext;
  }
  close() {
    if (this.chainKey) this.chainKey.fill(0);
    this.chainKey = null;
  }
}

/** Exact replay window (ordered transport): check before opening, commit after. */
export class ReplayWindow {
  constructor(offsetMs, maxSkewMs, maxSeq) {
    this.epoch = 0;
    this.nextSeq = 0;
    this.lastTimestampMs = 0;
    this.offsetMs = offsetMs; // peer clock minus ours, measured at the handshake
    this.maxSkewMs = maxSkewMs;
    this.maxSeq = maxSeq;
  }
  check(epoch, seq, timestampMs, nowMs) {
    const next = BigInt(this.nextSeq);
    if (epoch !== this.epoch) throw new SessionError(CloseCode.SEQUENCE, 'record from an unexpected epoch');
    if (seq < next) throw new SessionError(CloseCode.REPLAY, 'replayed record');
    if (seq > next) throw new SessionError(CloseCode.SEQUENCE, 'record sequence number skips ahead');
    if (seq > BigInt(this.maxSeq)) throw new SessionError(CloseCode.LIMIT_REACHED, 'peer exceeded the sequence limit');
    if (Math.abs(timestampMs - (nowMs + this.offsetMs)) > this.maxSkewMs) {
      throw new SessionError(CloseCode.TIMESTAMP, 'record timestamp outside allowed skew');
    }
    if (timestampMs + this.maxSkewMs < this.lastTimestampMs) {
      throw new SessionError(CloseCode.TIMESTAMP, 'record timestamp went backwards');
    }
  }
  commit(seq, timestampMs) {
    this.nextSeq = Number(seq) + 1;
    if (timestampMs > this.lastTimestampMs) this.lastTimestampMs = timestampMs;
  }
  nextEpoch() {
    this.epoch += 1;
    this.nextSeq = 0;
  }
}

// ------------------------------------------------------------------------------------------
// ClientSession: sans-I/O (crypto/session.py ClientSession + ClientHandshake)
// ------------------------------------------------------------------------------------------

/** Defaults as in PROTOCOL.md section 9 (SessionLimits). */
export const DEFAULT_LIMITS = Object.freeze({
  maxSkewMs: 30_000,
  maxRecordSize: 65_536 + 22 + 16,
  rekeyAfterRecords: 100_000,
  rekeyAfterMs: 30 * 60 * 1000,
  maxSeq: 2 ** 32 - 1,
  maxEpoch: MAX_EPOCH,
});

export const State = Object.freeze({
  START: 'start',
  WAIT_SERVER_HELLO: 'wait_server_hello',
  WAIT_SERVER_FINISHED: 'wait_server_finished',
  ESTABLISHED: 'established',
  FAILED: 'failed',
});

/**
 * The client side of one PlexiChat session, without I/O.
 *
 *   const s = new ClientSession({ rootPublicKey });
 *   s.connect();                      // queues the ClientHello
 *   ws.send(...s.dataToSend())        // each item is one binary frame
 *   events = s.receiveData(frame)     // handshake_complete, application_data, key_updated, failed
 *   s.send(bytes)                     // queues one APPLICATION record
 *
 * Bad bytes from the peer never throw out of receiveData: the session emits one
 * { type: 'failed', code, reason } event and ignores everything after (FAILED is terminal).
 * Local misuse throws LocalProtocolError at once.
 */
export class ClientSession {
  constructor({ rootPublicKey, suites, limits, clock } = {}) {
    if (!(rootPublicKey instanceof Uint8Array)) throw new LocalProtocolError('rootPublicKey must be bytes');
    const names = suites ?? SUITES.map((s) => s.name);
    const offered = names.map((n) => {
      const s = SUITES_BY_NAME.get(n);
      if (!s) throw new LocalProtocolError(`unknown suite ${n}`);
      return s;
    });
    if (offered.length < 1 || offered.length > MAX_OFFERED_SUITES) throw new LocalProtocolError('offer 1..8 suites');
    if (new Set(offered).size !== offered.length) throw new LocalProtocolError('duplicate suite');
    this.root = rootPublicKey;
    this.offered = offered;
    this.limits = { ...DEFAULT_LIMITS, ...(limits ?? {}) };
    this.clock = clock ?? (() => Date.now());
    this.state = State.START;
    this.failure = null;
    this.suite = null;
    this.keyId = null;
    this.epoch = 0;
    this._events = [];
    this._out = [];
    this._ephemeral = new Map(); // kemId -> HybridPrivateKey (erased once ss_E is known)
    this._transcript = [];
    this._pendingFinished = null; // { fkS, th3 }
    this._epochSecret = null;
    this._send = null;
    this._recv = null;
    this._window = null;
    this._epochStartedMs = 0;
    this._rekeyKey = null;
    this.resumptionSecret = null;
  }

  // -- the verbs --------------------------------------------------------------------------

  /** Queue the ClientHello: one fresh ephemeral key per distinct KEM among the offered suites. */
  connect() {
    if (this.state !== State.START) throw new LocalProtocolError('connect() called twice');
    const shares = [];
    for (const s of this.offered) {
      if (!this._ephemeral.has(s.kem.kemId)) {
        const key = s.kem.generate();
        this._ephemeral.set(s.kem.kemId, key);
        shares.push([s.kem.kemId, key.publicBytes]);
      }
    }
    const hello = encodeClientHello(this.clock(), this.offered.map((s) => s.id), shares);
    this._transcript.push(hello);
    this._out.push(hello);
    this.state = State.WAIT_SERVER_HELLO;
  }

  /** Take one binary frame from the gateway; returns (and drains) the events it caused. */
  receiveData(data) {
    if (this.state === State.FAILED) return this.eventsReceived();
    if (data instanceof ArrayBuffer) data = new Uint8Array(data);
    if (!(data instanceof Uint8Array)) throw new LocalProtocolError('receiveData takes bytes');
    try {
      if (data.length > this.limits.maxRecordSize) {
        throw new SessionError(CloseCode.LIMIT_REACHED, 'frame too large');
      }
      this._dispatch(data.slice());
    } catch (exc) {
      if (exc instanceof SessionError) this._fail(exc);
      else if (exc instanceof LocalProtocolError) throw exc;
      else this._fail(new SessionError(CloseCode.PROTOCOL_ERROR, 'protocol error')); // library threw on bad input
    }
    return this.eventsReceived();
  }

  eventsReceived() {
    const e = this._events;
    this._events = [];
    return e;
  }

  /** Frames to write, in order, each as one binary WebSocket message. */
  dataToSend() {
    const o = this._out;
    this._out = [];
    return o;
  }

  get canSend() {
    return this._send !== null && this.state !== State.FAILED;
  }

  /** Queue one APPLICATION record (a rekey starts first if its limits are reached). */
  send(payload) {
    if (!this.canSend) throw new LocalProtocolError(`cannot send application data in state ${this.state}`);
    if (payload.length > this.limits.maxRecordSize - 38) throw new LocalProtocolError('payload larger than the record limit');
    try {
      this._beforeSend();
      this._seal(RecordType.APPLICATION, payload);
    } catch (exc) {
      if (exc instanceof SessionError) this._fail(exc);
      else throw exc;
    }
  }

  /** Let time-based policy act (rekey after rekeyAfterMs); call periodically. */
  tick() {
    if (this.state !== State.ESTABLISHED) return;
    try {
      this._beforeSend();
    } catch (exc) {
      if (exc instanceof SessionError) this._fail(exc);
      else throw exc;
    }
  }

  /** Begin an in-band rekey now (no-op while one is in flight). */
  startRekey() {
    if (this.state !== State.ESTABLISHED) throw new LocalProtocolError('rekey needs an established session');
    if (this._rekeyKey) return;
    try {
      this._startRekey();
    } catch (exc) {
      if (exc instanceof SessionError) this._fail(exc);
      else throw exc;
    }
  }

  /** Fail locally (e.g. the transport broke a rule); emits a failed event once. */
  abort(code, reason) {
    if (this.state !== State.FAILED) this._fail(new SessionError(code, reason));
  }

  // -- internals --------------------------------------------------------------------------

  _fail(exc) {
    this.state = State.FAILED;
    for (const c of [this._send, this._recv]) if (c) c.close();
    for (const k of this._ephemeral.values()) k.erase();
    this._ephemeral.clear();
    if (this._rekeyKey) this._rekeyKey.erase();
    this._rekeyKey = null;
    if (this._epochSecret) this._epochSecret.fill(0);
    this._epochSecret = null;
    this._pendingFinished = null;
    this.failure = { type: 'failed', code: exc.code, reason: exc.reason };
    this._events.push(this.failure);
  }

  _dispatch(data) {
    switch (this.state) {
      case State.ESTABLISHED:
        return this._receiveRecord(data);
      case State.WAIT_SERVER_HELLO:
        return this._onServerHello(data);
      case State.WAIT_SERVER_FINISHED:
        return this._onServerFinished(data);
      default:
        throw handshakeError('unexpected message before connect()');
    }
  }

  _onServerHello(data) {
    const now = this.clock();
    const sh = parseServerHello(data);
    const suite = SUITES_BY_ID.get(sh.suiteId);
    if (!suite || !this.offered.includes(suite)) throw handshakeError('gateway chose a suite that was not offered');
    const cert = parseCertificate(sh.certificate);
    verifyCertificate(cert, this.root, Math.floor(now / 1000));
    // (ss_S, ct_S) = Encaps(cert.public_key). A certified key that does not load (size, ML-KEM
    // modulus check) is a bad certificate (4005), the last check of section 4; a low-order
    // X25519 half fails the handshake (4002), as in the Python reference.
    let ssS, ctS;
    try {
      ({ ss: ssS, ct: ctS } = cert.kem.encapsulate(cert.publicKey));
    } catch (exc) {
      if (!(exc instanceof KemError)) throw exc;
      if (exc.part === 'mlkem') throw certificateError('certified public key is malformed');
      throw handshakeFailed();
    }
    if (cert.kem.kemId !== suite.kem.kemId) throw certificateError('certificate KEM does not match the suite');
    // ss_E = Decaps(sk_E, ct_E); a tampered ML-KEM ciphertext gives a wrong secret (implicit
    // rejection) and fails at Finished; a wrong size or low-order X25519 value fails now.
    let ssE;
    try {
      ssE = this._ephemeral.get(suite.kem.kemId).decapsulate(sh.ciphertext);
    } catch (exc) {
      if (exc instanceof KemError) throw handshakeFailed();
      throw exc;
    }
    // Forward secrecy: the ephemeral private keys are no longer needed.
    for (const k of this._ephemeral.values()) k.erase();
    this._ephemeral.clear();
    this._transcript.push(data);
    // th2 = H(CH || SH || CK without its MAC); client Finished = HMAC(fk_c, th2)
    const ckHead = clientKemWithoutMac(ctS);
    const th2 = hash(...this._transcript, ckHead);
    const es = hkdfExtract(HANDSHAKE_SALT, ssE);
    const ms = hkdfExtract(es, ssS);
    const fkC = expandLabel(ms, 'c finished', th2);
    const ck = concat(ckHead, hmacSha256(fkC, th2));
    this._transcript.push(ck);
    // th3 = H(CH || SH || CK)
    const th3 = hash(...this._transcript);
    this._transcript = [];
    this._pendingFinished = { fkS: expandLabel(ms, 's finished', th3), th3 };
    const epoch0 = expandLabel(ms, 'epoch', th3);
    this.resumptionSecret = expandLabel(ms, 'resumption', th3);
    for (const b of [ssE, ssS, es, ms, fkC]) b.fill(0);
    this.suite = suite;
    this.keyId = cert.keyId;
    this._install(epoch0, sh.serverTimeMs - now);
    this._out.push(ck);
    this.state = State.WAIT_SERVER_FINISHED;
  }

  _onServerFinished(data) {
    const mac = parseServerFinished(data);
    const { fkS, th3 } = this._pendingFinished;
    const ok = equalBytes(hmacSha256(fkS, th3), mac); // constant-time comparison
    fkS.fill(0);
    this._pendingFinished = null;
    if (!ok) throw handshakeFailed();
    this.state = State.ESTABLISHED;
    this._events.push({ type: 'handshake_complete', suite: this.suite.name, keyId: this.keyId });
  }

  _install(epochSecret, peerOffsetMs) {
    this._epochSecret = epochSecret;
    const [c2s, s2c] = chainKeys(epochSecret, 0);
    this._send = new SendChain(this.suite.aead, c2s, 0, this.limits.maxSeq);
    this._recv = new ReceiveChain(this.suite.aead, s2c, 0);
    this._window = new ReplayWindow(peerOffsetMs, this.limits.maxSkewMs, this.limits.maxSeq);
    this._epochStartedMs = this.clock();
  }

  _seal(type, payload) {
    this._out.push(this._send.seal(type, payload, this.clock()));
  }

  // Checks in the order of PROTOCOL.md section 6 "Receiving"; the replay state moves only
  // after the tag verified, so a forged record never advances it.
  _receiveRecord(data) {
    const rec = parseRecord(data);
    this._window.check(rec.epoch, rec.seq, rec.timestampMs, this.clock());
    const plaintext = this._recv.open(rec);
    this._window.commit(rec.seq, rec.timestampMs);
    if (!CLIENT_RECEIVES.has(rec.type)) throw recordError('record type not allowed in this direction');
    if (rec.type === RecordType.APPLICATION) {
      this._events.push({ type: 'application_data', data: plaintext });
    } else if (rec.type === RecordType.NEW_TICKET) {
      this._events.push({ type: 'new_ticket', size: plaintext.length }); // not kept: no resumption
      plaintext.fill(0);
    } else if (rec.type === RecordType.REKEY_REQUEST) {
      if (plaintext.length) throw recordError('REKEY_REQUEST carries no payload');
      if (!this._rekeyKey) this._startRekey();
    } else {
      this._onRekeyAck(plaintext);
    }
  }

  _rekeyDue() {
    return (
      this._send.nextSeq >= this.limits.rekeyAfterRecords ||
      this.clock() - this._epochStartedMs >= this.limits.rekeyAfterMs
    );
  }

  _beforeSend() {
    if (this.state === State.ESTABLISHED && !this._rekeyKey && this._rekeyDue()) this._startRekey();
  }

  // REKEY_INIT (in c2s epoch e): a fresh ephemeral KEM public key of the session suite's KEM.
  _startRekey() {
    this._rekeyKey = this.suite.kem.generate();
    this._seal(RecordType.REKEY_INIT, this._rekeyKey.publicBytes);
  }

  // REKEY_ACK (in s2c epoch e) carries ct; the gateway now sends in e+1. We answer REKEY_FIN
  // in c2s epoch e, then send in e+1. Every key of epoch e is erased.
  _onRekeyAck(ct) {
    if (!this._rekeyKey) throw recordError('REKEY_ACK without a rekey in flight');
    const key = this._rekeyKey;
    this._rekeyKey = null;
    let ss;
    try {
      ss = key.decapsulate(ct);
    } catch (exc) {
      if (exc instanceof KemError) throw recordError('bad rekey ciphertext');
      throw exc;
    }
    const newEpoch = this.epoch + 1;
    if (newEpoch > this.limits.maxEpoch) throw new SessionError(CloseCode.LIMIT_REACHED, 'epoch limit reached');
    const secret = nextEpochSecret(this._epochSecret, ss, rekeyTranscript(newEpoch, key.publicBytes, ct));
    key.erase();
    ss.fill(0);
    this._epochSecret.fill(0);
    this._epochSecret = secret;
    this.epoch = newEpoch;
    this._epochStartedMs = this.clock();
    const [c2s, s2c] = chainKeys(secret, newEpoch);
    // receive side moves to e+1 now
    this._recv.close();
    this._recv = new ReceiveChain(this.suite.aead, s2c, newEpoch);
    this._window.nextEpoch();
    // REKEY_FIN still in the old send epoch, then switch
    this._seal(RecordType.REKEY_FIN, new Uint8Array(0));
    this._send.close();
    this._send = new SendChain(this.suite.aead, c2s, newEpoch, this.limits.maxSeq);
    this._events.push({ type: 'key_updated', epoch: newEpoch });
  }
}

// ------------------------------------------------------------------------------------------
// WebSocket driver and application ops (PROTOCOL.md section 1 and 7; clients/sdk.py)
// ------------------------------------------------------------------------------------------

/** A session or request ended with a close code (or an `error` reply: code is a string). */
export class PlexiChatError extends Error {
  constructor(code, reason) {
    super(`${code}: ${reason}`);
    this.name = 'PlexiChatError';
    this.code = code;
    this.reason = reason;
  }
}

// Browsers may only send close codes 1000 and 3000-4999 (WebSocket.close throws otherwise);
// for 1003/1009/1011 we close with 1000 and keep the real code locally.
const sendableCloseCode = (code) => (code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000);

/**
 * One connection to the gateway.
 *
 *   const c = await PlexiChatClient.connect('ws://host:port/', { rootPublicKey, token });
 *   c.onmessage = (m) => ...;   // { channel, from, body, mid, ts }
 *   c.onclose = ({ code, reason }) => ...;
 *   await c.join('lobby'); await c.publish('lobby', 'hi');
 */
export class PlexiChatClient {
  constructor(ws, session, options) {
    this.ws = ws;
    this.session = session;
    this.options = options;
    this.suite = session.suite ? session.suite.name : '?';
    this.user = null;
    this.closed = null; // { code, reason } once closed
    this.rekeys = 0;
    this.onmessage = null;
    this.onclose = null;
    this.onrekey = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> { resolve, reject, timer }
    // Keepalive: the gateway closes a session that sent nothing for idle_timeout (default
    // 300 s, close 4032); a `ping` op after keepaliveMs of silence keeps an open page alive.
    this._keepaliveMs = options.keepaliveMs ?? 120_000;
    this._lastSend = Date.now();
    this._tick = setInterval(() => {
      if (this.closed) return;
      this.session.tick(); // time-based rekey (rekeyAfterMs)
      this._flush();
      if (Date.now() - this._lastSend >= this._keepaliveMs) this.ping().catch(() => {});
    }, options.tickMs ?? 5000);
  }

  /**
   * Open the WebSocket, run the handshake and (with a token) authenticate.
   * Options: rootPublicKey (Uint8Array, required), token, suites (names), timeoutMs,
   * limits, keepaliveMs, tickMs, WebSocket (constructor, for non-browser use).
   */
  static async connect(url, options) {
    const opts = { timeoutMs: 10_000, ...options };
    const WS = opts.WebSocket ?? globalThis.WebSocket;
    const session = new ClientSession({
      rootPublicKey: opts.rootPublicKey, suites: opts.suites, limits: opts.limits,
    });
    const ws = new WS(url);
    ws.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        session.abort(CloseCode.HANDSHAKE_TIMEOUT, 'handshake timeout');
        try { ws.close(CloseCode.HANDSHAKE_TIMEOUT, 'handshake timeout'); } catch { /* closed */ }
        reject(new PlexiChatError(CloseCode.HANDSHAKE_TIMEOUT, 'handshake timeout'));
      }, opts.timeoutMs);
      const done = (err) => {
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        if (err) reject(err);
        else resolve();
      };
      const flush = () => {
        for (const frame of session.dataToSend()) ws.send(frame);
      };
      ws.onopen = () => {
        session.connect();
        flush();
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') {
          session.abort(CloseCode.UNSUPPORTED_DATA, 'text frame');
          ws.close(sendableCloseCode(CloseCode.UNSUPPORTED_DATA), 'text frame');
          return done(new PlexiChatError(CloseCode.UNSUPPORTED_DATA, 'text frame'));
        }
        const events = session.receiveData(new Uint8Array(ev.data));
        flush();
        for (const e of events) {
          if (e.type === 'failed') {
            ws.close(sendableCloseCode(e.code), e.reason);
            return done(new PlexiChatError(e.code, e.reason));
          }
          if (e.type === 'handshake_complete') return done();
        }
      };
      ws.onclose = (ev) => done(new PlexiChatError(ev.code || 1006, ev.reason || 'connection closed'));
      ws.onerror = () => {}; // onclose follows with the code
    });
    const client = new PlexiChatClient(ws, session, opts);
    client._attach();
    if (opts.token) await client.authenticate(opts.token);
    return client;
  }

  _attach() {
    this.ws.onmessage = (ev) => {
      if (this.closed) return;
      if (typeof ev.data === 'string') {
        this.session.abort(CloseCode.UNSUPPORTED_DATA, 'text frame');
      } else {
        this.session.receiveData(new Uint8Array(ev.data)).forEach((e) => this._event(e));
      }
      this._flush();
    };
    this.ws.onclose = (ev) => this._closed(ev.code || 1006, ev.reason || 'connection lost');
    this.ws.onerror = () => {};
  }

  _flush() {
    if (this.closed) return;
    for (const frame of this.session.dataToSend()) {
      this.ws.send(frame);
      this._lastSend = Date.now();
    }
    this.session.eventsReceived().forEach((e) => this._event(e));
  }

  _event(e) {
    if (e.type === 'application_data') this._payload(e.data);
    else if (e.type === 'key_updated') {
      this.rekeys += 1;
      if (this.onrekey) this.onrekey(e.epoch);
    } else if (e.type === 'failed') {
      // Flush what is queued (nothing after a failure), then close with the session's code.
      try { this.ws.close(sendableCloseCode(e.code), e.reason); } catch { /* already closed */ }
      this._closed(e.code, e.reason);
    }
  }

  _payload(data) {
    let obj;
    try {
      obj = JSON.parse(TD.decode(data));
    } catch {
      return; // not JSON: ignored, as the Python SDK does
    }
    if (!obj || typeof obj !== 'object') return;
    if (obj.op === 'msg') {
      if (this.onmessage) this.onmessage({
        channel: String(obj.channel), from: String(obj.from), body: String(obj.body),
        mid: String(obj.mid), ts: Number(obj.ts),
      });
      return;
    }
    const p = this._pending.get(obj.id);
    if (p) {
      this._pending.delete(obj.id);
      clearTimeout(p.timer);
      if (obj.op === 'error') p.reject(new PlexiChatError(String(obj.code), String(obj.message)));
      else p.resolve(obj);
    }
  }

  _closed(code, reason) {
    if (this.closed) return;
    // A local session failure carries the precise code even if the socket reports 1000/1006.
    const failure = this.session.failure;
    this.closed = failure ? { code: failure.code, reason: failure.reason } : { code, reason };
    clearInterval(this._tick);
    const err = new PlexiChatError(this.closed.code, this.closed.reason);
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
    if (this.onclose) this.onclose(this.closed);
  }

  /** Send one JSON request and wait for the reply with the same id. */
  request(obj) {
    if (this.closed) return Promise.reject(new PlexiChatError(this.closed.code, this.closed.reason));
    const id = this._nextId++;
    const payload = TE.encode(JSON.stringify({ ...obj, id }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new PlexiChatError('timeout', `no reply to ${obj.op}`));
      }, this.options.timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      this.session.send(payload);
      this._flush();
    });
  }

  async authenticate(token) {
    const reply = await this.request({ op: 'auth', token });
    this.user = String(reply.user);
    return reply;
  }
  join(channel) { return this.request({ op: 'join', channel }); }
  leave(channel) { return this.request({ op: 'leave', channel }); }
  publish(channel, body) { return this.request({ op: 'publish', channel, body }); }
  async history(channel, limit = 50) {
    const reply = await this.request({ op: 'history', channel, limit });
    return reply.messages ?? [];
  }
  ping() { return this.request({ op: 'ping' }); }

  /** Start an in-band rekey now (the session also rekeys by its own limits). */
  rekey() {
    this.session.startRekey();
    this._flush();
  }

  get epoch() { return this.session.epoch; }

  close() {
    if (!this.closed) {
      try { this.ws.close(1000, 'closed by client'); } catch { /* ignore */ }
      this._closed(1000, 'closed by client');
    }
  }
}
