/** Reading a norm-proof round's data sets over JSON-RPC (`Datasets.dataset_count`,
 * `Datasets.get` at the round's block), against a loopback JSON-RPC endpoint that answers
 * those two calls as the contract's ABI encodes them. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import { abi, ascii, beBytes, concat, hex } from "../src/bytes.js";
import { Contract, Rpc, readDatasets } from "../src/chain.js";
import { keccak256 } from "../src/primitives.js";
import { ROOT } from "./helpers.js";

const W = (v: bigint | number) => beBytes(BigInt(v), 32);
const selector = (sig: string) => hex(keccak256(ascii(sig)).subarray(0, 4));

test("the data sets a round's claims name, read at the round's block; ids that do not exist are left out", async () => {
  const owners = ["0x" + "11".repeat(20), "0x" + "22".repeat(20), "0x" + "33".repeat(20)];
  const calls: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const { id, method, params } = JSON.parse(body);
      assert.equal(method, "eth_call");
      const data: string = params[0].data.slice(2);
      calls.push(`${data.slice(0, 8)}@${params[1]}`);
      let out: Uint8Array;
      if (data.startsWith(selector("dataset_count()"))) out = W(3);
      else if (data.startsWith(selector("get(uint256)"))) {
        const k = Number(BigInt("0x" + data.slice(8)));
        if (k < 1 || k > 3) return void res.end(JSON.stringify({ jsonrpc: "2.0", id, error: { message: "execution reverted: UnknownDataset" } }));
        out = concat(abi({ address: owners[k - 1] }), new Uint8Array(32).fill(9), W(100 * k), new Uint8Array(32), W(5), W(k === 3 ? 1 : 0));
      } else throw new Error("unexpected call");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ jsonrpc: "2.0", id, result: "0x" + hex(out) }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const abiJson = JSON.parse(readFileSync(resolve(ROOT, "src", "chainml", "ledger", "artifacts", "Datasets.json"), "utf8"));
    const D = new Contract(new Rpc(url), "0x" + "dd".repeat(20), abiJson);
    const got = await readDatasets(D, [2n, 3n, 7n, 0n, 2n], 30n);
    assert.deepEqual([...got.keys()], ["2", "3"]);
    assert.deepEqual(got.get("2"), { owner: owners[1], recordCount: 200n, revoked: false });
    assert.deepEqual(got.get("3"), { owner: owners[2], recordCount: 300n, revoked: true });
    assert.ok(calls.every((c) => c.endsWith("@0x1e")), "every call at the round's block");
    assert.equal(calls.length, 3, "dataset_count once, get for each existing id once");
  } finally {
    server.close();
  }
});
