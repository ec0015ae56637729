/** The one error every refusal raises. `check` names the specification step that failed
 * (for example "10.1/8 unmask"), so a test can assert which check refused a record. */
export class VerificationError extends Error {
  readonly check: string;
  constructor(check: string, message: string) {
    super(`${check}: ${message}`);
    this.name = "VerificationError";
    this.check = check;
  }
}

export function require(cond: unknown, check: string, message: string): asserts cond {
  if (!cond) throw new VerificationError(check, message);
}

/** A norm-bound (or L∞) proof that decodes and does not verify (docs/protocol/zk-norm.md
 * §4.3, §11.3): another context, vector, bound, or a false statement. */
export class InvalidNormProof extends VerificationError {
  constructor(message: string, check = "zk-norm/4.3 verify") {
    super(check, message);
    this.name = "InvalidNormProof";
  }
}

/** Bytes that are not a proof of the statement's shape (§6, §11.4): another length or
 * version, a point or scalar that does not decode, a commitment that is not a point. */
export class MalformedNormProof extends InvalidNormProof {
  constructor(message: string) {
    super(message, "zk-norm/6 encoding");
    this.name = "MalformedNormProof";
  }
}

/** The published sum does not open the sum of the survivors' commitments (§7). */
export class AggregateMismatch extends VerificationError {
  constructor(message: string) {
    super("zk-norm/7 aggregate", message);
    this.name = "AggregateMismatch";
  }
}
