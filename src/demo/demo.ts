/**
 * `npm run demo`: the whole system in one command. Starts the real coordinator binary on free
 * loopback ports, a few simulated workers, registers a small program, runs setup, a prove job (its
 * phases printed as they happen) and an execute job, prints the results, then stops cleanly.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CLIENT_API_PROTO, loadProto } from '../shared/proto';
import { SimFleet } from '../sim/fleet';
import { freePort } from '../shared/free-port';

const WORKERS = 3;
const PHASE_NAMES: Record<number, string> = { 1: 'CONTRIBUTIONS', 2: 'PROVE', 3: 'AGGREGATE' };

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function waitHealthy(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`coordinator not healthy at ${url} within ${ms} ms`);
}

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
interface ApiClient extends grpc.Client {
  RegisterGuestProgram(req: object, cb: Callback<{ hash_id: string }>): void;
  JobRequest(req: object, cb: Callback<{ job_id: string }>): void;
  WaitJobResult(req: object, opts: grpc.CallOptions, cb: Callback<WaitResponse>): void;
  WatchJob(req: object): grpc.ClientReadableStream<JobEvent>;
}
interface WaitResponse {
  job_status: { status: string; failed?: { failure: object } };
  result?: Record<string, unknown>;
}
interface JobEvent {
  event: string;
  progress?: { phase: number };
}

function call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

async function waitTerminal(client: ApiClient, jobId: string): Promise<WaitResponse> {
  for (;;) {
    const r = await call<WaitResponse>((cb) =>
      client.WaitJobResult({ job_id: jobId, timeout_seconds: 5 }, { deadline: Date.now() + 10_000 }, cb),
    );
    if (['completed', 'failed', 'cancelled'].includes(r.job_status.status)) return r;
  }
}

async function main(): Promise<void> {
  const [api, cluster, metrics] = [await freePort(), await freePort(), await freePort()];
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-demo-'));
  const bin = path.resolve(__dirname, '../../../bin/zisk-coordinator');
  const child = spawn(
    process.execPath,
    [bin, '--api-port', String(api), '--cluster-port', String(cluster), '--metrics-port', String(metrics), '--log-level', 'warn'],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
      // Isolated from the user's config files and cache: the demo must not depend on (or touch) them.
      cwd: home,
      env: {
        ...process.env,
        XDG_CONFIG_HOME: path.join(home, '.config'),
        ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
        ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
        ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(home, 'cache'),
      },
    },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let fleet: SimFleet | undefined;
  let client: ApiClient | undefined;
  try {
    await waitHealthy(`http://127.0.0.1:${metrics}/health`, 10_000);
    say(`▶ coordinator running (pid ${child.pid}): client API 127.0.0.1:${api}, workers 127.0.0.1:${cluster}, metrics http://127.0.0.1:${metrics}/metrics`);

    fleet = new SimFleet({
      coordinator: `127.0.0.1:${cluster}`,
      workers: WORKERS,
      prefix: 'demo-worker',
      computeUnits: 4,
      setupDelayMs: 200,
      contributionDelayMs: 400,
      proveDelayMs: 400,
      aggregateDelayMs: 200,
      executeDelayMs: 300,
    }).start();
    await fleet.waitAllRegistered(10_000);
    say(`▶ ${WORKERS} simulated workers registered (${fleet.workers.map((w) => w.id).join(', ')})`);

    const pkg = grpc.loadPackageDefinition(loadProto(CLIENT_API_PROTO)) as unknown as {
      zisk: { coordinator: { v1: { ZiskCoordinatorApi: grpc.ServiceClientConstructor } } };
    };
    client = new pkg.zisk.coordinator.v1.ZiskCoordinatorApi(`127.0.0.1:${api}`, grpc.credentials.createInsecure()) as unknown as ApiClient;
    const c = client;

    const elf = Buffer.concat([Buffer.from('\x7fELF demo guest program '), Buffer.alloc(8192, 0x5a)]);
    const { hash_id: hashId } = await call<{ hash_id: string }>((cb) => c.RegisterGuestProgram({ zisk_elf: elf }, cb));
    say(`▶ registered a ${elf.length}-byte program: hash_id ${hashId} (BLAKE3)`);

    const setup = await call<{ job_id: string }>((cb) =>
      c.JobRequest({ job_kind: { setup: { hash_id: hashId, with_hints: false, program_name: 'demo' } } }, cb),
    );
    const setupResult = await waitTerminal(c, setup.job_id);
    const vk = (setupResult.result as { setup?: { vk: Buffer } } | undefined)?.setup?.vk;
    say(`▶ setup job ${setup.job_id}: ${setupResult.job_status.status}, every worker agreed on VK ${vk ? Buffer.from(vk).toString('hex').slice(0, 16) : '?'}…`);

    const prove = await call<{ job_id: string }>((cb) =>
      c.JobRequest({ job_kind: { prove: { hash_id: hashId, input: { inline: { data: Buffer.alloc(64, 7) } }, proof_dest: 1 } } }, cb),
    );
    say(`▶ prove job ${prove.job_id} on ${WORKERS} workers:`);
    const t0 = Date.now();
    const watching = new Promise<void>((resolve) => {
      const stream = c.WatchJob({ job_id: prove.job_id });
      stream.on('data', (e: JobEvent) => {
        const what = e.event === 'progress' ? `progress → ${PHASE_NAMES[e.progress?.phase ?? 0] ?? e.progress?.phase}` : e.event;
        say(`    +${String(Date.now() - t0).padStart(5)} ms  ${what}`);
      });
      stream.on('error', () => resolve());
      stream.on('end', () => resolve());
    });
    const proveResult = await waitTerminal(c, prove.job_id);
    await watching;
    const proof = (proveResult.result as { prove?: { proof: { proof_id: string; data: Buffer; public_inputs: Buffer }; stats: { steps: string } } } | undefined)?.prove;
    if (proof) {
      say(`  result: proof_id ${proof.proof.proof_id}, ${Buffer.from(proof.proof.data).length} proof bytes, ${Buffer.from(proof.proof.public_inputs).length} bytes of public inputs, ${proof.stats.steps} steps`);
    } else say(`  result: ${proveResult.job_status.status} ${JSON.stringify(proveResult.job_status)}`);

    const exec = await call<{ job_id: string }>((cb) =>
      c.JobRequest({ job_kind: { execute: { hash_id: hashId, input: { inline: { data: Buffer.alloc(16, 3) } } } } }, cb),
    );
    const execResult = await waitTerminal(c, exec.job_id);
    const out = (execResult.result as { execute?: { stats: { steps: string }; public_outputs: Buffer } } | undefined)?.execute;
    say(`▶ execute job ${exec.job_id}: ${execResult.job_status.status}${out ? `, ${out.stats.steps} steps, ${Buffer.from(out.public_outputs).length} bytes of public outputs` : ''}`);

    const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
    const jobs = text.split('\n').filter((l) => l.startsWith('coordinator_jobs_finished_total{') && !l.endsWith(' 0'));
    say('▶ metrics:');
    for (const line of jobs) say(`    ${line}`);
  } finally {
    client?.close();
    await fleet?.stop();
    child.kill('SIGTERM');
    const code = await exited;
    fs.rmSync(home, { recursive: true, force: true });
    say(`▶ coordinator stopped after SIGTERM (exit code ${code})`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
