/** The vectors' wire messages (docs/protocol/secagg.md §8.3, `round.wire_messages`): each
 * is in its one encoding, and every signature, MAC, share box and share hash in it checks
 * out against the vectors' identities and the round's transcript. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ascii, concat, hex, u16, unhex } from "../src/bytes.js";
import { blake3, derive, keccak256, mac, recoverSigner, taggedHash, x25519 } from "../src/primitives.js";
import { deriveParams, label } from "../src/params.js";
import * as eip from "../src/eip712.js";
import { checksummed, decodeMessage, decodeRoundStart, MessageError } from "../src/messages.js";
import { decodeTranscript } from "../src/transcript.js";
import { vectors } from "./helpers.js";

const V = vectors("secagg-v4.json");
const R = V.round;
const inp = R.inputs;
const roster = new Map<number, string>();
const keys = new Map<number, Uint8Array>();
for (let i = 1; i <= inp.clients; i++) {
  roster.set(i, V.identities[String(i)].address);
  keys.set(i, unhex(V.identities[String(i)].x25519_public, 32));
}
const p = deriveParams({
  chainId: inp.chain_id,
  jobs: inp.jobs,
  jobId: inp.job_id,
  round: inp.round,
  attempt: inp.attempt,
  roster,
  keys,
  vectorLen: inp.vector_len,
  clip: inp.clip,
  verifiable: inp.verifiable,
});
const domain = eip.domainSeparator(inp.chain_id, inp.jobs);
const transcript = decodeTranscript(ascii(R.transcript));
const signer = (i: number) => roster.get(i)!.toLowerCase();

function pairKey(i: number, j: number): Uint8Array {
  const [lo, hi] = [Math.min(i, j), Math.max(i, j)];
  const shared = x25519(unhex(V.identities[String(i)].x25519_key), keys.get(j)!);
  return derive(shared, concat(ascii("chainml/secagg/v1/pair|"), p.jobDomain, u16(lo), keys.get(lo)!, u16(hi), keys.get(hi)!));
}

/** A message in its one encoding (decodeMessage: no whitespace, the fields in the table's
 * order then `type` and `format`, ids and hex as §8.3 says), with its map keys ascending. */
function decode(type: string): any {
  const raw = R.wire_messages[type] as string;
  const m = decodeMessage(raw);
  assert.equal(m.type, type);
  for (const x of raw.matchAll(/\{("[0-9]+":[^{}]*)\}/g)) {
    const ids = [...x[1].matchAll(/"([0-9]+)":/g)].map((y) => Number(y[1]));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `${type}: a map's ids ascend`);
  }
  return JSON.parse(raw);
}

const keysDigest = (j: number, a: any[]) =>
  eip.digest(domain, eip.keysStructHash(p.jobId, p.round, p.context, j, unhex(a[1]), unhex(a[2]), unhex(a[3])));
const advertBody = (a: any[], holder: number) => concat(p.context, unhex(a[1]), unhex(a[2]), unhex(a[3]), unhex(a[6][String(holder)], 32));
const shareHash = (kind: string, dealer: number, holder: number, share: Uint8Array) =>
  taggedHash("chainml/secagg/v4/share", concat(label(p.context, kind, dealer, holder), share)).subarray(0, 16);
const survivorsDigest = eip.digest(domain, eip.survivorsStructHash(p.jobId, p.round, p.context, R.survivors));

function open(sender: number, recipient: number, sealedHex: string): Uint8Array {
  const sealed = unhex(sealedHex, 94);
  const key = derive(pairKey(sender, recipient), `shares|${sender}|${recipient}`);
  const plain = chacha20poly1305(key, sealed.subarray(0, 12), label(p.context, "share", sender, recipient)).decrypt(sealed.subarray(12));
  assert.equal(plain.length, 66); // key share y ‖ seed share y; the pair is in the associated data
  return plain;
}

