/**
 * The two systems a scenario measures, behind one interface: the coordinator binary (its own process,
 * started exactly as users start it) and a raw grpc-js baseline process (bench/baselines).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoopStats } from '../../src/shared/loop-stats';
import { IpcChild } from './ipc';
import { scrape, sampleValue, type Sample } from './prom';
import { benchModule, exited, launcherNodeFlags, procMemory, removeDir, repoRoot, tempDir, trackChild, type ProcMemory } from './proc';
import type { EchoApi, EchoConfig } from '../baselines/echo-coordinator';

export interface LoopFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  utilization: number;
}

export interface LoopReport {
  main: LoopFigures;
  /** Scheduler thread (coordinator with `scheduler_thread = true` only). */
  scheduler?: LoopFigures;
}

export interface StopReport {
  /** SIGTERM to process exit. */
  exitMs: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SystemUnderTest {
  kind: 'coordinator' | 'baseline';
  pid: number;
  apiAddress: string;
  clusterAddress: string;
  /** Spawn to "serving". */
  startupMs: number;
  /** Event-loop figures since the previous call (the first call starts the interval). */
  loop(): Promise<LoopReport>;
  memory(): ProcMemory | null;
  stop(): Promise<StopReport>;
}

function figuresOf(s: LoopStats): LoopFigures {
  return { p50Ms: s.p50 * 1000, p99Ms: s.p99 * 1000, maxMs: s.max * 1000, utilization: s.utilization };
}

// ------------------------------------------------------------------------------------------ coordinator

export interface CoordinatorOptions {
  /** `ZISK_COORDINATOR_*` settings (and any other env) added to a clean environment. */
  env?: Record<string, string>;
  schedulerThread?: boolean;
  /** Node flags before the script (e.g. `--cpu-prof`, `--cpu-prof-dir=…`). */
  nodeArgs?: string[];
  /** `file` (default): stdout to a log file, so a busy bench never back-pressures the coordinator's logger. */
  logMode?: 'file' | 'pipe';
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  startTimeoutMs?: number;
  /**
   * The process's home (its cache dir, and with it the job store, live under it): given, it is reused
   * and left in place on stop (a restart on the same state); default a new temp dir removed on stop.
   */
  home?: string;
  /** Listener ports (default 0 each: the OS picks; a restart passes the first run's ports). */
  ports?: { api?: number; cluster?: number; metrics?: number };
}

export class CoordinatorProcess implements SystemUnderTest {
  readonly kind = 'coordinator' as const;
  /** `startup_ms` as the coordinator logs it (its own measure, from entry to serving). */
  reportedStartupMs = 0;
  /** Host clock (`performance.timeOrigin + performance.now()`) when the serving line was seen. */
  servingAtHost = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly home: string,
    private readonly ownsHome: boolean,
    readonly logPath: string | undefined,
    readonly ports: { api: number; cluster: number; metrics: number },
    public startupMs: number,
    private readonly pipeLines: string[],
  ) {}

