/** The escrow rule (src/escrow.ts) on a job's facts: an honest finalised job checks out to
 * the wei, and each way a chain could misreport it is refused by the rule it breaks. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { auditEscrow, EscrowFacts } from "../src/escrow.js";
import { VerificationError } from "../src/errors.js";

const A = "0x" + "a1".repeat(20);
const B = "0x" + "b2".repeat(20);
const C = "0x" + "c3".repeat(20);
const ESCROW = 10n ** 18n + 1n;

/** Three trainers, two rounds: A and B in both, C in the first; 5 participations. */
function honest(): EscrowFacts {
  const owed = (count: bigint) => (ESCROW * count) / 5n;
  const claims = new Map([
    [A, owed(2n)],
    [B, owed(2n)],
    [C, owed(1n)],
  ]);
  const claimed = [...claims.values()].reduce((a, b) => a + b, 0n);
  return {
    state: "finalized",
    escrow: ESCROW,
    paid: ESCROW,
    totalParticipations: 5n,
    roster: new Map([
      [1, A],
      [2, B],
      [3, C],
    ]),
    bitmaps: [0b111n, 0b011n],
    claims,
    refunds: [ESCROW - claimed],
  };
}

const refusedBy = (facts: EscrowFacts, check: string) =>
  assert.throws(() => auditEscrow(facts), (e: unknown) => e instanceof VerificationError && e.check === `escrow/${check}`);

test("an honest finalised job checks out to the wei", () => {
  const r = auditEscrow(honest());
  assert.equal(r.owed[A], ((ESCROW * 2n) / 5n).toString());
  assert.equal(BigInt(r.claimed) + BigInt(r.refunded), ESCROW);
  assert.equal(r.unclaimed, "0");
});

test("a claim one wei over its share is refused", () => {
  const f = honest();
  f.claims.set(A, f.claims.get(A)! + 1n);
  f.paid += 1n;
  refusedBy(f, "claim");
});

test("a payment by someone owed nothing is refused", () => {
  const f = honest();
  f.claims.set("0x" + "dd".repeat(20), 1n);
  refusedBy(f, "claim");
});

test("paid on chain that its events do not add up to is refused", () => {
  const f = honest();
  f.paid -= 1n;
  refusedBy(f, "paid");
});

test("a refund before every share was claimed is refused", () => {
  const f = honest();
  f.claims.delete(C);
  f.paid = [...f.claims.values()].reduce((a, b) => a + b, 0n) + f.refunds[0];
  refusedBy(f, "refund");
});

test("participations the bitmaps do not give are refused", () => {
  refusedBy({ ...honest(), totalParticipations: 6n }, "participations");
  refusedBy({ ...honest(), bitmaps: [0b1111n, 0b011n] }, "bitmap");
});

test("a cancelled job refunds the whole escrow and pays no reward", () => {
  const cancelled: EscrowFacts = { ...honest(), state: "cancelled", claims: new Map(), refunds: [ESCROW] };
  assert.equal(auditEscrow(cancelled).refunded, ESCROW.toString());
  refusedBy({ ...cancelled, claims: new Map([[A, 1n]]), refunds: [ESCROW - 1n] }, "claim");
});
