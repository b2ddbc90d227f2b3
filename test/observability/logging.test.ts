import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, flushLogger, formatCompact, isoTimeAt } from '../../src/shared/logging';
import type { LoggingConfig } from '../../src/shared/config/types';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// Built from a code point so the source holds no literal control character.
const ESC = String.fromCharCode(0x1b);

/** A destination that keeps every chunk, readable right after the log call (writes are sync). */
function capture(isTTY = false): { stream: Writable & { isTTY?: boolean }; text: () => string; lines: () => string[] } {
  const chunks: string[] = [];
  const stream: Writable & { isTTY?: boolean } = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  if (isTTY) stream.isTTY = true;
  const text = (): string => chunks.join('');
  return { stream, text, lines: () => text().split('\n').filter((l) => l.length > 0) };
}

function cfg(format: LoggingConfig['format'], extra: Partial<LoggingConfig> = {}): LoggingConfig {
  return { level: 'info', format, ...extra };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'zc-logging-'));
}

test('json: one object per line with ISO time, level label, msg and structured fields', () => {
  const out = capture();
  const logger = createLogger(cfg('json'), { destination: out.stream });
  logger.child({ worker_id: 'w-1' }).child({ job_id: 'j-1' }).info({ phase: 'prove' }, 'task sent');

  const lines = out.lines();
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(rec.level, 'info');
  assert.match(String(rec.time), ISO_UTC);
  assert.equal(rec.msg, 'task sent');
  assert.equal(rec.job_id, 'j-1');
  assert.equal(rec.worker_id, 'w-1');
  assert.equal(rec.phase, 'prove');
  assert.equal(rec.pid, undefined, 'no pid/hostname noise');
  assert.equal(rec.hostname, undefined);
});

test('json: records below the configured level are dropped', () => {
  const out = capture();
  const logger = createLogger(cfg('json', { level: 'warn' }), { destination: out.stream });
  logger.info('hidden');
  logger.debug('hidden');
  logger.warn('shown');
  logger.error('shown too');
  assert.deepEqual(
    out.lines().map((l) => (JSON.parse(l) as { level: string }).level),
    ['warn', 'error'],
  );
});

test('json: name option and serialized errors', () => {
  const out = capture();
  const logger = createLogger(cfg('json'), { destination: out.stream, name: 'coordinator' });
  logger.error({ err: new Error('boom') }, 'failed');
  const rec = JSON.parse(out.lines()[0]!) as { name: string; err: { message: string; stack: string } };
  assert.equal(rec.name, 'coordinator');
  assert.equal(rec.err.message, 'boom');
  assert.match(rec.err.stack, /Error: boom/);
});

test('compact: one line "<ISO> <LEVEL> <msg> key=value"', () => {
  const out = capture();
  const logger = createLogger(cfg('compact'), { destination: out.stream });
  logger.child({ worker_id: 'w-1' }).warn({ job_id: 'j-1', phase: 'aggregate', attempt: 2 }, 'worker slow');
  const lines = out.lines();
  assert.equal(lines.length, 1);
  const m = /^(\S+) WARN worker slow (.*)$/.exec(lines[0]!);
  assert.ok(m, lines[0]);
  assert.match(m[1]!, ISO_UTC);
  assert.equal(m[2], 'worker_id=w-1 job_id=j-1 phase=aggregate attempt=2');
});

