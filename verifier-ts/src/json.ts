/** A strict JSON reader for the canonical encodings of docs/protocol/secagg.md §9 and §11
 * (`json.dumps(doc, sort_keys=True, separators=(",", ":"))`, ASCII). Integers are read
 * exactly (BigInt beyond 2^53), a duplicate key is refused, and `canonical(text)` re-emits
 * what was parsed in that form, so a caller can refuse any text that is not canonical. */

export type JValue = null | boolean | number | bigint | string | JValue[] | { [k: string]: JValue };

export class JsonError extends Error {}

interface Parsed {
  value: JValue;
  canonical: string;
}

/** Python's `repr(float)`, which `json.dumps` writes for a float. */
export function pythonFloat(x: number): string {
  if (!Number.isFinite(x)) throw new JsonError("NaN and infinities are not JSON");
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mant, expText] = Math.abs(x).toExponential().split("e");
  const digits = mant.replace(".", "");
  const exp = Number(expText);
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const int = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
      const frac = digits.slice(exp + 1) || "0";
      return `${sign}${int}.${frac}`;
    }
    return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : `${Math.abs(exp)}`;
  return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
}

/** Python's `json.dumps` string form with ensure_ascii. */
export function pythonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

/** Parse `text`; `canonical` re-emits it with keys sorted (`sortKeys`, the default) or in
 * the order they came. */
export function parseJson(text: string, sortKeys = true): Parsed {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const fail = (msg: string): never => {
    throw new JsonError(`${msg} at ${i}`);
  };
  const value = (depth: number): Parsed => {
    if (depth > 64) fail("nested too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: { [k: string]: JValue } = Object.create(null);
      const canon: [string, string][] = [];
      ws();
      if (text[i] === "}") {
        i++;
        return { value: obj, canonical: "{}" };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const k = str();
        if (Object.prototype.hasOwnProperty.call(obj, k)) fail(`duplicate key ${JSON.stringify(k)}`);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const v = value(depth + 1);
        Object.defineProperty(obj, k, { value: v.value, enumerable: true, writable: true, configurable: true });
        canon.push([k, v.canonical]);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          break;
        }
        fail("expected ',' or '}'");
      }
      if (sortKeys) canon.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      return { value: obj, canonical: "{" + canon.map(([k, v]) => pythonString(k) + ":" + v).join(",") + "}" };
    }
    if (c === "[") {
      i++;
      const arr: JValue[] = [];
      const canon: string[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return { value: arr, canonical: "[]" };
      }
      for (;;) {
        const v = value(depth + 1);
        arr.push(v.value);
        canon.push(v.canonical);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          break;
        }
        fail("expected ',' or ']'");
      }
      return { value: arr, canonical: "[" + canon.join(",") + "]" };
    }
    if (c === '"') {
      const s = str();
      return { value: s, canonical: pythonString(s) };
    }
    for (const [lit, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return { value: v, canonical: lit };
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail("unexpected character");
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const b = BigInt(m[0]);
      const v = b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
      return { value: v, canonical: b.toString() };
    }
    const f = Number(m[0]);
    if (!Number.isFinite(f)) fail("number out of range");
    return { value: f, canonical: pythonFloat(f) };
  };
  const str = (): string => {
    i++; // opening quote
    let out = "";
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const ch = text[i++];
      if (ch === '"') return out;
      if (ch === "\\") {
        const e = text[i++];
        const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e in simple) out += simple[e];
        else if (e === "u") {
          const h = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("bad \\u escape");
          out += String.fromCharCode(parseInt(h, 16));
          i += 4;
        } else fail("bad escape");
      } else if (ch.charCodeAt(0) < 0x20) fail("control character in a string");
      else out += ch;
    }
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing data");
  return v;
}

/** Parse `bytes` as canonical JSON; throws JsonError if it is not exactly the canonical form. */
export function parseCanonical(bytes: Uint8Array, what: string): JValue {
  for (const b of bytes) if (b < 0x20 || b > 0x7e) throw new JsonError(`${what}: not printable ASCII`);
  const text = Buffer.from(bytes).toString("latin1");
  const p = parseJson(text);
  if (p.canonical !== text) throw new JsonError(`${what}: not the canonical encoding`);
  return p.value;
}

/** Parse UTF-8 JSON strictly (duplicate keys refused) without requiring canonical form. */
export function parseStrict(bytes: Uint8Array, what: string): JValue {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new JsonError(`${what}: not UTF-8`);
  }
  return parseJson(text).value;
}

export function isObject(v: JValue | undefined): v is { [k: string]: JValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
