/**
 * TOML syntax errors in words a user can act on. The parser reports where it got confused, which for
 * the two most common slips (a string not closed on its line, a table header without its `]`) is a
 * character or a line later and in its own terms ("control characters are not allowed in strings").
 * The lines up to that point are checked for those slips first; anything else keeps the parser's
 * reason with its line and column.
 */

const BARE_KEY = String.raw`[A-Za-z0-9_.\-"' ]+`;
const OPEN_BASIC = new RegExp(String.raw`^\s*(${BARE_KEY}?)\s*=\s*"(?:[^"\\]|\\.)*$`);
const OPEN_LITERAL = new RegExp(String.raw`^\s*(${BARE_KEY}?)\s*=\s*'[^']*$`);

export function explainTomlError(text: string, line: number, column: number, parserReason: string): string {
  const lines = text.split(/\r?\n/);
  let inMultiline: '"""' | "'''" | undefined;
  for (let i = 0; i < Math.min(lines.length, line); i++) {
    const l = lines[i];
    if (inMultiline) {
      if (l.includes(inMultiline)) inMultiline = undefined;
      continue;
    }
    const opens = /("""|''')/.exec(l);
    if (opens && l.split(opens[1]).length === 2) {
      inMultiline = opens[1] as '"""' | "'''";
      continue;
    }
    const n = i + 1;
    const header = l.replace(/#.*$/, '').trim();
    const arrayHeader = header.startsWith('[[');
    if ((arrayHeader && !header.endsWith(']]')) || (header.startsWith('[') && !arrayHeader && !header.includes(']'))) {
      const name = header.replace(/\]+$/, '');
      return `line ${n}: the table header ${name} is missing its closing ${arrayHeader ? ']]' : ']'}`;
    }
    const basic = OPEN_BASIC.exec(l) ?? OPEN_LITERAL.exec(l);
    if (basic && !l.trimStart().startsWith('#')) {
      const quote = OPEN_BASIC.test(l) ? '"' : "'";
      return `line ${n}: the value of ${basic[1].trim() || 'this key'} is a string that is not closed: add the closing ${quote} on the same line`;
    }
  }
  return `line ${line}, column ${column}: ${parserReason}`;
}
