/** Content identifiers of blobs as chainml's stores name them (docs/storage.md): the
 * UnixFS file DAG kubo's `ipfs add` builds with its defaults (256 KiB chunks, dag-pb leaves,
 * a balanced tree of at most 174 links a node, sha2-256), named by its root's CID; a CIDv0
 * and a CIDv1 of the same root name the same blob. A CIDv1 with the raw codec names the
 * bytes as one raw block. */
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat } from "./bytes.js";

export const RAW = 0x55;
export const DAG_PB = 0x70;
const SHA2_256 = 0x12;
export const CHUNK = 256 * 1024;
export const MAX_LINKS = 174;

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

const field = (num: number, wire: number): Uint8Array => varint(num * 8 + wire);
const bytesField = (num: number, b: Uint8Array): Uint8Array => concat(field(num, 2), varint(b.length), b);
const intField = (num: number, v: number): Uint8Array => concat(field(num, 0), varint(v));

interface Node {
  block: Uint8Array;
  multihash: Uint8Array;
  fileSize: number;
  /** the block plus every descendant's, what a parent's link Tsize counts */
  cumulative: number;
}

function makeNode(block: Uint8Array, fileSize: number, childrenCumulative: number): Node {
  const mh = Digest.create(SHA2_256, sha256(block)).bytes;
  return { block, multihash: mh, fileSize, cumulative: block.length + childrenCumulative };
}

function leafNode(chunk: Uint8Array): Node {
  // UnixFS Data { Type = File (2), Data = chunk (absent when empty), filesize }
  const unixfs = concat(intField(1, 2), chunk.length ? bytesField(2, chunk) : new Uint8Array(0), intField(3, chunk.length));
  return makeNode(bytesField(1, unixfs), chunk.length, 0);
}

function parentNode(children: Node[]): Node {
  const fileSize = children.reduce((a, c) => a + c.fileSize, 0);
  // PBNode: Links (field 2) first, then Data (field 1); PBLink { Hash, Name = "", Tsize }
  const links = children.map((c) =>
    bytesField(2, concat(bytesField(1, c.multihash), bytesField(2, new Uint8Array(0)), intField(3, c.cumulative))),
  );
  const unixfs = concat(intField(1, 2), intField(3, fileSize), ...children.map((c) => intField(4, c.fileSize)));
  return makeNode(concat(...links, bytesField(1, unixfs)), fileSize, children.reduce((a, c) => a + c.cumulative, 0));
}

/** The multihash of the root of `data`'s UnixFS DAG. */
export function unixfsRoot(data: Uint8Array): Uint8Array {
  let level: Node[] = [];
  if (data.length === 0) level.push(leafNode(data));
  for (let o = 0; o < data.length; o += CHUNK) level.push(leafNode(data.subarray(o, Math.min(o + CHUNK, data.length))));
  while (level.length > 1) {
    const next: Node[] = [];
    for (let i = 0; i < level.length; i += MAX_LINKS) next.push(parentNode(level.slice(i, i + MAX_LINKS)));
    level = next;
  }
  return level[0].multihash;
}

/** The CIDv1 (base32) chainml's store would give `data`. */
export function blobCid(data: Uint8Array): string {
  return CID.create(1, DAG_PB, Digest.decode(unixfsRoot(data))).toString();
}

/** Whether `cid` (CIDv0, or base32 CIDv1 of a dag-pb or raw sha2-256 block) names `data`.
 * Throws TypeError on a string that is not such a CID. */
export function cidMatches(cid: string, data: Uint8Array): boolean {
  let parsed: CID;
  try {
    parsed = CID.parse(cid);
  } catch (e) {
    throw new TypeError(`not a CID: ${String(cid).slice(0, 80)}`);
  }
  if (parsed.version === 1 && !cid.startsWith("b")) throw new TypeError("a CIDv1 must be base32");
  if (parsed.multihash.code !== SHA2_256 || parsed.multihash.digest.length !== 32) throw new TypeError("not a sha2-256 CID");
  const want = parsed.multihash.bytes;
  let got: Uint8Array;
  if (parsed.code === RAW) got = Digest.create(SHA2_256, sha256(data)).bytes;
  else if (parsed.code === DAG_PB) got = unixfsRoot(data);
  else throw new TypeError("not a dag-pb or raw CID");
  return Buffer.from(got).equals(Buffer.from(want));
}
