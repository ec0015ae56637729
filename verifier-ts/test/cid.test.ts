/** Blob CIDs (docs/storage.md) against Debian's `ipfs_cid`, which prints what kubo's
 * `ipfs add` names a file (make test installs it), on sizes around the chunk boundary and
 * past one level of 174 links; and the refusals of cidMatches. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CID } from "multiformats/cid";
import { blobCid, cidMatches, CHUNK, MAX_LINKS } from "../src/cid.js";

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test("CIDs are those ipfs_cid gives, at 0, 1, 256 KiB ± 1 and a two-level tree", () => {
  const dir = mkdtempSync(join(tmpdir(), "verifier-ts-cid-"));
  try {
    for (const n of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, MAX_LINKS * CHUNK + 1]) {
      const data = bytes(n, n + 7);
      const f = join(dir, "blob");
      writeFileSync(f, data);
      const line = execFileSync("ipfs_cid", [f], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      const want = JSON.parse(line.slice(0, line.indexOf("}") + 1));
      assert.equal(blobCid(data), want.CIDv1, `${n} bytes`);
      assert.ok(cidMatches(want.CIDv0, data), `${n} bytes, CIDv0`);
      assert.ok(cidMatches(want.CIDv1, data), `${n} bytes, CIDv1`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a CID names only its bytes; raw CIDs hash the bytes; non-CIDs are refused", async () => {
  const data = bytes(1000, 3);
  const cid = blobCid(data);
  const other = data.slice();
  other[999] ^= 1;
  assert.ok(!cidMatches(cid, other));
  assert.ok(!cidMatches(cid, data.subarray(0, 999)));
  const { sha256 } = await import("multiformats/hashes/sha2");
  const raw = CID.create(1, 0x55, await sha256.digest(data)).toString();
  assert.ok(cidMatches(raw, data));
  assert.ok(!cidMatches(raw, other));
  for (const bad of ["", "bafy", "Qm" + "1".repeat(44), cid.toUpperCase().slice(0, 10), "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA"]) {
    assert.throws(() => cidMatches(bad, data), TypeError, bad);
  }
});
