/** Process-level helpers: memory of a pid, ports, temp dirs, bounded waits, child cleanup. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface ProcMemory {
  /** Resident set size now (VmRSS). */
  rssBytes: number;
  /** Peak resident set size since the process started (VmHWM). */
  hwmBytes: number;
  /**
   * VmRSS split by what backs the pages: anonymous (heaps, malloc, stacks: the process's own memory),
   * file-backed (the binary, libraries and memory-mapped files such as an LMDB store: page cache the
   * kernel can drop and re-read) and shared memory.
   */
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
}

/** VmRSS (and its split) and VmHWM of a live process from /proc; null once it is gone. */
export function procMemory(pid: number): ProcMemory | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM'), rssAnonBytes: kb('RssAnon'), rssFileBytes: kb('RssFile'), rssShmemBytes: kb('RssShmem') };
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat; null once it is gone. */
export function procCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU time of one thread of a process so far, in ms (/proc/<pid>/task/<tid>/stat); the main thread's
 * tid is the pid. Null once it is gone.
 */
export function threadCpuMs(pid: number, tid: number): number | null {
  return statCpuMs(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuMs(file: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Samples a pid's RSS at a fixed period and keeps the maximum; bounded by `stop()`. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private maxRss = 0;
  private samples = 0;

  constructor(
    private readonly pid: number,
    private readonly periodMs = 10,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.periodMs);
    return this;
  }

  /** Stops sampling; returns the highest RSS seen (bytes). */
  stop(): { maxRssBytes: number; samples: number } {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return { maxRssBytes: this.maxRss, samples: this.samples };
  }

  private sample(): void {
    const m = procMemory(this.pid);
    if (!m) return;
    this.samples++;
    if (m.rssBytes > this.maxRss) this.maxRss = m.rssBytes;
  }
}

export interface ListenCounters {
  /** TcpExt ListenOverflows: a handshake completed while the listener's accept queue was full. */
  overflows: number;
  /** TcpExt ListenDrops: every SYN or handshake a listener dropped (overflows included). */
  drops: number;
}

/**
 * The kernel's listen-queue counters (/proc/net/netstat, TcpExt), for this network namespace as a
 * whole: a delta across a window counts every listener's drops, not only the one measured.
 */
export function listenCounters(): ListenCounters {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) throw new Error('/proc/net/netstat has no TcpExt lines');
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  const value = (name: string): number => {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`/proc/net/netstat: no TcpExt ${name}`);
    return Number(values[i]);
  };
  return { overflows: value('ListenOverflows'), drops: value('ListenDrops') };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Disk space a directory tree takes (allocated blocks, so a sparse file counts what it holds); 0 if absent. */
export function diskBytes(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += diskBytes(p);
    else {
      try {
        total += fs.statSync(p).blocks * 512;
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Host wall clock in ms with sub-ms resolution; the same clock as the sim's `hostNow()` in every process. */
export function hostNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Polls `predicate` every `everyMs` until it holds; rejects after `timeoutMs` with `what`. */
export async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Rejects with `what` if `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Sends `signal`, waits up to `graceMs`, then SIGKILLs; resolves once the child is gone. */
export async function terminate(child: ChildProcess, graceMs = 5_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

/**
 * Every child this process started, so a runner that is interrupted (SIGINT/SIGTERM, an uncaught
 * error) still kills them, one by one by pid, before it exits.
 */
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

export function trackChild(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of children) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  return child;
}

/** Disposers run in reverse order; every one runs even if an earlier one throws. */
export class Cleanup {
  private readonly stack: Array<{ what: string; fn: () => Promise<void> | void }> = [];

  add(what: string, fn: () => Promise<void> | void): void {
    this.stack.push({ what, fn });
  }

  async run(log?: (line: string) => void): Promise<void> {
    while (this.stack.length > 0) {
      const { what, fn } = this.stack.pop() as { what: string; fn: () => Promise<void> | void };
      try {
        await withTimeout(Promise.resolve().then(fn), 30_000, `cleanup: ${what}`);
      } catch (err) {
        log?.(`cleanup of ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

/** Path of a compiled bench module (this file lives in dist/bench/lib at run time). */
export function benchModule(rel: string): string {
  return path.resolve(__dirname, '..', rel);
}

/**
 * The Node flags on the launcher's shebang (`#!/usr/bin/env -S node <flags>`), so the bench, which
 * spawns `node bin/zisk-coordinator`, runs the coordinator as the launcher itself does.
 */
export function launcherNodeFlags(): string[] {
  const first = fs.readFileSync(path.join(repoRoot(), 'bin', 'zisk-coordinator'), 'utf8').split('\n', 1)[0];
  const m = /^#!\S*env -S node(?<flags>(?:\s+\S+)*)\s*$/.exec(first);
  if (!m) throw new Error(`unexpected launcher shebang: ${first}`);
  return (m.groups?.flags ?? '').split(/\s+/).filter((f) => f.length > 0);
}

/** The repository root (holds bin/zisk-coordinator), from dist/bench/lib or bench/lib. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'bin', 'zisk-coordinator'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`bin/zisk-coordinator not found above ${__dirname}`);
    dir = parent;
  }
  return dir;
}
