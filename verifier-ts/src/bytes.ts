/** Byte helpers: hex, concatenation, big-endian integers and the static ABI encoding
 * (docs/protocol/secagg.md §1). */

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** Lower-case hex, two digits a byte, no 0x (§1); `size` in bytes if given. */
export function unhex(s: string, size?: number): Uint8Array {
  if (typeof s !== "string" || !/^([0-9a-f]{2})*$/.test(s)) throw new TypeError("not lower-case hex");
  const out = new Uint8Array(Buffer.from(s, "hex"));
  if (size !== undefined && out.length !== size) throw new TypeError(`expected ${size} bytes, got ${out.length}`);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function u8(i: number): Uint8Array {
  return Uint8Array.of(i & 0xff);
}

export function u16(i: number): Uint8Array {
  if (!Number.isInteger(i) || i < 0 || i > 0xffff) throw new RangeError(`u16 out of range: ${i}`);
  return Uint8Array.of(i >> 8, i & 0xff);
}

/** A non-negative integer as `size` bytes big-endian. */
export function beBytes(v: bigint, size: number): Uint8Array {
  if (v < 0n || v >= 1n << BigInt(8 * size)) throw new RangeError("integer does not fit");
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function beInt(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** An `0x` + 40 hex address of any case, as 20 bytes. */
export function addressBytes(a: string): Uint8Array {
  if (typeof a !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(a)) throw new TypeError(`not an address: ${a}`);
  return unhex(a.slice(2).toLowerCase(), 20);
}

export type AbiValue =
  | { uint256: bigint | number }
  | { address: string }
  | { bytes32: Uint8Array }
  | { bool: boolean };

/** `abi(types; values)` of static types (§1): one 32-byte word each. */
export function abi(...values: AbiValue[]): Uint8Array {
  const words = values.map((v) => {
    if ("uint256" in v) return beBytes(BigInt(v.uint256), 32);
    if ("address" in v) return concat(new Uint8Array(12), addressBytes(v.address));
    if ("bytes32" in v) {
      if (v.bytes32.length !== 32) throw new TypeError("bytes32 must be 32 bytes");
      return v.bytes32;
    }
    return beBytes(v.bool ? 1n : 0n, 32);
  });
  return concat(...words);
}

/** `dec(i)`: the shortest ASCII decimal form. */
export function dec(i: number | bigint): string {
  return BigInt(i).toString(10);
}

/** Words of Z_2^32 as 4 bytes little-endian each. */
export function wordsToBytes(w: Uint32Array): Uint8Array {
  const out = new Uint8Array(w.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < w.length; i++) dv.setUint32(4 * i, w[i], true);
  return out;
}

export function bytesToWords(b: Uint8Array): Uint32Array {
  if (b.length % 4 !== 0) throw new TypeError("not whole words");
  const out = new Uint32Array(b.length / 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(4 * i, true);
  return out;
}
