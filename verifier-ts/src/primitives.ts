/** The primitives of docs/protocol/secagg.md §2. */
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { blake3 as blake3h } from "@noble/hashes/blake3.js";
import { blake2b } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { chacha20 } from "@noble/ciphers/chacha.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { x25519 as x25519c } from "@noble/curves/ed25519.js";
import { ascii, beInt, bytesToWords, concat, equal, hex, u16 } from "./bytes.js";

export const keccak256 = (b: Uint8Array): Uint8Array => keccak_256(b);
export const sha = (b: Uint8Array): Uint8Array => sha256(b);
export const blake3 = (b: Uint8Array): Uint8Array => blake3h(b);

/** tagged_hash(tag, data) = sha256(u16(len(tag)) ‖ tag ‖ data). */
export function taggedHash(tag: Uint8Array | string, data: Uint8Array): Uint8Array {
  const t = typeof tag === "string" ? ascii(tag) : tag;
  if (t.length === 0) throw new RangeError("empty tag");
  return sha256(concat(u16(t.length), t, data));
}

/** derive(seed, info): HKDF-SHA256, empty salt, 32 bytes. */
export function derive(seed: Uint8Array, info: Uint8Array | string): Uint8Array {
  const i = typeof info === "string" ? ascii(info) : info;
  if (i.length === 0) throw new RangeError("empty info");
  const prk = hmac(sha256, new Uint8Array(32), seed);
  return hmac(sha256, prk, concat(i, Uint8Array.of(1)));
}

/** mask(seed, info, L): L words of the ChaCha20 keystream (zero nonce, counter 0) under derive(seed, info). */
export function mask(seed: Uint8Array, info: Uint8Array | string, L: number): Uint32Array {
  const key = derive(seed, info);
  const stream = chacha20(key, new Uint8Array(12), new Uint8Array(4 * L), undefined, 0);
  return bytesToWords(stream);
}

/** The keyed BLAKE2b-128 MAC of §2 (digest length 16: BLAKE2b's parameter, not a cut). */
export function mac(key: Uint8Array, kind: string, sender: number, recipient: number, body: Uint8Array): Uint8Array {
  return blake2b(concat(ascii(kind), u16(sender), u16(recipient), body), {
    dkLen: 16,
    key,
    personalization: ascii("chainml/secagg/4"),
  });
}

export function x25519Public(priv: Uint8Array): Uint8Array {
  return x25519c.getPublicKey(priv);
}

/** X25519; an all-zero shared secret (a low-order peer key) is refused. */
export function x25519(priv: Uint8Array, pub: Uint8Array): Uint8Array {
  let s: Uint8Array;
  try {
    s = x25519c.getSharedSecret(priv, pub);
  } catch {
    throw new RangeError("X25519: low-order or invalid peer key");
  }
  if (equal(s, new Uint8Array(32))) throw new RangeError("X25519: all-zero shared secret");
  return s;
}

const N = secp256k1.Point.CURVE().n;

/** The address that signed `digest` with the 65-byte `r ‖ s ‖ v` signature (§2 rules:
 * v ∈ {27, 28}, 0 < r < N, 0 < s ≤ N/2), lower-case `0x…`; throws if malformed. */
export function recoverSigner(digest: Uint8Array, sig: Uint8Array): string {
  if (digest.length !== 32) throw new RangeError("digest must be 32 bytes");
  if (sig.length !== 65) throw new RangeError("signature must be 65 bytes");
  const r = beInt(sig.subarray(0, 32));
  const s = beInt(sig.subarray(32, 64));
  const v = sig[64];
  if (v !== 27 && v !== 28) throw new RangeError("v must be 27 or 28");
  if (r <= 0n || r >= N) throw new RangeError("r out of range");
  if (s <= 0n || s > N / 2n) throw new RangeError("s not low");
  const point = new secp256k1.Signature(r, s, v - 27).recoverPublicKey(digest);
  const pub = point.toBytes(false);
  return "0x" + hex(keccak256(pub.subarray(1)).subarray(12));
}

/** Whether `sig` over `digest` is by `account` (case-insensitive); never throws. */
export function signedBy(digest: Uint8Array, sig: Uint8Array, account: string): boolean {
  try {
    return recoverSigner(digest, sig) === account.toLowerCase();
  } catch {
    return false;
  }
}
