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
