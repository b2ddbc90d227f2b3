import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HintsFramingError, HintsFramingValidator } from '../../src/main/data/hints-framing';
import { END, START, bytes, header, hint } from './fakes';

function violation(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HintsFramingError, `expected HintsFramingError, got ${String(e)}`);
    return e.reason;
  }
  assert.fail('expected a framing violation');
}

/** Feeds every batch; returns the per-batch flags. */
function feedAll(v: HintsFramingValidator, batches: Buffer[]): Array<[boolean, boolean]> {
  return batches.map((b) => {
    const r = v.feed(b);
    return [r.hasStart, r.hasEnd];
  });
}

test('a complete stream in one batch has START and END', () => {
  const v = new HintsFramingValidator();
  const stream = Buffer.concat([START, hint(0x100, bytes(20)), hint(0xf0000, bytes(8)), hint(0x200, Buffer.alloc(0)), END]);
  assert.deepEqual(v.feed(stream), { hasStart: true, hasEnd: true });
  assert.equal(v.started, true);
  assert.equal(v.ended, true);
  v.finish();
});

test('batch length must be a multiple of 8', () => {
  const v = new HintsFramingValidator();
  assert.match(violation(() => v.feed(Buffer.alloc(13))), /^batch length 13 is not a multiple of 8/);
});

test('the first hint must be CTRL_START, named with its header', () => {
  const v = new HintsFramingValidator();
  const reason = violation(() => v.feed(hint(0x105, bytes(32))));
  assert.equal(reason, 'first hint is 0x0000010500000020 (code 0x105, length 32) not CTRL_START');
  // CTRL_START with a length is not CTRL_START either.
  assert.match(violation(() => new HintsFramingValidator().feed(header(0, 8))), /^first hint is 0x0000000000000008 .* not CTRL_START/);
});

test('empty batches are neutral, even before CTRL_START', () => {
  const v = new HintsFramingValidator();
  assert.deepEqual(v.feed(Buffer.alloc(0)), { hasStart: false, hasEnd: false });
  assert.deepEqual(v.feed(START), { hasStart: true, hasEnd: false });
  assert.deepEqual(v.feed(Buffer.alloc(0)), { hasStart: false, hasEnd: false });
  assert.deepEqual(v.feed(END), { hasStart: false, hasEnd: true });
});

test('nothing may follow CTRL_END, in the same batch or a later one', () => {
  const same = new HintsFramingValidator();
  assert.match(violation(() => same.feed(Buffer.concat([START, END, hint(0x100, bytes(8))]))), /^data after CTRL_END: 16 bytes follow it in the same batch/);

  const later = new HintsFramingValidator();
  feedAll(later, [START, END]);
  assert.match(violation(() => later.feed(Buffer.alloc(8))), /^data after CTRL_END: a later batch of 8 bytes at stream offset 16/);
  // An empty batch after END is not data.
  const empty = new HintsFramingValidator();
  feedAll(empty, [Buffer.concat([START, END])]);
  assert.deepEqual(empty.feed(Buffer.alloc(0)), { hasStart: false, hasEnd: false });
});

test('a second CTRL_START is a violation', () => {
  const v = new HintsFramingValidator();
  assert.equal(violation(() => v.feed(Buffer.concat([START, hint(0x100, bytes(8)), START]))), 'CTRL_START repeated at stream offset 24');
});

test('reserved CTRL_CANCEL and CTRL_ERROR fail the stream by name', () => {
  const c = new HintsFramingValidator();
  assert.match(violation(() => c.feed(Buffer.concat([START, header(2, 0)]))), /^reserved hint CTRL_CANCEL at stream offset 8/);
  const e = new HintsFramingValidator();
  feedAll(e, [START]);
  assert.match(violation(() => e.feed(header(3, 0))), /^reserved hint CTRL_ERROR at stream offset 8/);
});

test('control hints must have length 0', () => {
  const v = new HintsFramingValidator();
  assert.equal(
    violation(() => v.feed(Buffer.concat([START, header(1, 8), Buffer.alloc(8)]))),
    'control hint CTRL_END at stream offset 8 has length 8, expected 0',
  );
});

test('a pass-through code whose low bits look like a control code is a data hint', () => {
  const v = new HintsFramingValidator();
  const passThroughOne = hint(0x8000_0001, bytes(8));
  assert.deepEqual(v.feed(Buffer.concat([START, passThroughOne, END])), { hasStart: true, hasEnd: true });
});

