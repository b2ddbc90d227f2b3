/**
 * Runs the real zisk-coordinator binary to completion. For short-lived invocations only (--help,
 * --print-config, config errors); a process that keeps serving is killed at the timeout.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CliRun {
  /** Exit code, or null if the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  cwd: string;
  /** The complete environment of the child: nothing is inherited, so the host's RUST_LOG etc. cannot leak in. */
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Run as this user and group (the test runner must be root to switch). */
  uid?: number;
  gid?: number;
  /** Another program of the package (default bin/zisk-coordinator). */
  bin?: string;
}

/** The repository root, found from this file whether it runs from test/ or dist/test/. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'bin', 'zisk-coordinator'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`bin/zisk-coordinator not found above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

export function binPath(): string {
  return path.join(repoRoot(), 'bin', 'zisk-coordinator');
}

export function runCli(args: readonly string[], options: RunCliOptions): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.bin ?? binPath(), ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A minimal child environment: PATH plus HOME and XDG_CONFIG_HOME pointing at throwaway dirs. */
export function isolatedEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOME: home, XDG_CONFIG_HOME: path.join(home, '.xdg') };
  if (process.env.PATH !== undefined) env.PATH = process.env.PATH;
  return { ...env, ...extra };
}
