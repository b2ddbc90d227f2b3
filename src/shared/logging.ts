/**
 * Process-wide logging on pino.
 *
 * pino always produces one JSON line per record; this module turns that line into the configured
 * format (`json` as is, `pretty` through pino-pretty's formatter, `compact` through our own) and fans
 * it out to stdout and, optionally, a file. Writes are asynchronous (sonic-boom) so logging never
 * blocks the event loop; `flushLogger` writes out what is buffered, and the process calls it before
 * exiting, so a fatal config or port error never loses the line explaining why. No worker-thread
 * transports: they could lose lines on exit. `reopenLogFiles` reopens the file at its path, for
 * logrotate (docs/operations.md, Reloading: SIGHUP).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { LoggingConfig, LogFormat } from './config/types';

export type Logger = pino.Logger;

export interface CreateLoggerOptions {
  /** Replaces stdout (tests capture output here). */
  destination?: NodeJS.WritableStream;
  /** Whether the console destination is a terminal; defaults to the destination's own `isTTY`. */
  isTty?: boolean;
  /** Added to every record as `name`. */
  name?: string;
}

type LogRecord = Record<string, unknown>;

/** Renders one parsed record (or passes the raw JSON line through) for one output. */
type Renderer = (line: string, record: () => LogRecord) => string;

interface Sink {
  write(chunk: string): unknown;
  flushSync?(): void;
  /** Files only: opens the path again (a new file if it was renamed); returns the path. */
  reopen?(): string;
}

interface Target {
  sink: Sink;
  render: Renderer;
}

/**
 * pino destination that formats each line once per target. Parsing is lazy and shared so `json`
 * output costs no parse at all, and pretty + file costs one.
 */
class FanOutDestination implements pino.DestinationStream {
  constructor(private readonly targets: readonly Target[]) {}

  write(line: string): void {
    let parsed: LogRecord | undefined;
    const record = (): LogRecord => (parsed ??= JSON.parse(line) as LogRecord);
    for (const t of this.targets) t.sink.write(t.render(line, record));
  }

  /** Throws (and keeps every old file) when a path cannot be opened. */
  reopen(): string[] {
    const reopened: string[] = [];
    for (const t of this.targets) if (t.sink.reopen) reopened.push(t.sink.reopen());
    return reopened;
  }

  flush(cb: (err?: Error) => void): void {
    for (const t of this.targets) {
      try {
        t.sink.flushSync?.();
      } catch {
        // A sink that never opened has nothing buffered; flushing is best effort before exit.
      }
    }
    cb();
  }
}