test('a hint cut across batches is carried over; data words that look like headers are skipped', () => {
  // 40 data bytes (5 words), the 3rd of which is the CTRL_END word and the 4th a CTRL_START word.
  const data = bytes(40);
  END.copy(data, 16);
  START.copy(data, 24);
  const h = hint(0x300, data); // 48 bytes: header + 5 words
  const stream = Buffer.concat([START, h, hint(0x301, bytes(3)), END]);
  // Cut after the header, in the middle of the data, and just before the next header.
  const cuts = [8, 16, 32, 56, 64, stream.length];
  const batches: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    batches.push(stream.subarray(prev, c));
    prev = c;
  }
  const v = new HintsFramingValidator();
  assert.deepEqual(feedAll(v, batches), [
    [true, false],
    [false, false],
    [false, false],
    [false, false],
    [false, false],
    [false, true],
  ]);
  v.finish();
});

test('every word-aligned split of a valid stream is valid, with END in the last batch', () => {
  const stream = Buffer.concat([START, hint(0x100, bytes(17, 3)), hint(0x8000_0200, bytes(64, 4)), hint(0xf0000, bytes(5, 5)), END]);
  const words = stream.length / 8;
  for (let a = 1; a < words; a++) {
    for (let b = a; b < words; b++) {
      const v = new HintsFramingValidator();
      const flags = feedAll(v, [stream.subarray(0, a * 8), stream.subarray(a * 8, b * 8), stream.subarray(b * 8)]);
      assert.equal(flags[0][0], true);
      assert.equal(flags.findIndex((f) => f[1]), 2, `split at words ${a},${b}`);
      v.finish();
    }
  }
});

test('a large hint sent as chunks that each repeat the header with the total length', () => {
  const total = 100; // 13 data words
  const data = bytes(104, 9);
  // Make a would-be header inside the last chunk: if the repeated headers were counted as data, the
  // parser would land on this CTRL_END word and see data after it.
  END.copy(data, 96);
  const h = header(0x400, total);
  const chunks = [
    Buffer.concat([START, h, data.subarray(0, 40)]), // 5 words
    Buffer.concat([h, data.subarray(40, 80)]), // 5 words
    Buffer.concat([h, data.subarray(80, 104)]), // last 3 words
    Buffer.concat([hint(0x401, bytes(8)), END]),
  ];
  const v = new HintsFramingValidator();
  assert.deepEqual(feedAll(v, chunks), [
    [true, false],
    [false, false],
    [false, false],
    [false, true],
  ]);
  v.finish();
});

test('a repeated header may be followed by the rest of the hint and more hints in the same batch', () => {
  const h = header(0x500, 24);
  const chunks = [Buffer.concat([START, h, bytes(8)]), Buffer.concat([h, bytes(16), END])];
  const v = new HintsFramingValidator();
  assert.deepEqual(feedAll(v, chunks), [
    [true, false],
    [false, true],
  ]);
});

test('finish reports a missing CTRL_END precisely', () => {
  assert.equal(violation(() => new HintsFramingValidator().finish()), 'stream ended without CTRL_END (no hints received)');

  const v = new HintsFramingValidator();
  feedAll(v, [Buffer.concat([START, hint(0x100, bytes(8))])]);
  assert.equal(violation(() => v.finish()), 'stream ended without CTRL_END (after 24 bytes)');

  const mid = new HintsFramingValidator();
  feedAll(mid, [Buffer.concat([START, header(0x600, 64), bytes(16)])]);
  assert.equal(
    violation(() => mid.finish()),
    'stream ended without CTRL_END (after 32 bytes, inside hint 0x0000060000000040 (code 0x600, length 64) with 6 data words missing)',
  );
});

test('a violation is sticky', () => {
  const v = new HintsFramingValidator();
  const first = violation(() => v.feed(header(0x100, 0)));
  assert.equal(violation(() => v.feed(START)), first);
  assert.equal(violation(() => v.finish()), first);
  assert.equal(v.violation, first);
});

test('huge hint lengths do not overflow the word count', () => {
  const v = new HintsFramingValidator();
  v.feed(Buffer.concat([START, header(0x700, 0xffff_ffff), bytes(64)]));
  assert.match(violation(() => v.finish()), /with 536870904 data words missing/);
});

test('many small hints: tens of MB parse without trouble', () => {
  const hints = 2_000_000; // 16 bytes each: 32 MB
  const buf = Buffer.alloc(8 + hints * 16 + 8);
  for (let i = 0, off = 8; i < hints; i++, off += 16) {
    buf.writeUInt32LE(8, off);
    buf.writeUInt32LE(0x100 + (i & 0xff), off + 4);
    buf.writeUInt32LE(1, off + 12); // data word = CTRL_END-looking
  }
  buf.writeUInt32LE(1, buf.length - 4);
  const v = new HintsFramingValidator();
  const batch = 2 << 20;
  let endAt = -1;
  for (let off = 0, i = 0; off < buf.length; off += batch, i++) {
    if (v.feed(buf.subarray(off, Math.min(buf.length, off + batch))).hasEnd) endAt = i;
  }
  assert.equal(endAt, Math.ceil(buf.length / batch) - 1);
  v.finish();
});
