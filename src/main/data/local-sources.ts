/**
 * `file://` and `unix://` stream sources read by the coordinator itself (docs/decisions.md, Data plane):
 * URI checks at JobRequest, and the reader that feeds a job relay.
 *
 * Confinement (docs/decisions.md, Data plane): at JobRequest the path must resolve under
 * `[coordinator] inputs_dir` after `path.resolve` and realpath (of the path, or of its nearest
 * existing ancestor for a socket that does not exist yet), so `..` and symlinked directories are
 * refused with a clear error. That check is advice, not the guard: any component may be swapped for
 * a symlink between it and the open. The open itself is confined (`openConfined`): it walks from a
 * handle on inputs_dir one component at a time, each opened relative to the previous directory's
 * handle and never following a symlink, which is openat(2) without Node having it: the kernel
 * resolves `/proc/self/fd/<dir fd>/<name>` as `<name>` inside that open directory. The descriptor's
 * real path is then checked to be under inputs_dir before a byte is read. Sockets are connected
 * through `/proc/self/fd/<fd>` of an O_PATH handle opened the same way. Linux only (/proc).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { shown } from '../../shared/errors';
import { RelayError, type JobRelay } from './relays';

/** Paths in error texts: long enough to recognise, never the whole of a client's 4 KiB URI. */
const PATH_SHOWN_CHARS = 256;
const p256 = (p: string): string => shown(p, PATH_SHOWN_CHARS);

export type LocalSourceKind = 'file' | 'unix';

export type LocalUriResolution = { ok: true; kind: LocalSourceKind; path: string } | { ok: false; message: string };

export const QUIC_UNSUPPORTED_MESSAGE = 'quic:// streams are not supported; use grpc:// (PushJobInput)';

/** Size of one read: big enough to amortise per-message costs, small next to the 4 MiB message cap. */
export const READ_BYTES = 2 << 20;
/** As upstream: the producer may start listening after the job was submitted. */
export const CONNECT_RETRY_MS = 50;
export const CONNECT_TIMEOUT_MS = 60_000;

const SUPPORTED = 'use grpc:// (PushJobInput / PushJobHintsInput), or file:// or unix:// with an absolute path under [coordinator] inputs_dir';

const SDK_SOCKET_HINT = 'the SDK\'s same-host unix:///tmp/… sockets need inputs_dir = "/tmp"';

function errorCode(e: unknown): string {
  if (e && typeof e === 'object') {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  return String(e);
}

/** realpath of `p`, or of its nearest existing ancestor joined with the rest (the socket may not exist yet). */
function realpathLoose(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
    const parent = path.dirname(p);
    if (parent === p) return p;
    return path.join(realpathLoose(parent), path.basename(p));
  }
}

function isUnder(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

export function resolveLocalUri(uri: string, inputsDir: string | undefined): LocalUriResolution {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
  if (!m) return { ok: false, message: `stream_uri "${p256(uri)}" is not a URI: ${SUPPORTED}` };
  const scheme = m[1].toLowerCase();
  if (scheme === 'quic') return { ok: false, message: QUIC_UNSUPPORTED_MESSAGE };
  if (scheme === 'grpc') {
    return { ok: false, message: 'grpc:// streams are pushed by the client (PushJobInput / PushJobHintsInput), not read from a local source' };
  }
  if (scheme !== 'file' && scheme !== 'unix') {
    return { ok: false, message: `stream_uri scheme ${shown(scheme)}:// is not supported: ${SUPPORTED}` };
  }
  if (!inputsDir) {
    return {
      ok: false,
      message:
        `${scheme}:// streams are refused: [coordinator] inputs_dir is not set (set it to the directory the ` +
        `coordinator may read streams from; ${SDK_SOCKET_HINT})`,
    };
  }
  // Taken literally, not percent-decoded: upstream strips the scheme prefix and uses the rest as the path.
  const raw = uri.slice(m[0].length);
  if (!path.isAbsolute(raw)) {
    return { ok: false, message: `${scheme}:// stream path must be absolute (${scheme}:///abs/path), got "${p256(raw)}"` };
  }
  if (raw.includes('\0')) return { ok: false, message: `${scheme}:// stream path contains a NUL byte` };

  let root: string;
  let resolved: string;
  try {
    root = realpathLoose(path.resolve(inputsDir));
  } catch (e) {
    return { ok: false, message: `cannot resolve [coordinator] inputs_dir ${inputsDir}: ${errorCode(e)}` };
  }
  try {
    resolved = realpathLoose(path.resolve(raw));
  } catch (e) {
    return { ok: false, message: `cannot resolve ${p256(raw)}: ${errorCode(e)}` };
  }
  if (!isUnder(root, resolved)) {
    const where = resolved === path.resolve(raw) ? p256(raw) : `${p256(raw)} (resolves to ${p256(resolved)})`;
    const hint = scheme === 'unix' ? `; ${SDK_SOCKET_HINT}` : '';
    return { ok: false, message: `${scheme}:// stream path ${where} is outside [coordinator] inputs_dir (${root})${hint}` };
  }
  return { ok: true, kind: scheme, path: resolved };
}

/** A failure whose message is the job's failure reason. */
class SourceError extends Error {}

class Aborted extends Error {}

/** `p`, unless `signal` aborts first (a relay stuck on backpressure must not hold the reader). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new Aborted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Cuts a byte stream at word boundaries, carrying the 0…7 trailing bytes to the next piece. */
class WordCutter {
  private carry: Buffer = Buffer.alloc(0);

  get pending(): number {
    return this.carry.length;
  }

  /** The carried bytes go in front of the next read (lets file reads land right after them, no concat). */
  takeCarry(): Buffer {
    const c = this.carry;
    this.carry = Buffer.alloc(0);
    return c;
  }

  /** `data` already starts with the carry: returns the whole words, keeps (a copy of) the rest. */
  cut(data: Buffer): Buffer {
    const usable = data.length - (data.length % 8);
    this.carry = usable === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(usable));
    return data.subarray(0, usable);
  }
}