export function createLogger(cfg: LoggingConfig, opts: CreateLoggerOptions = {}): Logger {
  const consoleSink: Sink = opts.destination ?? stdoutSink();
  const isTty = opts.isTty ?? ttyOf(opts.destination ?? process.stdout);
  // https://no-color.org: any non-empty value disables colour.
  const colour = isTty && !process.env.NO_COLOR;

  const targets: Target[] = [{ sink: consoleSink, render: rendererFor(cfg.format, colour) }];
  if (cfg.file_path) targets.push({ sink: fileSink(cfg.file_path), render: rendererFor(cfg.format, false) });

  const destination = new FanOutDestination(targets);
  const logger = pino(
    {
      level: cfg.level,
      name: opts.name,
      // pid/hostname add noise to every line; one coordinator runs per host and journald/docker
      // already record both.
      base: {},
      timestamp: isoTimeField,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  destinations.set(logger, destination);
  return logger;
}

const destinations = new WeakMap<Logger, FanOutDestination>();

/**
 * Reopens `[logging] file_path` at its path: after logrotate renames the file, lines logged from now
 * on go to a new file there, and the ones already buffered still reach the renamed one. Returns the
 * reopened paths (none without a log file); throws when the path cannot be opened, and then keeps
 * writing to the old file.
 */
export function reopenLogFiles(logger: Logger): string[] {
  return destinations.get(logger)?.reopen() ?? [];
}

let cachedSecond = Number.NaN;
let cachedSecondPrefix = '';

/**
 * pino's `isoTime` builds a Date and formats it for every line; the per-job lines made that visible
 * in throughput profiles. The ISO prefix changes once a second, so only the milliseconds are formatted.
 */
export function isoTimeAt(epochMs: number): string {
  const second = Math.floor(epochMs / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedSecondPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
  }
  const ms = epochMs - second * 1000;
  return `${cachedSecondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${Math.floor(ms)}Z`;
}

function isoTimeField(): string {
  return `,"time":"${isoTimeAt(Date.now())}"`;
}

/** Writes out what the asynchronous sinks still hold; call it before the process exits. */
export function flushLogger(logger: Logger): void {
  logger.flush();
}

function rendererFor(format: LogFormat, colour: boolean): Renderer {
  switch (format) {
    case 'json':
      return (line) => line;
    case 'compact':
      return (_line, record) => formatCompact(record());
    case 'pretty': {
      const pretty = prettyFactory({
        colorize: colour,
        // Our `time` is already an ISO-8601 UTC string; translating it would only reparse it.
        translateTime: false,
        ignore: 'pid,hostname',
      });
      return (_line, record) => pretty(record());
    }
  }
}

/** `<ISO time> <LEVEL> <msg> key=value …`, always exactly one line. */
export function formatCompact(record: LogRecord): string {
  const { time, level, msg, ...fields } = record;
  const parts: string[] = [String(time), String(level).toUpperCase()];
  if (msg !== undefined && msg !== '') parts.push(escapeControls(String(msg)));
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.join(' ') + '\n';
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return isBareWord(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  // Objects (serialized errors included) as JSON keep the record on one line: stacks become "\n".
  return JSON.stringify(value) ?? String(value);
}

/** Strings that can go unquoted without making `key=value` ambiguous to a reader or a grep. */
function isBareWord(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // space, '"', '=', '\\', and every control character force quoting.
    if (c <= 0x20 || c === 0x22 || c === 0x3d || c === 0x5c || c === 0x7f) return false;
  }
  return true;
}

/** Messages may quote worker- or client-supplied text: keep newlines and ANSI escapes inert. */
function escapeControls(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c < 0x20 || c === 0x7f ? JSON.stringify(s[i]).slice(1, -1) : s[i];
  }
  return out;
}

function ttyOf(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/**
 * Asynchronous, batched writes: a write per line (synchronous at first, then one async write per
 * line) was a visible share of every job's CPU under load. Lines collect until 4 KiB or until the
 * next flush tick (LOG_FLUSH_MS), so a line is never held longer than that; the buffer is bounded
 * (lines beyond it are dropped rather than growing memory behind a stuck reader), and `flushLogger`
 * writes what is left before the process exits.
 */
const ASYNC_SINK = { sync: false, minLength: 4096, maxLength: 16 * 1024 * 1024 } as const;
const LOG_FLUSH_MS = 100;

/** A sink whose buffered lines are flushed every LOG_FLUSH_MS, only when it received some. */
function batched(current: () => SonicBoomLike): Sink {
  let pending = false;
  const timer = setInterval(() => {
    if (!pending) return;
    pending = false;
    try {
      current().flush();
    } catch {
      // Not open yet or already closed: the next tick (or flushLogger at exit) writes it.
    }
  }, LOG_FLUSH_MS);
  // Logging must never be what keeps the process alive.
  timer.unref();
  return {
    write(chunk: string) {
      pending = true;
      return current().write(chunk);
    },
    flushSync: () => current().flushSync(),
  };
}

interface SonicBoomLike {
  write(chunk: string): unknown;
  flush(): void;
  flushSync(): void;
  end(): void;
}

function stdoutSink(): Sink {
  const dest = pino.destination({ dest: 1, ...ASYNC_SINK });
  // A closed stdout (`… | head`) must not crash the coordinator; the log line is simply lost.
  dest.on('error', () => undefined);
  return batched(() => dest);
}

function fileSink(filePath: string): Sink {
  const resolved = path.resolve(filePath);
  let dest = openFileDestination(resolved);
  const sink = batched(() => dest);
  sink.reopen = () => {
    // Opened first: a path that cannot be opened now leaves the old file in use.
    const next = openFileDestination(resolved);
    const old = dest;
    dest = next;
    try {
      // Writes out what the old file still buffers (lines logged before the signal), then closes it.
      old.end();
    } catch {
      // Already closed after an error: nothing left to write there.
    }
    return resolved;
  };
  return sink;
}

function openFileDestination(resolved: string): SonicBoomLike {
  try {
    fs.mkdirSync(path.dirname(resolved), { recursive: true });
    // Opened synchronously so a bad path fails at startup (or at the reopen) and flushLogger can always write.
    const fd = fs.openSync(resolved, 'a');
    const dest = pino.destination({ dest: fd, ...ASYNC_SINK });
    let reported = false;
    // A full disk must not take the coordinator down with it; say so once on stderr.
    dest.on('error', (err: Error) => {
      if (reported) return;
      reported = true;
      process.stderr.write(`log file ${resolved}: ${err.message}; further file writes may be lost\n`);
    });
    return dest;
  } catch (err) {
    throw new Error(`cannot open log file ${resolved}: ${(err as Error).message}`, { cause: err });
  }
}