test('compact: quotes awkward values and keeps multi-line content on one line', () => {
  const out = capture();
  const logger = createLogger(cfg('compact', { level: 'debug' }), { destination: out.stream });
  logger.debug({ reason: 'late result from w 2', empty: '', eq: 'a=b', ok: true }, 'line one\nline two');
  logger.error({ err: new Error('bad\nthing') }, 'with error');
  logger.info({ ansi: `${ESC}[31mred` }, `${ESC}[2Jclear`);
  const lines = out.lines();
  assert.equal(lines.length, 3, out.text());
  assert.match(lines[0]!, / DEBUG line one\\nline two reason="late result from w 2" empty="" eq="a=b" ok=true$/);
  assert.match(lines[1]!, / ERROR with error err=\{.*"message":"bad\\nthing".*\}$/);
  assert.ok(!out.text().includes(ESC), 'control characters are escaped');
  assert.match(lines[2]!, /INFO \\u001b\[2Jclear ansi="\\u001b\[31mred"$/);
});

test('formatCompact omits an absent message', () => {
  assert.equal(formatCompact({ time: 't', level: 'info', a: 1 }), 't INFO a=1\n');
});

test('pretty: human text with fields, no colour when not a TTY', () => {
  const out = capture(false);
  const logger = createLogger(cfg('pretty'), { destination: out.stream });
  logger.child({ worker_id: 'w-9' }).info({ job_id: 'j-9', phase: 'contributions' }, 'phase started');
  const text = out.text();
  assert.match(text, /INFO/);
  assert.match(text, /phase started/);
  assert.match(text, /worker_id: "w-9"/);
  assert.match(text, /job_id: "j-9"/);
  assert.match(text, /phase: "contributions"/);
  assert.ok(!text.includes(ESC), 'no ANSI escapes');
});

test('pretty: coloured on a TTY unless NO_COLOR is set', () => {
  const saved = process.env.NO_COLOR;
  try {
    delete process.env.NO_COLOR;
    const tty = capture(true);
    createLogger(cfg('pretty'), { destination: tty.stream }).info('coloured');
    assert.ok(tty.text().includes(`${ESC}[`), 'TTY gets ANSI colour');

    const forced = capture(false);
    createLogger(cfg('pretty'), { destination: forced.stream, isTty: true }).info('coloured');
    assert.ok(forced.text().includes(`${ESC}[`), 'isTty option overrides detection');

    process.env.NO_COLOR = '1';
    const noColour = capture(true);
    createLogger(cfg('pretty'), { destination: noColour.stream }).info('plain');
    assert.ok(!noColour.text().includes(ESC));
  } finally {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  }
});

test('file_path: creates parent directories and appends the same format', () => {
  const file = path.join(tmpDir(), 'nested', 'deeper', 'coordinator.log');
  const out = capture();
  const logger = createLogger(cfg('json', { file_path: file }), { destination: out.stream });
  logger.child({ job_id: 'j-f' }).info('to both');
  flushLogger(logger);

  const fileLines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  assert.equal(fileLines.length, 1);
  assert.deepEqual(JSON.parse(fileLines[0]!), JSON.parse(out.lines()[0]!));

  // A second logger on the same path appends rather than truncates.
  const again = createLogger(cfg('json', { file_path: file }), { destination: capture().stream });
  again.info('second');
  flushLogger(again);
  assert.equal(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 2);
});

test('file_path: never coloured, even when the console is a TTY', () => {
  const saved = process.env.NO_COLOR;
  delete process.env.NO_COLOR;
  try {
    const file = path.join(tmpDir(), 'pretty.log');
    const tty = capture(true);
    const logger = createLogger(cfg('pretty', { file_path: file }), { destination: tty.stream });
    logger.info({ job_id: 'j-p' }, 'pretty to file');
    flushLogger(logger);
    assert.ok(tty.text().includes(`${ESC}[`));
    const content = fs.readFileSync(file, 'utf8');
    assert.match(content, /pretty to file/);
    assert.match(content, /job_id: "j-p"/);
    assert.ok(!content.includes(ESC));
  } finally {
    if (saved !== undefined) process.env.NO_COLOR = saved;
  }
});

test('file_path: compact format in the file too', () => {
  const file = path.join(tmpDir(), 'compact.log');
  const logger = createLogger(cfg('compact', { file_path: file }), { destination: capture().stream });
  logger.info({ worker_id: 'w-c' }, 'hello file');
  flushLogger(logger);
  assert.match(fs.readFileSync(file, 'utf8'), /^\S+ INFO hello file worker_id=w-c\n$/);
});

test('file_path: an unopenable path fails loudly at creation', () => {
  const dir = tmpDir();
  const blocker = path.join(dir, 'not-a-dir');
  fs.writeFileSync(blocker, 'x');
  assert.throws(
    () => createLogger(cfg('json', { file_path: path.join(blocker, 'x.log') }), { destination: capture().stream }),
    /cannot open log file/,
  );
});

test('isoTimeAt matches Date.toISOString across second, minute and year boundaries', () => {
  const points = [0, 1, 9, 10, 99, 100, 999, 1000, 59_999, 60_000, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), 1_764_236_141_007];
  for (const t of points) {
    assert.equal(isoTimeAt(t), new Date(t).toISOString(), `at ${t}`);
    // Out of order, so the cached second must be replaced, not only advanced.
    assert.equal(isoTimeAt(t + 1), new Date(t + 1).toISOString(), `at ${t + 1}`);
  }
  for (let t = 1_764_236_140_000; t < 1_764_236_143_000; t += 37) assert.equal(isoTimeAt(t), new Date(t).toISOString());
});
