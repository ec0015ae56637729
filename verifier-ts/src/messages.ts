/** The SecAgg+ messages (docs/protocol/secagg.md §8.3) and `round/start` (§8.2), read only
 * in their one encoding. A verifier of recorded rounds does not need them; they are here so
 * the vectors' messages can be checked from this side too. */
import { keccak256 } from "./primitives.js";
import { ascii, hex } from "./bytes.js";
import { isObject, JsonError, JValue, parseJson } from "./json.js";

export class MessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MessageError";
  }
}

export const WIRE_FORMAT = "chainml-secagg/4";

export const MESSAGE_FIELDS: Record<string, string[]> = {
  KeyAdvert: ["advert"],
  NeighbourKeys: ["recipient", "adverts"],
  SealedShares: ["sender", "ciphertexts"],
  ShareBatch: ["recipient", "ciphertexts"],
  MaskedInput: ["sender", "vector", "partners", "signature", "value_commitment", "partner_tags"],
  SurvivorList: ["recipient", "survivors"],
  SurvivorSignature: ["sender", "signature"],
  UnmaskRequest: ["recipient", "survivors", "approvals", "partners"],
  UnmaskShares: ["sender", "self_mask", "mask_key"],
};

function fail(msg: string): never {
  throw new MessageError(msg);
}

function parseInOrder(raw: string, what: string): { [k: string]: JValue } {
  let parsed;
  try {
    parsed = parseJson(raw, false);
  } catch (e) {
    if (e instanceof JsonError) fail(`${what}: ${e.message}`);
    throw e;
  }
  if (parsed.canonical !== raw) fail(`${what}: not its one encoding`);
  if (!isObject(parsed.value)) fail(`${what}: not an object`);
  return parsed.value;
}

const isId = (v: JValue): boolean => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
const isIdKey = (k: string): boolean => /^[1-9][0-9]{0,4}$/.test(k) && Number(k) <= 65535;

/** Ids are integers 1 … 65535 (map keys their `dec`), byte strings lower-case hex. */
function walk(v: JValue, where: string): void {
  if (Array.isArray(v)) v.forEach((x, k) => walk(x, `${where}[${k}]`));
  else if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (!isIdKey(k)) fail(`${where}: ${JSON.stringify(k)} is not a client id`);
      walk(x, `${where}.${k}`);
    }
  } else if (typeof v === "string") {
    if (!/^([0-9a-f]{2})*$/.test(v)) fail(`${where}: not lower-case hex`);
  } else if (!isId(v)) fail(`${where}: ${JSON.stringify(String(v))} is not a client id`);
}

/** One of the nine messages; throws MessageError on any other spelling. */
export function decodeMessage(raw: string): { type: string; doc: { [k: string]: JValue } } {
  const doc = parseInOrder(raw, "message");
  const type = doc.type;
  if (typeof type !== "string" || !(type in MESSAGE_FIELDS)) fail(`unknown type ${JSON.stringify(type)}`);
  if (doc.format !== WIRE_FORMAT) fail(`unknown format ${JSON.stringify(doc.format)}`);
  const want = [...MESSAGE_FIELDS[type], "type", "format"];
  if (Object.keys(doc).join(",") !== want.join(",")) fail(`${type}: fields ${Object.keys(doc).join(",")}, not ${want.join(",")}`);
  for (const f of MESSAGE_FIELDS[type]) {
    const v = doc[f];
    if (f === "sender" || f === "recipient") {
      if (!isId(v)) fail(`${type}.${f} is not a client id`);
    } else if (f === "vector") {
      if (typeof v !== "string" || !/^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)) fail(`${type}.vector is not base64`);
      if (Buffer.from(v, "base64").length % 4 !== 0) fail(`${type}.vector is not whole words`);
    } else walk(v, `${type}.${f}`);
  }
  return { type, doc };
}

/** EIP-55: the address as chainml writes one. */
export function checksummed(address: string): string {
  const lower = address.toLowerCase().replace(/^0x/, "");
  const h = hex(keccak256(ascii(lower)));
  return "0x" + [...lower].map((c, k) => (parseInt(h[k], 16) >= 8 ? c.toUpperCase() : c)).join("");
}

export interface RoundStart {
  config: string;
  params: string;
  roster: Map<number, string>;
  clip: number;
  attempt: number;
}

/** `round/start` (§8.2): the fields in order, no spaces, a positive finite clip. */
export function decodeRoundStart(raw: string): RoundStart {
  const doc = parseInOrder(raw, "round/start");
  const want = ["format", "config", "params", "roster", "clip", "attempt"];
  if (Object.keys(doc).join(",") !== want.join(",")) fail(`round/start: fields ${Object.keys(doc).join(",")}`);
  if (doc.format !== "chainml-round-start/2") fail(`round/start: unknown format ${JSON.stringify(doc.format)}`);
  if (typeof doc.config !== "string") fail("round/start: config is not a string");
  if (typeof doc.params !== "string") fail("round/start: params is not a string");
  const clip = doc.clip;
  if (typeof clip !== "number" || !Number.isFinite(clip) || clip <= 0) fail("round/start: clip is not a positive finite number");
  const attempt = doc.attempt;
  if (typeof attempt !== "number" || !Number.isInteger(attempt) || attempt < 0 || attempt >= 2 ** 32) fail("round/start: attempt out of range");
  if (!isObject(doc.roster)) fail("round/start: roster is not an object");
  const roster = new Map<number, string>();
  for (const [k, a] of Object.entries(doc.roster)) {
    if (!isIdKey(k)) fail(`round/start: ${JSON.stringify(k)} is not a client id`);
    if (typeof a !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(a) || checksummed(a) !== a) fail(`round/start: ${String(a)} is not a checksummed address`);
    roster.set(Number(k), a);
  }
  return { config: doc.config, params: doc.params, roster, clip, attempt };
}