test("KeyAdvert: signed by its sender, MACs to every neighbour, share hashes under its root", () => {
  const [i, ...rest] = decode("KeyAdvert").advert;
  const a = [i, ...rest];
  assert.equal(recoverSigner(keysDigest(i, a), unhex(a[4])), signer(i));
  const holders = Object.keys(a[6]).map(Number);
  assert.deepEqual(holders, p.neighbours.get(i));
  assert.equal(hex(keccak256(concat(...holders.map((h) => concat(u16(h), unhex(a[6][String(h)], 32)))))), a[3]);
  for (const j of holders) assert.equal(hex(mac(pairKey(i, j), "keys", i, j, advertBody(a, j))), a[5][String(j)], `MAC for ${j}`);
  const t = transcript.adverts.get(i)!;
  assert.deepEqual([hex(t.pk), hex(t.seedCommitment), hex(t.sharesRoot), hex(t.signature)], a.slice(1, 5));
});

test("NeighbourKeys: each neighbour's advert, signed, with its MAC for the recipient", () => {
  const m = decode("NeighbourKeys");
  const senders = m.adverts.map((a: any[]) => a[0]);
  assert.deepEqual(senders, [...senders].sort((x: number, y: number) => x - y));
  for (const a of m.adverts) {
    const s = a[0];
    assert.ok(p.neighbours.get(m.recipient)!.includes(s));
    assert.equal(recoverSigner(keysDigest(s, a), unhex(a[4])), signer(s));
    assert.deepEqual(Object.keys(a[5]), [String(m.recipient)]);
    assert.equal(hex(mac(pairKey(s, m.recipient), "keys", s, m.recipient, advertBody(a, m.recipient))), a[5][String(m.recipient)]);
  }
});

const neighbourAdverts = new Map<number, any[]>(decode("NeighbourKeys").adverts.map((a: any[]) => [a[0], a]));
const ownAdvert = decode("KeyAdvert").advert;

test("SealedShares and ShareBatch: boxes open for the pair and hold the committed shares", () => {
  const P = (1n << 256n) + 297n;
  const sent = decode("SealedShares");
  for (const [r, box] of Object.entries<string>(sent.ciphertexts)) {
    const plain = open(sent.sender, Number(r), box);
    const want = unhex(ownAdvert[6][r], 32);
    assert.equal(hex(shareHash("key", sent.sender, Number(r), plain.subarray(0, 33))), hex(want.subarray(0, 16)));
    assert.equal(hex(shareHash("seed", sent.sender, Number(r), plain.subarray(33))), hex(want.subarray(16)));
    for (const y of [plain.subarray(0, 33), plain.subarray(33)]) assert.ok(BigInt("0x" + hex(y)) < P);
  }
  const got = decode("ShareBatch");
  for (const [s, box] of Object.entries<string>(got.ciphertexts)) {
    const plain = open(Number(s), got.recipient, box);
    const want = unhex(neighbourAdverts.get(Number(s))![6][String(got.recipient)], 32);
    assert.equal(hex(shareHash("key", Number(s), got.recipient, plain.subarray(0, 33))), hex(want.subarray(0, 16)));
    assert.equal(hex(shareHash("seed", Number(s), got.recipient, plain.subarray(33))), hex(want.subarray(16)));
  }
});

test("MaskedInput: the transcript's input, its signed commitment, a partners MAC per partner", () => {
  const m = decode("MaskedInput");
  const i = m.sender;
  assert.equal(m.vector, R.masked_inputs[String(i)]);
  const t = transcript.inputs.get(i)!;
  assert.equal(hex(blake3(new Uint8Array(Buffer.from(m.vector, "base64")))), hex(t.inputHash));
  assert.deepEqual(m.partners, t.partners);
  assert.equal(m.signature, hex(t.signature));
  assert.equal(m.value_commitment, "");
  const c = eip.inputCommitment(t.inputHash, t.partners, null);
  assert.equal(recoverSigner(eip.digest(domain, eip.roundCommitmentStructHash(p.jobId, p.round, c)), unhex(m.signature)), signer(i));
  const body = concat(p.context, keccak256(concat(...m.partners.map(u16))));
  assert.deepEqual(Object.keys(m.partner_tags).map(Number), m.partners);
  for (const j of m.partners) assert.equal(hex(mac(pairKey(i, j), "partners", i, j, body)), m.partner_tags[String(j)]);
});

