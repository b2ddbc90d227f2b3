/**
 * Spawns the real `bin/zisk-coordinator` as users run it and follows its JSON log on stdout:
 * waits for "serving", reads the bound ports from the listener lines, sends signals, awaits exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binPath } from './run-cli';

export { freePort } from '../../src/shared/free-port';

export interface LogLine {
  level?: string;
  msg?: string;
  listener?: string;
  port?: number;
  [key: string]: unknown;
}

export interface SpawnedCoordinator {
  child: ChildProcess;
  lines: LogLine[];
  stderr: () => string;
  ports: { api?: number; cluster?: number; metrics?: number };
  /** Time from spawn to the "serving" log line. */
  startupMs: number;
  waitForLine(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  args?: string[];
  /** Added to a clean environment (HOME and XDG_CONFIG_HOME point at an empty temp dir). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve only after the serving line (default true). */
  waitServing?: boolean;
  timeoutMs?: number;
  /** What runs instead of bin/zisk-coordinator (e.g. `npm start --`); `args` follow it. */
  command?: readonly [string, ...string[]];
  /** A process group of its own, so the test can signal the group as a terminal's Ctrl-C does. */
  detached?: boolean;
}

export function tempDir(prefix = 'zisk-proc-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function spawnCoordinator(opts: SpawnOptions = {}): Promise<SpawnedCoordinator> {
  const home = tempDir('zisk-home-');
  const cwd = opts.cwd ?? home;
  const env: NodeJS.ProcessEnv = {
    // The launcher runs through its shebang (`env -S node …`) as users run it: find this same node.
    PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    ZISK_COORDINATOR_LOGGING_FORMAT: 'json',
    ZISK_CACHE_DIR: path.join(home, 'cache'),
    ...opts.env,
  };
  const t0 = performance.now();
  const [file, ...prefix] = opts.command ?? [binPath()];
  const child = spawn(file, [...prefix, ...(opts.args ?? [])], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  const lines: LogLine[] = [];
  const watchers: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let stderr = '';
  let partial = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  child.stdout?.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (!raw.trim()) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { msg: raw };
      }
      lines.push(line);
      for (let i = watchers.length - 1; i >= 0; i--) {
        if (watchers[i].pred(line)) {
          watchers[i].resolve(line);
          watchers.splice(i, 1);
        }
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const waitForLine = (pred: (l: LogLine) => boolean, ms = timeoutMs): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`log line not seen within ${ms} ms; stderr: ${stderr}; lines: ${JSON.stringify(lines.slice(-5))}`)), ms);
      watchers.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`process exited before the log line; stderr: ${stderr}`));
      });
    });
  };
  const spawned: SpawnedCoordinator = {
    child,
    lines,
    stderr: () => stderr,
    ports: {},
    startupMs: 0,
    waitForLine,
    exited,
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
  };
  if (opts.waitServing ?? true) {
    try {
      await waitForLine((l) => l.msg === 'zisk-coordinator serving');
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    spawned.startupMs = performance.now() - t0;
    for (const l of lines) {
      if (l.listener === 'api' || l.listener === 'cluster' || l.listener === 'metrics') {
        spawned.ports[l.listener] = l.port;
      }
    }
  }
  return spawned;
}

/** Ensures a test never leaves a process behind. */
export async function stopCoordinator(c: SpawnedCoordinator): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.kill('SIGKILL');
  await c.exited;
}
