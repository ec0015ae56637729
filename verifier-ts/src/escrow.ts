/** The escrow of a training job, to the wei (docs/contracts.md, Jobs): a finalised job pays
 * each participant `escrow · count // total` once, where `count` is the number of recorded
 * rounds whose bitmap has the participant's bit (its slot − 1) and `total` the sum of all
 * counts; the requester's refund is what no claim took. A cancelled job pays no reward and
 * refunds the whole escrow. Each rule a job's record on chain breaks is a
 * VerificationError naming it ("escrow/…"). */
import { VerificationError } from "./errors.js";

export interface EscrowFacts {
  state: "open" | "finalized" | "cancelled";
  escrow: bigint;
  paid: bigint;
  totalParticipations: bigint;
  /** slot (from 1) → account */
  roster: Map<number, string>;
  /** each recorded round's participant bitmap, rounds 1 … rounds_done */
  bitmaps: bigint[];
  /** RewardClaimed events of the job: account (lower case) → amount; a second claim by
   * one account is an error of the reader */
  claims: Map<string, bigint>;
  /** Refunded events of the job (amounts) */
  refunds: bigint[];
}

export interface EscrowResult {
  state: string;
  escrow: string;
  owed: { [account: string]: string };
  claimed: string;
  refunded: string;
  unclaimed: string;
}

function require(ok: boolean, check: string, message: string): asserts ok {
  if (!ok) throw new VerificationError(`escrow/${check}`, message);
}

export function auditEscrow(f: EscrowFacts): EscrowResult {
  const counts = new Map<string, bigint>();
  let total = 0n;
  for (const [slot, account] of f.roster) {
    let count = 0n;
    for (const bitmap of f.bitmaps) if ((bitmap >> BigInt(slot - 1)) & 1n) count += 1n;
    counts.set(account.toLowerCase(), count);
    total += count;
  }
  for (const bitmap of f.bitmaps) require(bitmap >> BigInt(f.roster.size) === 0n, "bitmap", "a round's bitmap names a slot past the roster");
  require(total === f.totalParticipations, "participations", `the chain counts ${f.totalParticipations} participations, the bitmaps ${total}`);
  const owed = new Map<string, bigint>();
  if (f.state === "finalized" && total > 0n) {
    for (const [account, count] of counts) if (count > 0n) owed.set(account, (f.escrow * count) / total);
  }
  let claimed = 0n;
  for (const [account, amount] of f.claims) {
    const due = owed.get(account.toLowerCase());
    require(due !== undefined, "claim", `${account} was paid ${amount} wei and is owed nothing`);
    require(amount === due, "claim", `${account} was paid ${amount} wei, owed ${due}`);
    claimed += amount;
  }
  const refunded = f.refunds.reduce((a, b) => a + b, 0n);
  require(f.refunds.length <= 1, "refund", "the requester was refunded twice");
  require(claimed + refunded === f.paid, "paid", `the job paid ${f.paid} wei, its events ${claimed + refunded}`);
  require(f.paid <= f.escrow, "paid", "the job paid more than its escrow");
  if (f.state === "cancelled") require(claimed === 0n, "claim", "a cancelled job paid a reward");
  if (f.refunds.length === 1) {
    // a refund comes last: after every claim of a finalised job, or for a cancelled one
    const allClaimed = [...owed.keys()].every((a) => f.claims.has(a));
    require(f.state === "cancelled" || allClaimed, "refund", "refunded before every share was claimed");
    require(refunded === f.escrow - claimed, "refund", `refunded ${refunded} wei, the remainder is ${f.escrow - claimed}`);
  }
  return {
    state: f.state,
    escrow: f.escrow.toString(),
    owed: Object.fromEntries([...owed].map(([a, v]) => [a, v.toString()])),
    claimed: claimed.toString(),
    refunded: refunded.toString(),
    unclaimed: (f.escrow - f.paid).toString(),
  };
}