/** Linux's O_PATH (x86-64 and arm64); Node does not export it. */
const O_PATH = 0o10000000;
const PROC_FD = '/proc/self/fd';

let procChecked: boolean | undefined;
function procAvailable(): boolean {
  procChecked ??= fs.existsSync(PROC_FD);
  return procChecked;
}

/**
 * Opens `target` (an absolute path under `root`) relative to a handle on `root`, following no
 * symlink below it, and checks that the descriptor's real path is under root's. `finalFlags`
 * applies to the last component (O_NOFOLLOW is always added).
 */
async function openConfined(root: string | undefined, target: string, finalFlags: number, what: string): Promise<fs.promises.FileHandle> {
  if (root === undefined) throw new SourceError(`cannot ${what} ${target}: [coordinator] inputs_dir is not set`);
  if (!procAvailable()) throw new SourceError(`cannot ${what} ${target}: local sources need ${PROC_FD} (Linux) to be opened safely`);
  let rootReal: string;
  try {
    rootReal = await fs.promises.realpath(root);
  } catch (e) {
    throw new SourceError(`cannot ${what} ${target}: [coordinator] inputs_dir ${root}: ${errorCode(e)}`);
  }
  const rel = path.relative(rootReal, target);
  const parts = rel.split(path.sep);
  if (!isUnder(rootReal, target) || parts.some((c) => c === '' || c === '.' || c === '..')) {
    throw new SourceError(`cannot ${what} ${target}: outside [coordinator] inputs_dir (${rootReal})`);
  }
  const escaped = (e: unknown): SourceError =>
    errorCode(e) === 'ELOOP' || errorCode(e) === 'ENOTDIR'
      ? new SourceError(`cannot ${what} ${target}: a component of the path is a symbolic link or not a directory (local sources never follow symlinks)`)
      : new SourceError(`cannot ${what} ${target}: ${errorCode(e)}`);
  let dir: fs.promises.FileHandle;
  try {
    dir = await fs.promises.open(rootReal, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw escaped(e);
  }
  try {
    for (const component of parts.slice(0, -1)) {
      let next: fs.promises.FileHandle;
      try {
        next = await fs.promises.open(
          `${PROC_FD}/${dir.fd}/${component}`,
          fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW,
        );
      } catch (e) {
        throw escaped(e);
      }
      await dir.close();
      dir = next;
    }
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(`${PROC_FD}/${dir.fd}/${parts[parts.length - 1]}`, finalFlags | fs.constants.O_NOFOLLOW);
    } catch (e) {
      throw escaped(e);
    }
    // Belt and braces: whatever the walk did, what was opened must be under inputs_dir.
    let real: string;
    try {
      real = await fs.promises.readlink(`${PROC_FD}/${fh.fd}`);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw escaped(e);
    }
    if (!isUnder(rootReal, real)) {
      await fh.close().catch(() => undefined);
      throw new SourceError(`cannot ${what} ${target}: it opened as ${real}, outside [coordinator] inputs_dir (${rootReal})`);
    }
    return fh;
  } finally {
    await dir.close().catch(() => undefined);
  }
}

function partialWordReason(p: string, n: number): string {
  return `stream ${p} ends with a partial word (${n} trailing bytes; stream data must be a multiple of 8 bytes)`;
}

