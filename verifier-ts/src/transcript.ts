/** The transcript `chainml-secagg-transcript/3` (docs/protocol/secagg.md §9), read only in
 * its canonical form. */
import { unhex } from "./bytes.js";
import { VerificationError } from "./errors.js";
import { isObject, JsonError, JValue, parseCanonical } from "./json.js";

export const TRANSCRIPT_FORMAT = "chainml-secagg-transcript/3";

export interface Advert {
  pk: Uint8Array;
  seedCommitment: Uint8Array;
  sharesRoot: Uint8Array;
  signature: Uint8Array;
}

export interface SignedInput {
  inputHash: Uint8Array;
  partners: number[];
  signature: Uint8Array;
  valueCommitment: Uint8Array;
}

export interface Transcript {
  adverts: Map<number, Advert>;
  inputs: Map<number, SignedInput>;
  survivors: number[];
  survivorSignatures: Map<number, Uint8Array>;
  seeds: Map<number, Uint8Array>;
  maskKeys: Map<number, Uint8Array>;
  total: Uint8Array;
}

const FIELDS = ["adverts", "format", "inputs", "mask_keys", "seeds", "survivor_signatures", "survivors", "total"];

function bad(msg: string): never {
  throw new VerificationError("9 transcript", msg);
}

/** A client id: an integer 1 … 65535 (a JSON key must be its `dec`). */
export function clientId(v: JValue | string): number {
  if (typeof v === "string") {
    if (!/^[1-9][0-9]{0,4}$/.test(v)) bad(`not a client id: ${JSON.stringify(v)}`);
    v = Number(v);
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) bad(`not a client id: ${String(v)}`);
  return v;
}

function hexField(v: JValue, size: number | null, what: string): Uint8Array {
  if (typeof v !== "string") bad(`${what} is not a hex string`);
  try {
    return size === null ? unhex(v) : unhex(v, size);
  } catch (e) {
    return bad(`${what}: ${(e as Error).message}`);
  }
}

function idMap<T>(v: JValue, what: string, f: (x: JValue, id: number) => T): Map<number, T> {
  if (!isObject(v)) bad(`${what} is not an object`);
  const out = new Map<number, T>();
  for (const [k, x] of Object.entries(v)) {
    const id = clientId(k);
    out.set(id, f(x, id));
  }
  return out;
}

function idList(v: JValue, what: string): number[] {
  if (!Array.isArray(v)) bad(`${what} is not a list`);
  return v.map((x) => clientId(x));
}

export function decodeTranscript(bytes: Uint8Array): Transcript {
  let doc: JValue;
  try {
    doc = parseCanonical(bytes, "transcript");
  } catch (e) {
    if (e instanceof JsonError) bad(e.message);
    throw e;
  }
  if (!isObject(doc)) bad("not an object");
  const keys = Object.keys(doc).sort();
  if (keys.join(",") !== FIELDS.join(",")) bad(`fields ${keys.join(",")} are not ${FIELDS.join(",")}`);
  if (doc.format !== TRANSCRIPT_FORMAT) bad(`unknown format ${JSON.stringify(doc.format)}`);
  return {
    adverts: idMap(doc.adverts, "adverts", (x, id) => {
      if (!Array.isArray(x) || x.length !== 4) bad(`advert ${id} is not [pk, seed_commitment, shares_root, signature]`);
      return {
        pk: hexField(x[0], 32, `advert ${id} pk`),
        seedCommitment: hexField(x[1], 32, `advert ${id} seed commitment`),
        sharesRoot: hexField(x[2], 32, `advert ${id} shares root`),
        signature: hexField(x[3], 65, `advert ${id} signature`),
      };
    }),
    inputs: idMap(doc.inputs, "inputs", (x, id) => {
      if (!Array.isArray(x) || x.length !== 4) bad(`input ${id} is not [input_hash, partners, signature, value_commitment]`);
      return {
        inputHash: hexField(x[0], 32, `input ${id} hash`),
        partners: idList(x[1], `input ${id} partners`),
        signature: hexField(x[2], 65, `input ${id} signature`),
        valueCommitment: hexField(x[3], null, `input ${id} value commitment`),
      };
    }),
    survivors: idList(doc.survivors, "survivors"),
    survivorSignatures: idMap(doc.survivor_signatures, "survivor_signatures", (x, id) => hexField(x, 65, `approval ${id}`)),
    seeds: idMap(doc.seeds, "seeds", (x, id) => hexField(x, 32, `seed ${id}`)),
    maskKeys: idMap(doc.mask_keys, "mask_keys", (x, id) => hexField(x, 32, `mask key ${id}`)),
    total: hexField(doc.total, null, "total"),
  };
}
