/** Round parameters from public data alone (docs/protocol/secagg.md §3, §6). */
import { abi, addressBytes, ascii, concat, dec, u16 } from "./bytes.js";
import { keccak256, mask, taggedHash } from "./primitives.js";

export interface SecureParameters {
  degree: number;
  threshold: number;
  minPartners: number;
}

export function quorum(n: number, t: number): number {
  return Math.floor((n + t - 1) / 2) + 1;
}

/** §3.1 secure_parameters(n). */
export function secureParameters(n: number): SecureParameters {
  if (!Number.isInteger(n) || n < 3) throw new RangeError("a round needs at least 3 clients");
  if (n <= 30) {
    const k = n - 1;
    const w = Math.floor((3 * n) / 10);
    let t = 2;
    while (t + 1 <= n - 1 && n - quorum(n, t + 1) >= w) t += 1;
    return { degree: k, threshold: t, minPartners: quorum(n, t) - 1 };
  }
  const bitLength = (n - 1).toString(2).length;
  const k = Math.min(2 * bitLength, n - 1);
  return { degree: k, threshold: Math.floor(k / 4) + 1, minPartners: Math.floor(k / 2) + 1 };
}

export interface RoundName {
  chainId: bigint | number;
  jobs: string;
  jobId: bigint | number;
  round: bigint | number;
  attempt: bigint | number;
}

/** §3.2 */
export function graphSeed(r: RoundName): Uint8Array {
  return taggedHash(
    "chainml/secagg/v3/graph",
    abi({ uint256: r.chainId }, { address: r.jobs }, { uint256: r.jobId }, { uint256: r.round }, { uint256: r.attempt }),
  );
}

/** §3.3 job_domain (96 bytes). */
export function jobDomain(chainId: bigint | number, jobs: string, jobId: bigint | number): Uint8Array {
  return abi({ uint256: chainId }, { address: jobs }, { uint256: jobId });
}

export function rosterBytes(roster: Map<number, string>, keys: Map<number, Uint8Array>): Uint8Array {
  const ids = [...roster.keys()].sort((a, b) => a - b);
  return concat(
    ...ids.map((i) => {
      const key = keys.get(i);
      if (!key || key.length !== 32) throw new RangeError(`no 32-byte registered key for client ${i}`);
      return concat(u16(i), addressBytes(roster.get(i)!), key);
    }),
  );
}

/** §6 fraction_bits(n, bound), exact on the double `bound`. */
export function fractionBits(n: number, bound: number): number {
  if (!Number.isFinite(bound) || bound <= 0) throw new RangeError("bound must be finite and positive");
  // bound = m · 2^e exactly
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, bound);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (biased === 0) e = -1074;
  else {
    m |= 1n << 52n;
    e = biased - 1075;
  }
  const N = BigInt(n);
  const fits = (f: number): boolean => {
    const x = e + f;
    if (x >= 0) return N * ((m << BigInt(x)) + 1n) <= 1n << 31n;
    const s = BigInt(-x);
    return N * (m + (1n << s)) <= 1n << (31n + s);
  };
  for (let f = 24; f >= 1; f--) if (fits(f)) return f;
  throw new RangeError("no fraction bits fit: the bound is too large for this many clients");
}

export const LATTICE_EXTRA = (8 + 10) * 256;

export interface RoundParams extends SecureParameters, RoundName {
  n: number;
  quorum: number;
  ids: number[];
  roster: Map<number, string>;
  keys: Map<number, Uint8Array>;
  vectorLen: number;
  secureLen: number;
  clip: number;
  fracBits: number;
  verifiable: boolean;
  graphSeed: Uint8Array;
  context: Uint8Array;
  jobDomain: Uint8Array;
  rosterHash: Uint8Array;
  neighbours: Map<number, number[]>;
}

export interface DeriveInput extends RoundName {
  roster: Map<number, string>;
  keys: Map<number, Uint8Array>;
  vectorLen: number;
  clip: number;
  verifiable: boolean;
}

