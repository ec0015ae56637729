/** The ABI decoding the JSON-RPC mode relies on, on hand-built encodings of the shapes the
 * Jobs and Registry views return (the node-run pytest reads a real chain with it). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { abi, ascii, beBytes, concat, hex } from "../src/bytes.js";
import { decodeTuple } from "../src/chain.js";

const W = (v: bigint | number) => beBytes(BigInt(v), 32);

test("a dynamic tuple (a string first) behind its offset: Jobs.get_round's shape", () => {
  const out = [{ name: "", type: "tuple", components: [
    { name: "aggregate_cid", type: "string" },
    { name: "commitment_root", type: "bytes32" },
    { name: "bitmap", type: "uint256" },
    { name: "status", type: "uint8" },
  ] }];
  const cid = "bafybeibjoxkjb2a4y34n2mnltpwyckceu5fsp3723ufvqcbs7kyosp6o5m";
  const body = ascii(cid);
  const padded = concat(body, new Uint8Array((32 - (body.length % 32)) % 32));
  const root = new Uint8Array(32).fill(0xab);
  // outer head: offset of the tuple (32); tuple head: offset of the string (4 words), root, bitmap, status
  const data = concat(W(32), W(128), root, W(27n), W(1), W(body.length), padded);
  const r = decodeTuple(out, data, 0)["0"] as any;
  assert.equal(r.aggregate_cid, cid);
  assert.equal(hex(r.commitment_root), hex(root));
  assert.equal(r.bitmap, 27n);
  assert.equal(r.status, 1n);
  assert.throws(() => decodeTuple(out, data.subarray(0, data.length - 40), 0));
});

test("a static tuple inline, nested, then more words: Jobs.get_job's shape", () => {
  const out = [{ name: "", type: "tuple", components: [
    { name: "requester", type: "address" },
    { name: "params", type: "tuple", components: [
      { name: "aggregator", type: "address" },
      { name: "clip_bound", type: "uint256" },
      { name: "config_hash", type: "bytes32" },
    ] },
    { name: "participant_count", type: "uint256" },
  ] }];
  const hash = new Uint8Array(32).fill(7);
  const data = concat(
    abi({ address: "0x" + "11".repeat(20) }),
    abi({ address: "0x" + "22".repeat(20) }),
    W(10_000),
    hash,
    W(4),
  );
  const j = decodeTuple(out, data, 0)["0"] as any;
  assert.equal(j.requester, "0x" + "11".repeat(20));
  assert.equal(j.params.aggregator, "0x" + "22".repeat(20));
  assert.equal(j.params.clip_bound, 10_000n);
  assert.equal(hex(j.params.config_hash), hex(hash));
  assert.equal(j.participant_count, 4n);
});