  static async start(opts: CoordinatorOptions = {}): Promise<CoordinatorProcess> {
    const home = opts.home ?? tempDir('zisk-bench-coord-');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, '.config'),
      ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
      ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
      ZISK_COORDINATOR_LOGGING_FORMAT: 'json',
      ZISK_COORDINATOR_LOGGING_LEVEL: opts.logLevel ?? 'info',
      ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(home, 'cache'),
      ZISK_COORDINATOR_COORDINATOR_SCHEDULER_THREAD: String(opts.schedulerThread ?? true),
      ...opts.env,
    };
    const args = [
      ...launcherNodeFlags(),
      ...(opts.nodeArgs ?? []),
      path.join(repoRoot(), 'bin', 'zisk-coordinator'),
      // Port 0 by default: the OS picks free ports (no race with other sockets), and the listener
      // log lines say which.
      '--api-port',
      String(opts.ports?.api ?? 0),
      '--cluster-port',
      String(opts.ports?.cluster ?? 0),
      '--metrics-port',
      String(opts.ports?.metrics ?? 0),
    ];
    const mode = opts.logMode ?? 'file';
    const logPath = mode === 'file' ? path.join(home, 'coordinator.log') : undefined;
    const outFd = logPath ? fs.openSync(logPath, 'w') : undefined;
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: home, env, stdio: ['ignore', outFd ?? 'pipe', 'pipe'] });
    if (outFd !== undefined) fs.closeSync(outFd);
    trackChild(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-8000)));
    const lines: string[] = [];
    let partial = '';
    let servingLine: string | undefined;
    let servingAt = 0;
    child.stdout?.on('data', (d: Buffer) => {
      partial += d.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) {
        if (!servingLine && l.includes('"zisk-coordinator serving"')) {
          servingLine = l;
          servingAt = performance.now();
        }
        if (lines.length < 200) lines.push(l);
      }
    });
    const gone = exited(child);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
    let offset = 0;
    let fileText = '';
    while (!servingLine) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`coordinator exited during startup (code ${child.exitCode}); stderr: ${stderr}; log: ${fileText.slice(-2000)}`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await gone;
        throw new Error(`coordinator not serving within ${opts.startTimeoutMs ?? 20_000} ms; stderr: ${stderr}; log: ${fileText.slice(-2000)}`);
      }
      if (logPath) {
        const fd = fs.openSync(logPath, 'r');
        const size = fs.fstatSync(fd).size;
        if (size > offset) {
          const buf = Buffer.alloc(size - offset);
          fs.readSync(fd, buf, 0, buf.length, offset);
          offset = size;
          fileText += buf.toString('utf8');
          for (const l of fileText.split('\n')) {
            if (l.includes('"zisk-coordinator serving"')) {
              servingLine = l;
              servingAt = performance.now();
            }
          }
          if (servingLine) lines.push(...fileText.split('\n'));
        }
        fs.closeSync(fd);
      }
      if (!servingLine) await new Promise((r) => setTimeout(r, logPath ? 5 : 2));
    }
    const ports = { api: 0, cluster: 0, metrics: 0 };
    for (const l of lines) {
      if (!l.includes('"listener"')) continue;
      try {
        const rec = JSON.parse(l) as { listener?: string; port?: number };
        if ((rec.listener === 'api' || rec.listener === 'cluster' || rec.listener === 'metrics') && typeof rec.port === 'number') ports[rec.listener] = rec.port;
      } catch {
        // not a JSON line
      }
    }
    if (!ports.api || !ports.cluster || !ports.metrics) {
      child.kill('SIGKILL');
      throw new Error(`coordinator serving but listener ports not logged: ${JSON.stringify(ports)}`);
    }
    const c = new CoordinatorProcess(child, home, opts.home === undefined, logPath, ports, servingAt - t0, lines);
    c.servingAtHost = performance.timeOrigin + servingAt;
    try {
      c.reportedStartupMs = Number((JSON.parse(servingLine) as { startup_ms?: number }).startup_ms ?? 0);
    } catch {
      c.reportedStartupMs = 0;
    }
    return c;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get apiAddress(): string {
    return `127.0.0.1:${this.ports.api}`;
  }

  get clusterAddress(): string {
    return `127.0.0.1:${this.ports.cluster}`;
  }

  get metricsUrl(): string {
    return `http://127.0.0.1:${this.ports.metrics}/metrics`;
  }

  async scrape(): Promise<Sample[]> {
    return scrape(this.metricsUrl);
  }

  async loop(): Promise<LoopReport> {
    const s = await this.scrape();
    const fig = (thread: string): LoopFigures => ({
      p50Ms: (sampleValue(s, 'coordinator_event_loop_delay_seconds', { thread, stat: 'p50' }) ?? 0) * 1000,
      p99Ms: (sampleValue(s, 'coordinator_event_loop_delay_seconds', { thread, stat: 'p99' }) ?? 0) * 1000,
      maxMs: (sampleValue(s, 'coordinator_event_loop_delay_seconds', { thread, stat: 'max' }) ?? 0) * 1000,
      utilization: sampleValue(s, 'coordinator_event_loop_utilization', { thread }) ?? 0,
    });
    const report: LoopReport = { main: fig('main') };
    if (sampleValue(s, 'coordinator_event_loop_utilization', { thread: 'scheduler' }) !== undefined) report.scheduler = fig('scheduler');
    return report;
  }

  memory(): ProcMemory | null {
    return procMemory(this.pid);
  }

  /** Parsed JSON log records whose text contains `needle` (log file mode). */
  logRecords(needle: string): Array<Record<string, unknown>> {
    if (!this.logPath || !fs.existsSync(this.logPath)) return [];
    const out: Array<Record<string, unknown>> = [];
    for (const l of fs.readFileSync(this.logPath, 'utf8').split('\n')) {
      if (!l.includes(needle)) continue;
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // partial line
      }
    }
    return out;
  }

  /** Every log line so far: the log file's, or (pipe mode) the first 200 lines read from the pipe. */
  logLines(): string[] {
    if (this.logPath && fs.existsSync(this.logPath)) return fs.readFileSync(this.logPath, 'utf8').split('\n');
    return [...this.pipeLines];
  }

  /** Error/fatal lines of the log so far (level ≥ 50), at most `max`. */
  errorLines(max = 5): string[] {
    const text = this.logPath && fs.existsSync(this.logPath) ? fs.readFileSync(this.logPath, 'utf8') : this.pipeLines.join('\n');
    const out: string[] = [];
    for (const l of text.split('\n')) {
      if (/"level":(50|60)/.test(l)) out.push(l.slice(0, 400));
      if (out.length >= max) break;
    }
    return out;
  }

  /** SIGKILL, as a crash: nothing is drained or flushed (what was acknowledged is on disk already). */
  async kill(): Promise<StopReport> {
    const gone = exited(this.child);
    const t0 = performance.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    const { code, signal } = await gone;
    if (this.ownsHome) removeDir(this.home);
    return { exitMs: performance.now() - t0, code, signal };
  }

  async stop(graceMs = 20_000): Promise<StopReport> {
    const gone = exited(this.child);
    const t0 = performance.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const { code, signal } = await gone;
    clearTimeout(timer);
    const exitMs = performance.now() - t0;
    if (this.ownsHome) removeDir(this.home);
    return { exitMs, code, signal };
  }
}

