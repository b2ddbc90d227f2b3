/** Job ids as the client sends them: UUIDs in every form the Rust `uuid` crate parses, with its error texts. */
export type UuidParse = { ok: true; uuid: string } | { ok: false; detail: string };

const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const SIMPLE = /^[0-9a-fA-F]{32}$/;
const URN_PREFIX = 'urn:uuid:';

/**
 * Accepts hyphenated, 32-hex simple, `urn:uuid:` and `{braced}` forms in any case; returns the
 * canonical lowercase hyphenated form, or the parser's explanation (worded as the uuid crate's).
 */
export function parseUuid(input: string): UuidParse {
  let body = input;
  let offset = 0;
  let simpleAllowed = true;
  if (body.length >= 2 && body.startsWith('{') && body.endsWith('}')) {
    body = body.slice(1, -1);
    offset = 1;
    simpleAllowed = false;
  } else if (body.slice(0, URN_PREFIX.length).toLowerCase() === URN_PREFIX) {
    body = body.slice(URN_PREFIX.length);
    offset = URN_PREFIX.length;
    simpleAllowed = false;
  }
  if (HYPHENATED.test(body)) return { ok: true, uuid: body.toLowerCase() };
  if (simpleAllowed && SIMPLE.test(body)) {
    const s = body.toLowerCase();
    return { ok: true, uuid: `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}` };
  }
  return { ok: false, detail: uuidErrorDetail(input, body, offset, simpleAllowed) };
}

function uuidErrorDetail(input: string, body: string, offset: number, simple: boolean): string {
  const bytes = Buffer.from(body, 'utf8');
  const hyphens: number[] = [];
  let index = 0;
  for (const ch of body) {
    if (ch === '-') hyphens.push(index);
    else if (!/^[0-9a-fA-F]$/.test(ch)) {
      return `invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`${ch}\` at ${index + offset + 1}`;
    }
    index += Buffer.byteLength(ch, 'utf8');
  }
  if (hyphens.length === 0 && simple) {
    return `invalid length: expected length 32 for simple format, found ${Buffer.byteLength(input, 'utf8')}`;
  }
  if (hyphens.length !== 4) return `invalid group count: expected 5, found ${hyphens.length + 1}`;
  const starts = [0, 9, 14, 19, 24];
  const expected = [8, 4, 4, 4, 12];
  for (let g = 0; g < 4; g++) {
    if (hyphens[g] !== starts[g + 1] - 1) {
      return `invalid group length in group ${g}: expected ${expected[g]}, found ${hyphens[g] - starts[g]}`;
    }
  }
  return `invalid group length in group 4: expected 12, found ${bytes.length - starts[4]}`;
}

