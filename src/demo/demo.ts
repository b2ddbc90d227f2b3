/**
 * `npm run demo`: the whole system in one command. Starts the real coordinator binary on free
 * loopback ports, a few simulated workers, registers a small program, runs setup, a prove job (its
 * phases printed as they happen) and an execute job, prints the results, then stops cleanly.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoordinatorApiClient, type JobEventMsg } from '../client/api-client';
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
  let client: CoordinatorApiClient | undefined;
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

    client = new CoordinatorApiClient(`127.0.0.1:${api}`, 10_000);
    const c = client;

    const elf = Buffer.concat([Buffer.from('\x7fELF demo guest program '), Buffer.alloc(8192, 0x5a)]);
    const hashId = await c.register(elf);
    say(`▶ registered a ${elf.length}-byte program: hash_id ${hashId} (BLAKE3)`);

    const setup = await c.submit({ setup: { hash_id: hashId, with_hints: false, program_name: 'demo' } });
    const setupResult = await c.waitTerminal(setup);
    const vk = setupResult.result?.setup?.vk;
    say(`▶ setup job ${setup}: ${setupResult.job_status.status}, every worker agreed on VK ${vk ? Buffer.from(vk).toString('hex').slice(0, 16) : '?'}…`);

    const prove = await c.submit({ prove: { hash_id: hashId, input: { inline: { data: Buffer.alloc(64, 7) } }, proof_dest: 1 } });
    say(`▶ prove job ${prove} on ${WORKERS} workers:`);
    const t0 = Date.now();
    const watching = c
      .watch(prove, (e: JobEventMsg) => {
        const what = e.event === 'progress' ? `progress → ${PHASE_NAMES[e.progress?.phase ?? 0] ?? e.progress?.phase}` : e.event;
        say(`    +${String(Date.now() - t0).padStart(5)} ms  ${what}`);
      })
      .catch(() => undefined);
    const proveResult = await c.waitTerminal(prove);
    await watching;
    const proof = proveResult.result?.prove;
    if (proof) {
      say(`  result: proof_id ${proof.proof.proof_id}, ${Buffer.from(proof.proof.data).length} proof bytes, ${Buffer.from(proof.proof.public_inputs).length} bytes of public inputs, ${proof.stats?.steps ?? '?'} steps`);
    } else say(`  result: ${proveResult.job_status.status} ${JSON.stringify(proveResult.job_status)}`);

    const exec = await c.submit({ execute: { hash_id: hashId, input: { inline: { data: Buffer.alloc(16, 3) } } } });
    const execResult = await c.waitTerminal(exec);
    const out = execResult.result?.execute;
    say(`▶ execute job ${exec}: ${execResult.job_status.status}${out ? `, ${out.stats?.steps ?? '?'} steps, ${Buffer.from(out.public_outputs).length} bytes of public outputs` : ''}`);

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
