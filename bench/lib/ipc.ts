/**
 * Typed request/response over a forked child's IPC channel (advanced serialization, so Buffers and
 * Infinity survive). An API is a map `method → { params; result }`; the parent calls, the child serves.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { exited, trackChild, terminate, withTimeout } from './proc';

export type ApiShape = Record<string, { params: unknown; result: unknown }>;

interface Request {
  kind: 'req';
  id: number;
  method: string;
  params: unknown;
}

interface Response {
  kind: 'res';
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

function isResponse(m: unknown): m is Response {
  return typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'res';
}

function isRequest(m: unknown): m is Request {
  return typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'req';
}

export type Handlers<A extends ApiShape> = { [K in keyof A]: (params: A[K]['params']) => Promise<A[K]['result']> | A[K]['result'] };

/** Child side: answers requests; exits when the parent goes away. */
export function serveIpc<A extends ApiShape>(handlers: Handlers<A>): void {
  if (!process.send) throw new Error('serveIpc: this process has no IPC channel (start it with fork)');
  const send = process.send.bind(process);
  process.on('message', (msg: unknown) => {
    if (!isRequest(msg)) return;
    const handler = (handlers as Record<string, (p: unknown) => unknown>)[msg.method];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown method ${msg.method}`);
        return handler(msg.params);
      })
      .then(
        (result) => send({ kind: 'res', id: msg.id, ok: true, result } satisfies Response),
        (err: unknown) =>
          send({ kind: 'res', id: msg.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies Response),
      );
  });
  // The parent died or closed the channel: nothing left to serve.
  process.on('disconnect', () => process.exit(0));
}

/** Parent side: a forked child serving `A`. */
export class IpcChild<A extends ApiShape> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exitError: Error | undefined;
  stderrTail = '';

  private constructor(readonly child: ChildProcess) {
    child.on('message', (msg: unknown) => {
      if (!isResponse(msg)) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error ?? 'child error'));
    });
    child.on('exit', (code, signal) => {
      this.exitError = new Error(`child ${child.pid} exited (code ${code}, signal ${signal}); stderr: ${this.stderrTail.slice(-2000)}`);
      for (const p of this.pending.values()) p.reject(this.exitError);
      this.pending.clear();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-8000);
    });
  }

  /** `niceness`: run the child under nice(1), every thread of it (a load generator must not take the CPU from what it measures). */
  static fork<A extends ApiShape>(modulePath: string, opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; niceness?: number } = {}): IpcChild<A> {
    const nodeArgs = opts.nodeArgs ?? [];
    const child = fork(modulePath, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      ...(opts.niceness
        ? { execPath: 'nice', execArgv: ['-n', String(opts.niceness), process.execPath, ...nodeArgs] }
        : { execArgv: nodeArgs }),
      env: { ...process.env, ...opts.env },
    });
    trackChild(child);
    return new IpcChild<A>(child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  call<K extends keyof A & string>(method: K, params: A[K]['params'], timeoutMs = 60_000): Promise<A[K]['result']> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    const p = new Promise<A[K]['result']>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ kind: 'req', id, method, params } satisfies Request);
    });
    return withTimeout(p, timeoutMs, `${method} on child ${this.pid}`).finally(() => this.pending.delete(id));
  }

  /** Closes the channel (the child exits on disconnect), then makes sure it is gone. */
  async close(graceMs = 5_000): Promise<void> {
    const gone = exited(this.child);
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) void terminate(this.child, 2_000);
    }, graceMs);
    await gone;
    clearTimeout(timer);
  }
}
