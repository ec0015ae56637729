/** `node dist/src/cli.js CASE.json …`: audit each round; prints one JSON line per round.
 * Exit 0 when every round checks out, 3 when one is refused, 2 on a case file it cannot read. */
import { loadCase } from "./case.js";
import { VerificationError } from "./errors.js";
import { auditRound } from "./verify.js";

let status = 0;
const paths = process.argv.slice(2);
if (paths.length === 0) {
  console.error("usage: cli.js CASE.json [CASE.json …]");
  process.exit(2);
}
for (const path of paths) {
  let c;
  try {
    c = loadCase(path);
  } catch (e) {
    console.error(`${path}: ${(e as Error).message}`);
    process.exit(2);
  }
  try {
    const r = auditRound(c.facts, c.fetch);
    console.log(JSON.stringify({ case: path, ok: true, aggregation: r.aggregation, counted: r.counted, sum: r.sum }));
  } catch (e) {
    if (!(e instanceof VerificationError)) throw e;
    console.log(JSON.stringify({ case: path, ok: false, check: e.check, error: e.message }));
    status = 3;
  }
}
process.exit(status);