/** Every derived value of §3 for one round. */
export function deriveParams(inp: DeriveInput): RoundParams {
  const ids = [...inp.roster.keys()].sort((a, b) => a - b);
  const n = ids.length;
  const sp = secureParameters(n);
  const seed = graphSeed(inp);
  const rosterHash = keccak256(rosterBytes(inp.roster, inp.keys));
  const context = taggedHash(
    "chainml/secagg/v3",
    abi(
      { uint256: inp.chainId },
      { address: inp.jobs },
      { uint256: inp.jobId },
      { uint256: inp.round },
      { uint256: inp.attempt },
      { bytes32: rosterHash },
      { uint256: inp.vectorLen },
      { uint256: sp.degree },
      { uint256: sp.threshold },
      { uint256: sp.minPartners },
      { bytes32: seed },
      { bool: inp.verifiable },
    ),
  );
  const p: RoundParams = {
    ...inp,
    ...sp,
    n,
    quorum: quorum(n, sp.threshold),
    ids,
    secureLen: inp.vectorLen + (inp.verifiable ? LATTICE_EXTRA : 0),
    fracBits: fractionBits(n, inp.clip),
    graphSeed: seed,
    context,
    jobDomain: jobDomain(inp.chainId, inp.jobs, inp.jobId),
    rosterHash,
    neighbours: new Map(),
  };
  p.neighbours = neighbourhoods(ids, sp.degree, context);
  return p;
}

/** §3.4 label(p_1, …, p_r). */
export function label(context: Uint8Array, ...parts: (string | number)[]): Uint8Array {
  return concat(context, ascii(parts.map((x) => "|" + (typeof x === "number" ? dec(x) : x)).join("")));
}

/** §3.5 shuffle(seed, n): Fisher–Yates over ChaCha20 words. */
export function shuffle(seed: Uint8Array, n: number): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  let block = 0;
  let words: Uint32Array = new Uint32Array(0);
  let pos = 0;
  const next = (): number => {
    if (pos === words.length) {
      words = mask(seed, `chainml/secagg/v3/shuffle|${block}`, 256);
      block += 1;
      pos = 0;
    }
    return words[pos++];
  };
  for (let i = n - 1; i >= 1; i--) {
    const bound = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % bound);
    let w = next();
    while (w >= limit) w = next();
    const j = w % bound;
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return perm;
}

/** §3.5 each client's neighbours, ascending. */
export function neighbourhoods(ids: number[], k: number, context: Uint8Array): Map<number, number[]> {
  const n = ids.length;
  const out = new Map<number, number[]>();
  if (k >= n - 1) {
    for (const i of ids) out.set(i, ids.filter((j) => j !== i));
    return out;
  }
  const perm = shuffle(taggedHash("chainml/secagg/v3/ring", context), n);
  const ring = perm.map((x) => ids[x]);
  const half = Math.floor(k / 2);
  for (let p = 0; p < n; p++) {
    const nb: number[] = [];
    for (let d = -half; d <= half; d++) if (d !== 0) nb.push(ring[(((p + d) % n) + n) % n]);
    out.set(ring[p], [...new Set(nb)].sort((a, b) => a - b));
  }
  return out;
}

/** §3.6 */
export function shareIndex(neighbours: Map<number, number[]>, dealer: number, holder: number): number {
  const nb = neighbours.get(dealer);
  const pos = nb ? nb.indexOf(holder) : -1;
  if (pos < 0) throw new RangeError(`${holder} is not a neighbour of ${dealer}`);
  return pos + 1;
}

/** §3 the secure-aggregation bound from the on-chain clip_bound (an integer in thousandths),
 * plus the distributed-DP headroom when `noiseMultiplier` is given. */
export function secureBound(clipBound: number, n: number, vectorLen: number, noiseMultiplier?: number): number {
  let bound = clipBound / 1000 + 1.0;
  if (noiseMultiplier !== undefined) {
    bound += ((noiseMultiplier * (clipBound / 1000)) / Math.sqrt(n)) * (Math.sqrt(vectorLen - 1) + 10);
  }
  return bound;
}

/** §6 decode: a word as a signed 32-bit integer over 2^f. */
export function decodeWord(w: number, f: number): number {
  return (w | 0) / 2 ** f;
}

/** §6 encode with the given u. */
export function encodeValue(x: number, f: number, u: number): number {
  const v = Math.floor(x * 2 ** f + u);
  return Number(BigInt.asUintN(32, BigInt(v)));
}