// ------------------------------------------------------------------------------------------ baseline

export class EchoBaseline implements SystemUnderTest {
  readonly kind = 'baseline' as const;
  /** Host clock when `start` had both servers listening. */
  readonly servingAtHost = performance.timeOrigin + performance.now();

  private constructor(
    readonly ipc: IpcChild<EchoApi>,
    readonly ports: { api: number; cluster: number },
    readonly startupMs: number,
    private readonly home: string,
  ) {}

  static async start(config: Partial<Omit<EchoConfig, 'cacheDir'>> = {}): Promise<EchoBaseline> {
    const home = tempDir('zisk-bench-echo-');
    const t0 = performance.now();
    const ipc = IpcChild.fork<EchoApi>(benchModule('baselines/echo-coordinator.js'));
    try {
      const ports = await ipc.call(
        'start',
        {
          workersPerJob: config.workersPerJob ?? 0,
          heartbeatIntervalMs: config.heartbeatIntervalMs ?? 30_000,
          maxMessageBytes: config.maxMessageBytes ?? 128 << 20,
          cacheDir: home,
          ...(config.recvWindowBytes !== undefined ? { recvWindowBytes: config.recvWindowBytes } : {}),
          ...(config.heartbeatSlices !== undefined ? { heartbeatSlices: config.heartbeatSlices } : {}),
          ...(config.apiPort !== undefined ? { apiPort: config.apiPort } : {}),
          ...(config.clusterPort !== undefined ? { clusterPort: config.clusterPort } : {}),
        },
        30_000,
      );
      return new EchoBaseline(ipc, ports, performance.now() - t0, home);
    } catch (err) {
      await ipc.close(1_000);
      removeDir(home);
      throw err;
    }
  }

  get pid(): number {
    return this.ipc.pid;
  }

  get apiAddress(): string {
    return `127.0.0.1:${this.ports.api}`;
  }

  get clusterAddress(): string {
    return `127.0.0.1:${this.ports.cluster}`;
  }

  async loop(): Promise<LoopReport> {
    return { main: figuresOf(await this.ipc.call('loopStats', {})) };
  }

  counters(): Promise<EchoApi['counters']['result']> {
    return this.ipc.call('counters', {});
  }

  memory(): ProcMemory | null {
    return procMemory(this.pid);
  }

  /** SIGKILL, as a crash. */
  async kill(): Promise<StopReport> {
    const gone = exited(this.ipc.child);
    const t0 = performance.now();
    if (this.ipc.child.exitCode === null && this.ipc.child.signalCode === null) this.ipc.child.kill('SIGKILL');
    const { code, signal } = await gone;
    removeDir(this.home);
    return { exitMs: performance.now() - t0, code, signal };
  }

  async stop(): Promise<StopReport> {
    const t0 = performance.now();
    await this.ipc.close();
    removeDir(this.home);
    return { exitMs: performance.now() - t0, code: this.ipc.child.exitCode, signal: this.ipc.child.signalCode };
  }
}
