/** Every SecAgg+ vector of docs/protocol/vectors/secagg-v4.json, recomputed by this
 * verifier (written from docs/protocol/secagg.md, no chainml code). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ascii, bytesToWords, concat, hex, u16, unhex, wordsToBytes, beBytes, beInt } from "../src/bytes.js";
import { blake3, derive, keccak256, mac, mask, recoverSigner, taggedHash, x25519, x25519Public } from "../src/primitives.js";
import {
  decodeWord,
  deriveParams,
  encodeValue,
  fractionBits,
  label,
  quorum,
  secureParameters,
  shareIndex,
  shuffle,
} from "../src/params.js";
import * as eip from "../src/eip712.js";
import { commit, commitmentKey, matrixKey, ntt, nttByFormula, PRIMES, serializeCommitment, uniformMod } from "../src/lattice.js";
import { bitmapOf, leaf, leafData, merkleRoot } from "../src/merkle.js";
import { decodeTranscript, Transcript } from "../src/transcript.js";
import { seedCommitment, verifyRound, verifySum } from "../src/verify.js";
import { VerificationError } from "../src/errors.js";
import { vectors } from "./helpers.js";

const V = vectors("secagg-v4.json");

function paramsOf(inputs: any) {
  const roster = new Map<number, string>();
  const keys = new Map<number, Uint8Array>();
  for (let i = 1; i <= inputs.clients; i++) {
    roster.set(i, V.identities[String(i)].address);
    keys.set(i, unhex(V.identities[String(i)].x25519_public, 32));
  }
  return deriveParams({
    chainId: inputs.chain_id,
    jobs: inputs.jobs,
    jobId: inputs.job_id,
    round: inputs.round,
    attempt: inputs.attempt,
    roster,
    keys,
    vectorLen: inputs.vector_len,
    clip: inputs.clip,
    verifiable: inputs.verifiable,
  });
}

const P5 = paramsOf(V.round_params.inputs);

const CHECKED = [
  "eip712", "fixed_bytes", "fixedpoint", "format", "hkdf", "identities", "input", "known_issues", "lattice",
  "merkle", "negative", "negative_encoding", "negative_wire", "pair", "pair_mask", "prg", "round", "round_params",
  "round_params_verifiable", "round_start", "secure_parameters", "seed_commitment", "self_mask", "shamir",
  "share_box", "share_hash", "shares_root", "shuffle", "sparse_graph", "specification", "tagged_hash",
  "transcript_format", "verifiable_negative", "verifiable_round", "wire_format",
];

test("every vector in the file is one this verifier checks (a new one fails here until it does)", () => {
  assert.equal(V.format, "chainml-secagg-vectors/1");
  assert.deepEqual(Object.keys(V).filter((k) => !CHECKED.includes(k)), []);
  assert.deepEqual(Object.keys(V.known_issues), ["low_order_survivor_key"]);
  assert.deepEqual(Object.keys(V.round.wire_messages).sort(), [
    "KeyAdvert", "MaskedInput", "NeighbourKeys", "SealedShares", "ShareBatch", "SurvivorList", "SurvivorSignature",
    "UnmaskRequest", "UnmaskShares",
  ]);
});

test("format names", () => {
  assert.equal(V.transcript_format, "chainml-secagg-transcript/3");
  assert.equal(V.wire_format, "chainml-secagg/4");
});

test("identities: addresses and X25519 public keys", () => {
  for (const [, id] of Object.entries<any>(V.identities)) {
    assert.equal(hex(x25519Public(unhex(id.x25519_key))), id.x25519_public);
  }
});

test("§2 tagged_hash, hkdf, prg", () => {
  for (const v of V.tagged_hash) assert.equal(hex(taggedHash(unhex(v.tag), unhex(v.data))), v.hash);
  for (const v of V.hkdf) assert.equal(hex(derive(unhex(v.seed), unhex(v.info))), v.key);
  for (const v of V.prg) assert.deepEqual([...mask(unhex(v.seed), unhex(v.info), v.words.length)], v.words);
});

test("§3.1 secure_parameters", () => {
  assert.ok(V.secure_parameters.length >= 40);
  for (const v of V.secure_parameters) {
    const sp = secureParameters(v.n);
    assert.deepEqual(
      [sp.degree, sp.threshold, sp.minPartners, quorum(v.n, sp.threshold)],
      [v.degree, v.threshold, v.min_partners, v.quorum],
      `n = ${v.n}`,
    );
  }
});

test("§3 round_params: every derived value, labels, share indices", () => {
  const v = V.round_params;
  const p = P5;
  assert.equal(hex(p.context), v.context);
  assert.equal(hex(p.graphSeed), v.graph_seed);
  assert.equal(hex(p.jobDomain), v.job_domain);
  assert.equal(hex(p.rosterHash), v.roster_hash);
  assert.deepEqual([p.degree, p.threshold, p.minPartners, p.quorum, p.fracBits, p.secureLen], [v.degree, v.threshold, v.min_partners, v.quorum, v.frac_bits, v.secure_len]);
  for (const [name, want] of Object.entries<string>(v.labels)) {
    const parts = name.split("|").map((x) => (/^[0-9]+$/.test(x) ? Number(x) : x));
    assert.equal(hex(label(p.context, ...parts)), want, name);
  }
  for (const [pair, want] of Object.entries<number>(v.share_index)) {
    const [d, h] = pair.split("->").map(Number);
    assert.equal(shareIndex(p.neighbours, d, h), want, pair);
  }
  const pv = paramsOf(V.round_params_verifiable.inputs);
  assert.equal(hex(pv.context), V.round_params_verifiable.context);
  assert.equal(pv.secureLen, V.round_params_verifiable.secure_len);
});

test("§3.5 shuffle and the sparse graph of forty clients", () => {
  for (const v of V.shuffle) assert.deepEqual(shuffle(unhex(v.seed), v.n), v.permutation, `n = ${v.n}`);
  const v = V.sparse_graph;
  const p = paramsOf(v.inputs);
  assert.equal(hex(p.context), v.context);
  assert.equal(p.degree, v.degree);
  assert.equal(p.minPartners, v.min_partners);
  if (v.ring_seed !== undefined) assert.equal(hex(taggedHash("chainml/secagg/v3/ring", p.context)), v.ring_seed);
  for (const [i, nb] of Object.entries<number[]>(v.neighbours)) assert.deepEqual(p.neighbours.get(Number(i)), nb, `client ${i}`);
});

test("§4.1 pair key, box keys and the two MACs", () => {
  const v = V.pair;
  const [lo, hi] = v.between;
  // each MAC vector names its own direction (sender → recipient)
  assert.equal(v.mac_survivors, undefined); // approvals are signatures since secagg/4
  for (const m of [v.mac_keys, v.mac_partners]) assert.deepEqual([m.sender, m.recipient].sort(), [lo, hi]);
  const id = (i: number) => V.identities[String(i)];
  const shared = x25519(unhex(id(lo).x25519_key), unhex(id(hi).x25519_public));
  assert.equal(hex(shared), v.shared_secret);
  const pk = (i: number) => unhex(id(i).x25519_public);
  const pairKey = derive(shared, concat(ascii("chainml/secagg/v1/pair|"), P5.jobDomain, u16(lo), pk(lo), u16(hi), pk(hi)));
  assert.equal(hex(pairKey), v.pair_key);
  assert.equal(hex(derive(pairKey, `shares|${lo}|${hi}`)), v.box_key_1_to_2);
  assert.equal(hex(derive(pairKey, `shares|${hi}|${lo}`)), v.box_key_2_to_1);
  const adv = v.mac_keys.advert;
  // §4.6: the keys MAC's body starts with the round's context
  const body = concat(P5.context, unhex(adv.mask_key), unhex(adv.seed_commitment), unhex(adv.shares_root), unhex(adv.share_hashes[String(hi)]));
  assert.equal(hex(body), v.mac_keys.body);
  assert.equal(hex(mac(pairKey, "keys", v.mac_keys.sender, v.mac_keys.recipient, body)), v.mac_keys.tag);
  const pbody = concat(P5.context, keccak256(concat(...v.mac_partners.partners.map(u16))));
  assert.equal(hex(pbody), v.mac_partners.body);
  assert.equal(hex(mac(pairKey, "partners", v.mac_partners.sender, v.mac_partners.recipient, pbody)), v.mac_partners.tag);
  assert.equal(unhex(v.mac_keys.tag).length, 16);
  // the advert's seed commitment and shares root
  assert.equal(hex(seedCommitment(P5.context, lo, unhex(adv.seed))), adv.seed_commitment);
});

test("§4.4 share box", () => {
  const v = V.share_box;
  const key = unhex(V.pair.box_key_1_to_2);
  assert.equal(hex(label(P5.context, "share", v.sender, v.recipient)), v.associated_data);
  const plain = concat(unhex(v.key_share, 33), unhex(v.seed_share, 33)); // the pair is in the AD
  assert.equal(hex(plain), v.plaintext);
  const sealed = concat(unhex(v.nonce), chacha20poly1305(key, unhex(v.nonce), unhex(v.associated_data)).encrypt(plain));
  assert.equal(hex(sealed), v.sealed);
  const s = unhex(v.sealed);
  assert.equal(hex(chacha20poly1305(key, s.subarray(0, 12), unhex(v.associated_data)).decrypt(s.subarray(12))), v.plaintext);
});

test("§2 Shamir shares over GF(2^256 + 297)", () => {
  const v = V.shamir;
  const P = (1n << 256n) + 297n;
  assert.equal(BigInt(v.prime), P);
  const coeffs = v.coefficients.map((c: string) => BigInt(c));
  const secret = unhex(v.secret);
  assert.equal(coeffs[0], beInt(secret));
  const mod = (a: bigint) => ((a % P) + P) % P;
  v.shares.forEach((share: string, k: number) => {
    const x = BigInt(k + 1);
    let y = 0n;
    for (let d = coeffs.length - 1; d >= 0; d--) y = mod(y * x + coeffs[d]);
    assert.equal(hex(beBytes(y, 33)), share); // x, t and the 32-byte length are implied
  });
  const pts: [bigint, bigint][] = v.combine_from.map((x: number) => [BigInt(x), beInt(unhex(v.shares[x - 1], 33))]);
  const inv = (a: bigint) => {
    let r = 1n, b = mod(a), e = P - 2n;
    while (e > 0n) { if (e & 1n) r = mod(r * b); b = mod(b * b); e >>= 1n; }
    return r;
  };
  let s = 0n;
  for (const [xi, yi] of pts) {
    let num = 1n, den = 1n;
    for (const [xj] of pts) if (xj !== xi) { num = mod(num * -xj); den = mod(den * (xi - xj)); }
    s = mod(s + yi * num * inv(den));
  }
  assert.equal(hex(beBytes(s, secret.length)), v.secret);
});

test("§4.3 share hashes, shares root, seed commitment", () => {
  for (const v of V.share_hash) {
    const h = taggedHash("chainml/secagg/v4/share", concat(label(P5.context, v.kind, v.dealer, v.holder), unhex(v.share, 33))).subarray(0, 16);
    assert.equal(hex(h), v.hash);
  }
  const holders = Object.keys(V.shares_root.share_hashes).map(Number).sort((a, b) => a - b);
  const root = keccak256(concat(...holders.map((h) => concat(u16(h), unhex(V.shares_root.share_hashes[String(h)], 32)))));
  assert.equal(hex(root), V.shares_root.root);
  const sc = V.seed_commitment;
  assert.equal(hex(seedCommitment(P5.context, sc.client, unhex(sc.seed))), sc.commitment);
});

test("§4.5 self mask and pair mask (which side adds)", () => {
  const sm = V.self_mask;
  assert.deepEqual([...mask(unhex(sm.seed), label(P5.context, "self", sm.client), sm.words.length)], sm.words);
  const pm = V.pair_mask;
  assert.equal(hex(x25519Public(unhex(pm.mask_private_2))), pm.mask_public_2);
  const secret = x25519(unhex(pm.mask_private_1), unhex(pm.mask_public_2));
  assert.equal(hex(secret), pm.secret);
  assert.deepEqual([...mask(secret, label(P5.context, "pair", 1, 2), pm.words.length)], pm.words);
  assert.deepEqual([pm.sign_of_1, pm.sign_of_2], [1, -1]); // the lower id adds (§4.5)
});

test("§5 EIP-712: typehashes, domain, digests, signers", () => {
  const v = V.eip712;
  assert.equal(hex(eip.DOMAIN_TYPEHASH), v.domain_typehash);
  assert.equal(hex(eip.KEYS_TYPEHASH), v.keys_typehash);
  assert.equal(hex(eip.SURVIVORS_TYPEHASH), v.survivors_typehash);
  assert.equal(hex(eip.ROUND_COMMITMENT_TYPEHASH), v.round_commitment_typehash);
  const domain = eip.domainSeparator(31337, V.round_params.inputs.jobs);
  assert.equal(hex(domain), v.domain_separator);
  assert.equal(hex(eip.survivorsListed(P5.context, v.survivors.survivors)), v.survivors.listed);
  assert.equal(hex(eip.digest(domain, eip.survivorsStructHash(7, 3, P5.context, v.survivors.survivors))), v.survivors.digest);
  assert.equal(hex(eip.digest(domain, eip.roundCommitmentStructHash(7, 3, unhex(v.round_commitment.commitment)))), v.round_commitment.digest);
  for (const s of [v.keys, v.survivors, v.round_commitment]) {
    assert.equal(recoverSigner(unhex(s.digest), unhex(s.signature)), v.signer.toLowerCase());
  }
  // a signature by someone else, or its high-s twin, is not the signer's
  const sig = unhex(v.keys.signature);
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const twin = concat(sig.subarray(0, 32), beBytes(N - beInt(sig.subarray(32, 64)), 32), Uint8Array.of(sig[64] ^ 1));
  assert.throws(() => recoverSigner(unhex(v.keys.digest), twin));
});

test("§5 input commitment", () => {
  const v = V.input;
  const words = Uint32Array.from(v.vector);
  const h = blake3(wordsToBytes(words));
  assert.equal(hex(h), v.input_hash);
  assert.equal(hex(eip.inputCommitment(h, v.partners, null)), v.commitment);
  const pk = keccak256(concat(...v.partners.map(u16)));
  assert.equal(hex(keccak256(concat(h, pk, unhex(v.value_commitment_keccak)))), v.commitment_verifiable);
  assert.equal(v.value_commitment_keccak, V.lattice.commitment_keccak);
  assert.equal(hex(eip.inputCommitment(h, v.partners, unhex(V.lattice.commitment))), v.commitment_verifiable);
});

test("§6 fixed point", () => {
  for (const v of V.fixedpoint.fraction_bits) assert.equal(fractionBits(v.n, v.bound), v.frac_bits, `n=${v.n} bound=${v.bound}`);
  for (const v of V.fixedpoint.encode) assert.equal(encodeValue(v.x, v.frac_bits, v.u), v.word, `x=${v.x}`);
  for (const v of V.fixedpoint.decode) assert.equal(decodeWord(v.word, v.frac_bits), v.value, `word=${v.word}`);
});

test("§7 lattice: uniform_mod, matrices, NTT, one commitment", () => {
  const v = V.lattice;
  for (const u of v.uniform_mod) assert.deepEqual([...uniformMod(unhex(u.key), u.name, u.p, u.count)], u.values, u.name);
  const seed = unhex(v.seed);
  const ck = commitmentKey(seed, v.length);
  for (let ix = 0; ix < 2; ix++) {
    assert.deepEqual([...ck.A[ix].subarray(0, 8)], v.a_first_words[ix]);
    assert.deepEqual([...ck.B[ix].subarray(0, 8)], v.b_first_words[ix]);
    assert.equal(hex(keccak256(wordsToBytes(ck.A[ix]))), v.a_keccak[ix]);
    assert.equal(hex(keccak256(wordsToBytes(ck.B[ix]))), v.b_keccak[ix]);
    assert.equal(matrixKey(seed, ix).length, 32);
    const el = Array.from(ck.A[ix].subarray(0, 256));
    assert.deepEqual([...ntt(el, ix)], [...nttByFormula(el, ix)]);
    assert.ok(ck.A[ix].every((x) => x < PRIMES[ix]));
  }
  const r = Array.from({ length: 4608 }, (_, k) => ((7 * k) % 5) - 2);
  const c = serializeCommitment(commit(ck, v.values, r));
  assert.equal(hex(c), v.commitment);
  assert.equal(hex(keccak256(c)), v.commitment_keccak);
});

test("§11.3 Merkle tree", () => {
  const v = V.merkle;
  const datas = v.leaves.map((l: any) => leafData(l.account, v.job_id, v.round, unhex(l.commitment)));
  assert.equal(hex(datas[0]), v.leaf_data_1);
  for (const [n, root] of Object.entries<string>(v.roots)) {
    assert.equal(hex(merkleRoot(datas.slice(0, Number(n)).map(leaf))), root, `${n} leaves`);
  }
});

function roundLeaves(p: ReturnType<typeof paramsOf>, t: Transcript) {
  return t.survivors.map((i) => {
    const x = t.inputs.get(i)!;
    return leaf(leafData(p.roster.get(i)!, p.jobId, p.round, eip.inputCommitment(x.inputHash, x.partners, p.verifiable ? x.valueCommitment : null)));
  });
}

test("§10.1 the vectors' round verifies, with its sum, root and bitmap", () => {
  const v = V.round;
  const p = paramsOf(v.inputs);
  const raw = ascii(v.transcript);
  assert.equal(hex(keccak256(raw)), v.transcript_keccak);
  const t = decodeTranscript(raw);
  const total = verifyRound(p, t, (i) => new Uint8Array(Buffer.from(v.masked_inputs[String(i)], "base64")));
  assert.deepEqual([...total], v.total_words);
  assert.deepEqual([...total.subarray(0, p.vectorLen)].map((w) => decodeWord(w, p.fracBits)), v.decoded_sum);
  assert.deepEqual(t.survivors, v.survivors);
  assert.equal(hex(merkleRoot(roundLeaves(p, t))), v.commitment_root);
  assert.equal(bitmapOf(t.survivors), BigInt(v.bitmap));
  // the sum is the survivors' updates
  const f = p.fracBits;
  for (let c = 0; c < p.vectorLen; c++) {
    const want = v.survivors.reduce((a: number, i: number) => a + v.updates[String(i)][c], 0);
    assert.equal(decodeWord(total[c], f), want);
  }
});

test("§10.1 the negative vectors are each refused", () => {
  const v = V.round;
  const p = paramsOf(v.inputs);
  assert.ok(V.negative.length >= 9);
  for (const n of V.negative) {
    assert.throws(
      () => verifyRound(p, decodeTranscript(ascii(n.transcript)), (i) => new Uint8Array(Buffer.from(v.masked_inputs[String(i)] ?? "", "base64"))),
      VerificationError,
      n.why,
    );
  }
});

function applyEdit(t: Transcript, e: any): void {
  if (e.edit === "total_word") {
    const w = bytesToWords(t.total);
    w[e.word] = (w[e.word] + 1) >>> 0;
    t.total = wordsToBytes(w);
  } else if (e.edit === "swap_value_commitments") {
    const a = t.inputs.get(e.a)!, b = t.inputs.get(e.b)!;
    [a.valueCommitment, b.valueCommitment] = [b.valueCommitment, a.valueCommitment];
  } else if (e.edit === "cut_value_commitment") {
    const a = t.inputs.get(e.a)!;
    a.valueCommitment = a.valueCommitment.subarray(0, a.valueCommitment.length - 1);
  } else throw new Error(`unknown edit ${e.edit}: this verifier's test must learn it`);
}

test("§10.2 the verifiable round checks against its commitments; its edits are refused", () => {
  const v = V.verifiable_round;
  const p = paramsOf(v.inputs);
  const raw = ascii(v.transcript);
  assert.equal(hex(keccak256(raw)), v.transcript_keccak);
  const total = verifySum(p, decodeTranscript(raw));
  assert.deepEqual([...total.subarray(0, p.vectorLen)].map((w) => decodeWord(w, p.fracBits)), v.decoded_sum);
  const t = decodeTranscript(raw);
  assert.equal(hex(merkleRoot(roundLeaves(p, t))), v.commitment_root);
  assert.equal(bitmapOf(t.survivors), BigInt(v.bitmap));
  assert.ok(V.verifiable_negative.length >= 4);
  for (const e of V.verifiable_negative) {
    const te = decodeTranscript(raw);
    applyEdit(te, e);
    assert.throws(() => verifySum(p, te), VerificationError, e.why);
  }
});

test("§9 the negative_encoding transcripts (same values, other spellings) are refused", () => {
  assert.ok(V.negative_encoding.length >= 6);
  for (const n of V.negative_encoding) assert.throws(() => decodeTranscript(ascii(n.transcript)), VerificationError, n.why);
});

test("§15 known issues: a signed low-order mask key of a survivor is refused", () => {
  const v = V.round;
  const p = paramsOf(v.inputs);
  const k = V.known_issues.low_order_survivor_key;
  assert.throws(
    () => verifyRound(p, decodeTranscript(ascii(k.transcript)), (i) => new Uint8Array(Buffer.from(v.masked_inputs[String(i)] ?? "", "base64"))),
    VerificationError,
    k.why,
  );
});

test("§9 a transcript that is not canonical is refused", () => {
  const raw = V.round.transcript as string;
  for (const bad of [raw.replace(",", ", "), raw.replace('"survivors":[1,', '"survivors":[01,'), raw.replace(/[0-9a-f]{8}/, (m: string) => m.toUpperCase()) === raw ? raw + " " : raw.replace(/[0-9a-f]{8}/, (m: string) => m.toUpperCase()), raw.replace("{", '{"adverts":{},')]) {
    assert.notEqual(bad, raw);
    assert.throws(() => decodeTranscript(ascii(bad)), VerificationError);
  }
});
