/**
 * Debian's `promtool` and `prometheus` (package `prometheus`; .ci/run installs it) for the tests of
 * deploy/prometheus and deploy/grafana: run promtool, and start a real Prometheus on loopback with a
 * temporary storage directory, scraping what the test names.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, tempDir } from './spawn-coordinator';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const RULES_DIR = path.join(REPO_ROOT, 'deploy/prometheus/rules');

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs promtool; a missing binary is an error that says how to install it, never a skip. */
export function promtool(args: string[], stdin?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, { cwd: REPO_ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('promtool not found: apt-get install -y --no-install-recommends prometheus (.ci/run does)'));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(stdin ?? '');
  });
}

/** Alert names of a rules file, in order (`- alert: Name` lines). */
export function alertNames(rulesText: string): string[] {
  return [...rulesText.matchAll(/^\s*- alert:\s*(\S+)\s*$/gm)].map((m) => m[1]!);
}

export interface PrometheusServer {
  url: string;
  child: ChildProcess;
  log: () => string;
  /** Result of an instant query; throws on an API error (e.g. a parse error), with its message. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  get<T>(apiPath: string): Promise<T>;
  stop(): Promise<void>;
}

interface ApiResponse<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
  errorType?: string;
}

/**
 * Starts Prometheus on a free loopback port with `scrapeTargets` scraped every `intervalSeconds`
 * under the job name `zisk-coordinator` and the rules of deploy/prometheus/rules loaded, and
 * resolves once it answers as ready.
 */
export async function startPrometheus(scrapeTargets: string[], intervalSeconds = 1): Promise<PrometheusServer> {
  const dir = tempDir('zisk-prom-');
  const port = await freePort();
  const config = [
    'global:',
    `  scrape_interval: ${intervalSeconds}s`,
    `  scrape_timeout: ${intervalSeconds}s`,
    `  evaluation_interval: ${intervalSeconds}s`,
    'rule_files:',
    `  - ${JSON.stringify(path.join(RULES_DIR, '*.yml'))}`,
    'scrape_configs:',
    '  - job_name: zisk-coordinator',
    '    static_configs:',
    `      - targets: ${JSON.stringify(scrapeTargets)}`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  let log = '';
  const child = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('prometheus not found: apt-get install -y --no-install-recommends prometheus') : err)),
  );
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const get = async <T>(apiPath: string): Promise<T> => {
    const res = await fetch(url + apiPath);
    const body = (await res.json()) as ApiResponse<T>;
    if (body.status !== 'success') throw new Error(`${apiPath}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  const server: PrometheusServer = {
    url,
    child,
    log: () => log,
    get,
    query: async (expr) => (await get<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    stop,
  };
  try {
    await Promise.race([spawnError, waitReady(url, child, () => log)]);
  } catch (err) {
    await stop();
    throw err;
  }
  return server;
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${log()}`);
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`prometheus not ready within 15 s: ${log()}`);
}

/** Polls `probe` until it returns a value other than undefined, or fails after `ms` with `what`. */
export async function eventually<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