async function pumpFile(root: string | undefined, p: string, relay: JobRelay, signal: AbortSignal): Promise<void> {
  // O_NONBLOCK: opening a FIFO must not park a thread-pool thread until a writer appears.
  const fh = await openConfined(root, p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK, 'open');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SourceError(`cannot read ${p}: not a regular file`);
    const cutter = new WordCutter();
    for (;;) {
      if (signal.aborted) throw new Aborted();
      const buf = Buffer.allocUnsafe(READ_BYTES);
      const carry = cutter.takeCarry();
      carry.copy(buf, 0);
      let n: number;
      try {
        n = (await fh.read(buf, carry.length, READ_BYTES - carry.length, null)).bytesRead;
      } catch (e) {
        throw new SourceError(`cannot read ${p}: ${errorCode(e)}`);
      }
      if (n === 0) {
        if (carry.length > 0) throw new SourceError(partialWordReason(p, carry.length));
        break;
      }
      const words = cutter.cut(buf.subarray(0, carry.length + n));
      if (words.length > 0) await untilAborted(relay.push(words), signal);
    }
    relay.end();
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function connectOnce(root: string | undefined, p: string): Promise<net.Socket> {
  // Checked on every attempt: the socket may appear after resolveLocalUri ran (ENOENT is retried).
  await fs.promises.lstat(p);
  // Connecting by path would follow symlinks in any component: connect through a confined handle.
  const handle = await openConfined(root, p, O_PATH, 'connect to');
  try {
    const st = await handle.stat();
    if (st.isSymbolicLink()) throw new SourceError(`cannot connect to ${p}: it is a symbolic link`);
    if (!st.isSocket()) throw new SourceError(`cannot connect to ${p}: not a unix socket`);
    return await connectPath(`${PROC_FD}/${handle.fd}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function connectPath(p: string): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    // A 2 MiB read buffer lets one read() return everything that piled up while we waited on backpressure.
    // net.Socket forwards Duplex options at runtime; its constructor type just does not list them.
    const socketOpts: net.SocketConstructorOpts & { readableHighWaterMark: number } = { readableHighWaterMark: READ_BYTES };
    const sock = new net.Socket(socketOpts);
    const onError = (e: Error): void => {
      sock.destroy();
      reject(e);
    };
    sock.once('error', onError);
    sock.connect({ path: p }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

const RETRYABLE_CONNECT = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

async function connectWithRetry(root: string | undefined, p: string, signal: AbortSignal, timeoutMs: number): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal.aborted) throw new Aborted();
    try {
      const sock = await connectOnce(root, p);
      if (signal.aborted) {
        sock.destroy();
        throw new Aborted();
      }
      return sock;
    } catch (e) {
      if (e instanceof SourceError || e instanceof Aborted) throw e;
      const code = errorCode(e);
      if (!RETRYABLE_CONNECT.has(code)) throw new SourceError(`cannot connect to ${p}: ${code}`);
      if (Date.now() + CONNECT_RETRY_MS > deadline) {
        throw new SourceError(`cannot connect to ${p}: ${code} (gave up after ${Math.round(timeoutMs / 1000)} s)`);
      }
    }
    try {
      await sleep(CONNECT_RETRY_MS, undefined, { signal });
    } catch {
      throw new Aborted();
    }
  }
}

async function pumpSocket(root: string | undefined, p: string, relay: JobRelay, signal: AbortSignal, timeoutMs: number): Promise<void> {
  const sock = await connectWithRetry(root, p, signal, timeoutMs);
  const onAbort = (): void => {
    sock.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const cutter = new WordCutter();
  try {
    try {
      for await (const data of sock as AsyncIterable<Buffer>) {
        const carry = cutter.takeCarry();
        const words = cutter.cut(carry.length > 0 ? Buffer.concat([carry, data]) : data);
        if (words.length > 0) await untilAborted(relay.push(words), signal);
      }
    } catch (e) {
      if (e instanceof Aborted || e instanceof RelayError || signal.aborted) throw e;
      throw new SourceError(`error reading ${p}: ${errorCode(e)}`);
    }
    if (signal.aborted) throw new Aborted();
    if (cutter.pending > 0) throw new SourceError(partialWordReason(p, cutter.pending));
    relay.end();
  } finally {
    signal.removeEventListener('abort', onAbort);
    sock.destroy();
  }
}

export interface LocalSourceOptions {
  /**
   * `[coordinator] inputs_dir`: the source is opened relative to it, following no symlink (a job
   * restored after inputs_dir was unset has none, and fails).
   */
  root: string | undefined;
  /** How long to keep retrying a unix socket that is not listening yet (default 60 s, as upstream). */
  connectTimeoutMs?: number;
}

/**
 * Reads a resolved local source into `relay` until EOF (then `relay.end()`), with the relay's
 * backpressure. Never rejects: a source error fails the job through `relay.fail`, and an abort
 * just stops (the job is already terminal).
 */
export async function startLocalSource(
  filePath: string,
  kind: LocalSourceKind,
  relay: JobRelay,
  signal: AbortSignal,
  opts: LocalSourceOptions,
): Promise<void> {
  try {
    if (kind === 'file') await pumpFile(opts.root, filePath, relay, signal);
    else await pumpSocket(opts.root, filePath, relay, signal, opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  } catch (e) {
    if (e instanceof Aborted || signal.aborted) return;
    // The relay rejected our data and has already failed the job with the precise reason.
    if (e instanceof RelayError) return;
    relay.fail(e instanceof SourceError ? e.message : `${kind} source ${filePath} failed: ${errorCode(e)}`);
  }
}
