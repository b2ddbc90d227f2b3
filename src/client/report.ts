/**
 * What `zisk-prove-client` prints: for people, one line per step (on a terminal the live phase is one
 * line redrawn in place, with its elapsed time); for scripts (`--json`), one JSON object per line on
 * stdout, the last one the outcome. Problems go to stderr either way.
 */
import type { JobEventMsg, JobFailureMsg, JobKindResponseMsg, TimestampMsg, WaitResultMsg } from './api-client';

export const PHASE_NAMES: Record<number, string> = { 1: 'contributions', 2: 'prove', 3: 'aggregate' };

export function failureText(f: JobFailureMsg | undefined): string {
  if (!f) return 'failed (no reason given)';
  if (f.timeout) {
    const phase = f.timeout.phase !== undefined ? ` in phase ${PHASE_NAMES[f.timeout.phase] ?? f.timeout.phase}` : '';
    const limit = f.timeout.limit ? ` (limit ${Number(f.timeout.limit.seconds)} s)` : '';
    return `timed out${phase}${limit}`;
  }
  if (f.input) return `input: ${f.input.reason}`;
  if (f.execution) return `execution: ${f.execution.reason}`;
  if (f.internal) return `internal error (trace id ${f.internal.trace_id})`;
  if (f.kind === 'cancelled') return 'cancelled';
  return 'failed';
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export class Reporter {
  private readonly started = new Map<string, number>();
  private readonly firstEventAt = new Map<string, number>();
  private readonly endedAt = new Map<string, number>();
  private phaseStartedAt = 0;
  private liveLine: { text: () => string; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly err: NodeJS.WritableStream,
    private readonly json: boolean,
  ) {}

  registered(hashId: string, file: string, bytes: number): void {
    if (this.json) this.emit({ registered: file, bytes, hash_id: hashId });
    else this.line(`registered ${file} (${bytes} bytes): hash_id ${hashId}`);
  }

  submitted(what: string, jobId: string): void {
    this.started.set(jobId, Date.now());
    if (this.json) this.emit({ submitted: what, job_id: jobId });
    else this.line(`${what} job ${jobId} submitted`);
  }

  following(jobId: string): void {
    this.started.set(jobId, Date.now());
  }

  event(jobId: string, e: JobEventMsg): void {
    // Elapsed by the coordinator's clock from the job's first event: a watch that starts late replays
    // the history with its real spacing.
    const at = eventTime(e) ?? Date.now();
    if (!this.firstEventAt.has(jobId)) this.firstEventAt.set(jobId, at);
    const elapsed = at - (this.firstEventAt.get(jobId) ?? at);
    const t0 = this.started.get(jobId) ?? Date.now();
    if (this.json) {
      const ev: Record<string, unknown> = { event: e.event, job_id: jobId, elapsed_ms: elapsed };
      if (e.progress) ev.phase = PHASE_NAMES[e.progress.phase] ?? e.progress.phase;
      if (e.failed) ev.reason = failureText(e.failed.failure);
      this.emit(ev);
      return;
    }
    // The outcome is printed by terminal(), with the result.
    if (e.event === 'completed' || e.event === 'failed' || e.event === 'cancelled') {
      this.endedAt.set(jobId, at);
      return this.endLive();
    }
    let what: string = e.event.replace(/_/g, ' ');
    if (e.event === 'progress' && e.progress) {
      this.endLive();
      this.phaseStartedAt = Date.now();
      what = `phase ${PHASE_NAMES[e.progress.phase] ?? e.progress.phase}`;
      const phase = what;
      if (this.out.isTTY) {
        this.live(() => `  ${phase}… ${seconds(Date.now() - this.phaseStartedAt)} (job ${seconds(Date.now() - t0)})`);
        return;
      }
    }
    this.line(`  +${seconds(elapsed)}  ${what}`);
  }

  terminal(r: WaitResultMsg): void {
    this.endLive();
    // From its first event to its last by the coordinator's clock when seen, else as waited here.
    const first = this.firstEventAt.get(r.job_id);
    const end = this.endedAt.get(r.job_id);
    const t0 = this.started.get(r.job_id);
    const took = first !== undefined && end !== undefined ? seconds(end - first) : t0 !== undefined ? seconds(Date.now() - t0) : undefined;
    const status = r.job_status.status;
    if (this.json) {
      const o: Record<string, unknown> = { job_id: r.job_id, status, ...summaryOf(r.result) };
      if (status === 'failed') o.reason = failureText(r.job_status.failed?.failure);
      this.emit(o);
      return;
    }
    if (status === 'failed') {
      this.err.write(`job ${r.job_id} failed${took ? ` after ${took}` : ''}: ${failureText(r.job_status.failed?.failure)}\n`);
      return;
    }
    this.line(`job ${r.job_id} ${status}${took ? ` in ${took}` : ''}${detailsOf(r.result)}`);
  }

  status(r: WaitResultMsg): void {
    const s = r.job_status;
    if (this.json) {
      const o: Record<string, unknown> = { job_id: r.job_id, status: s.status, ...summaryOf(r.result) };
      if (s.running?.phase !== undefined) o.phase = PHASE_NAMES[s.running.phase] ?? s.running.phase;
      if (s.status === 'failed') o.reason = failureText(s.failed?.failure);
      this.emit(o);
      return;
    }
    const phase = s.running?.phase !== undefined ? ` (phase ${PHASE_NAMES[s.running.phase] ?? s.running.phase})` : '';
    const reason = s.status === 'failed' ? `: ${failureText(s.failed?.failure)}` : '';
    this.line(`job ${r.job_id}: ${s.status.replace(/_/g, ' ')}${phase}${reason}${detailsOf(r.result)}`);
  }

  cancelled(jobId: string, cancelled: boolean): void {
    if (this.json) this.emit({ job_id: jobId, cancelled });
    else this.line(cancelled ? `job ${jobId} cancelled` : `job ${jobId} had already ended: nothing to cancel`);
  }

  saved(what: string, file: string, bytes: number): void {
    if (this.json) this.emit({ saved: what, file, bytes });
    else this.line(`${what} saved to ${file} (${bytes} bytes)`);
  }

  note(text: string): void {
    this.endLive();
    this.err.write(`${text}\n`);
  }

  private emit(o: Record<string, unknown>): void {
    this.out.write(`${JSON.stringify(o)}\n`);
  }

  private line(text: string): void {
    this.endLive();
    this.out.write(`${text}\n`);
  }

  private live(text: () => string): void {
    const draw = (): boolean => this.out.write(`\r\x1b[2K${text()}`);
    draw();
    const timer = setInterval(draw, 100);
    timer.unref();
    this.liveLine = { text, timer };
  }

  private endLive(): void {
    if (!this.liveLine) return;
    clearInterval(this.liveLine.timer);
    this.out.write(`\r\x1b[2K${this.liveLine.text()}\n`);
    this.liveLine = undefined;
  }
}

function detailsOf(r: JobKindResponseMsg | undefined): string {
  const details = Object.entries(summaryOf(r))
    .map(([k, v]) => `${k.replace(/_/g, ' ')} ${String(v)}`)
    .join(', ');
  return details ? `: ${details}` : '';
}

function eventTime(e: JobEventMsg): number | undefined {
  const ts = (e as unknown as Record<string, { timestamp?: TimestampMsg } | undefined>)[e.event]?.timestamp;
  return ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : undefined;
}

/** The figures worth a line: sizes and ids, not the bytes themselves. */
function summaryOf(r: JobKindResponseMsg | undefined): Record<string, string | number> {
  if (!r) return {};
  if (r.setup) return { vk: Buffer.from(r.setup.vk).toString('hex').slice(0, 16) + '…' };
  const proof = r.prove?.proof ?? r.wrap?.proof;
  const out: Record<string, string | number> = {};
  if (proof) {
    out.proof_id = proof.proof_id;
    out.proof_bytes = Buffer.from(proof.data).length;
  }
  const stats = r.prove?.stats ?? r.execute?.stats;
  if (stats) out.steps = stats.steps;
  if (r.execute) out.public_output_bytes = Buffer.from(r.execute.public_outputs).length;
  return out;
}
