/** The Fiat–Shamir transcript of the norm-bound proofs (docs/protocol/zk-norm.md §4.1). */
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { shake256 } from "@noble/hashes/sha3.js";
import { ascii, concat, u16 } from "./bytes.js";
import { encodeScalar, ORDER } from "./g1.js";

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

function framed(tag: number, label: string): Uint8Array {
  const l = ascii(label);
  return concat(Uint8Array.of(tag), u16(l.length), l);
}

export class ZkTranscript {
  private state: Uint8Array;

  constructor(dst: string) {
    const d = ascii(dst);
    if (d.length === 0) throw new RangeError("a domain separation tag is required");
    this.state = sha256(concat(u16(d.length), d));
  }

  absorb(label: string, data: Uint8Array): void {
    this.state = sha256(concat(this.state, framed(1, label), u64(data.length), data));
  }

  /** SHA-512 of the state, big-endian modulo r (0 is 1), then absorbed under the label. */
  challenge(label: string): bigint {
    const wide = sha512(concat(this.state, framed(2, label)));
    let v = 0n;
    for (const b of wide) v = (v << 8n) | BigInt(b);
    v %= ORDER;
    if (v === 0n) v = 1n;
    this.absorb(label, encodeScalar(v));
    return v;
  }

  stream(label: string, size: number): Uint8Array {
    const out = shake256(concat(this.state, framed(3, label)), { dkLen: size });
    this.absorb(label, ascii("stream"));
    return out;
  }
}