test("SurvivorList and SurvivorSignature: the approval is one signature", () => {
  assert.deepEqual(decode("SurvivorList").survivors, R.survivors);
  const m = decode("SurvivorSignature");
  assert.equal(recoverSigner(survivorsDigest, unhex(m.signature)), signer(m.sender));
  assert.deepEqual(Object.keys(m), ["sender", "signature", "type", "format"]);
});

test("UnmaskRequest: the other approvers' signatures and survivors' partner lists with their MACs for the recipient", () => {
  const m = decode("UnmaskRequest");
  const r = m.recipient;
  assert.deepEqual(m.survivors, R.survivors);
  assert.ok(!(String(r) in m.approvals));
  for (const [c, sig] of Object.entries<string>(m.approvals)) assert.equal(recoverSigner(survivorsDigest, unhex(sig, 65)), signer(Number(c)));
  for (const [v, [partners, tag]] of Object.entries<[number[], string]>(m.partners)) {
    assert.deepEqual(partners, transcript.inputs.get(Number(v))!.partners);
    assert.ok(partners.includes(r));
    const body = concat(p.context, keccak256(concat(...partners.map(u16))));
    assert.equal(hex(mac(pairKey(Number(v), r), "partners", Number(v), r, body)), tag);
  }
});

test("UnmaskShares: seed shares of survivors, key shares of the dropped, each the one committed", () => {
  const m = decode("UnmaskShares");
  const h = m.sender;
  for (const [v, share] of Object.entries<string>(m.self_mask)) {
    assert.ok(R.survivors.includes(Number(v)));
    const want = unhex(neighbourAdverts.get(Number(v))![6][String(h)], 32);
    assert.equal(hex(shareHash("seed", Number(v), h, unhex(share, 33))), hex(want.subarray(16)));
  }
  for (const [j, share] of Object.entries<string>(m.mask_key)) {
    assert.ok(R.dropped_after_sharing.includes(Number(j)));
    const want = unhex(neighbourAdverts.get(Number(j))![6][String(h)], 32);
    assert.equal(hex(shareHash("key", Number(j), h, unhex(share, 33))), hex(want.subarray(0, 16)));
  }
});

test("every message of the round decodes; each other spelling of one is refused", () => {
  for (const type of Object.keys(R.wire_messages)) decode(type);
  assert.ok(V.negative_wire.length >= 9);
  for (const n of V.negative_wire) assert.throws(() => decodeMessage(n.message), MessageError, n.why);
});

test("round/start: the vector's message decodes to its fields; a NaN clip is refused", () => {
  const v = V.round_start;
  const m = decodeRoundStart(v.message);
  assert.equal(m.config, v.config);
  assert.equal(m.clip, v.clip);
  assert.equal(m.attempt, v.attempt);
  assert.deepEqual(Object.fromEntries(m.roster), Object.fromEntries(Object.entries(v.roster).map(([k, a]) => [Number(k), a])));
  for (const [, a] of m.roster) assert.equal(checksummed(a), a);
  assert.throws(() => decodeRoundStart(v.nan_clip), MessageError);
  assert.throws(() => decodeRoundStart(v.message.replace(',"clip":', ', "clip":')), MessageError);
  assert.throws(() => decodeRoundStart(v.message.replace(/"attempt":[0-9]+/, '"attempt":-1')), MessageError);
  const first = [...m.roster.values()][0];
  assert.throws(() => decodeRoundStart(v.message.replace(first, first.toLowerCase())), MessageError);
});
