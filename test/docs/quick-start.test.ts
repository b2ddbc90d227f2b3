/**
 * The README's "first proof" runs as written: its three terminals' commands, taken from the README
 * itself, run verbatim through a shell in a scratch copy of the package (links to its files, so the
 * proof the client saves lands there, not in the repository). Only the ports differ, through the
 * environment variables each program reads, so the test can run beside anything on 7000/50051/9090.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, spawnCoordinator, tempDir } from '../helpers/spawn-coordinator';
import { repoRoot } from '../helpers/run-cli';

function quickStartBlock(readme: string, terminal: number): string[] {
  const m = new RegExp(`<!-- quick-start:terminal-${terminal} -->\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``).exec(readme);
  assert.ok(m, `README has the quick start's terminal ${terminal}`);
  return m[1].split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

function run(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test("the README's first proof: coordinator, simulated workers, setup and prove, as written", { timeout: 120_000 }, async (t) => {
  const root = repoRoot();
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const [coordinatorCmd, simCmd, clientCmds] = [quickStartBlock(readme, 1), quickStartBlock(readme, 2), quickStartBlock(readme, 3)];
  assert.equal(coordinatorCmd.length, 1);
  assert.equal(simCmd.length, 1);

  const dir = tempDir('zisk-quickstart-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pkg = path.join(dir, 'pkg');
  fs.mkdirSync(pkg);
  for (const entry of ['package.json', 'bin', 'dist', 'node_modules', 'proto', 'examples']) fs.symlinkSync(path.join(root, entry), path.join(pkg, entry));

  const [api, cluster, metrics] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
    HOME: dir,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    ZISK_COORDINATOR_API_PORT: String(api),
    ZISK_COORDINATOR_CLUSTER_PORT: String(cluster),
    ZISK_COORDINATOR_METRICS_PORT: String(metrics),
    ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
    ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
    ZISK_SIM_COORDINATOR: `127.0.0.1:${cluster}`,
    ZISK_COORDINATOR_URL: `127.0.0.1:${api}`,
  };

  // Terminal 1.
  const c = await spawnCoordinator({ command: ['sh', '-c', coordinatorCmd[0]], cwd: pkg, env: { ...env, ZISK_COORDINATOR_LOGGING_FORMAT: 'json' }, timeoutMs: 30_000, detached: true });
  // The whole group (shell, npm, coordinator), as Ctrl-C in that terminal would.
  t.after(async () => {
    if (c.child.exitCode !== null || c.child.pid === undefined) return;
    process.kill(-c.child.pid, 'SIGINT');
    await c.exited;
  });

  // Terminal 2: its own process group, so the whole of `npm run sim` can be stopped.
  const sim = spawn('sh', ['-c', simCmd[0]], { cwd: pkg, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let simOut = '';
  sim.stdout.setEncoding('utf8').on('data', (s: string) => (simOut += s));
  t.after(() => {
    if (sim.exitCode === null && sim.pid !== undefined) process.kill(-sim.pid, 'SIGTERM');
  });
  const workers = Number(/--workers (\d+)/.exec(simCmd[0])?.[1] ?? 1);
  await c.waitForLine(() => c.lines.filter((l) => typeof l.msg === 'string' && /^worker \S+ registered/.test(l.msg)).length >= workers, 30_000);

  // Terminal 3, one command after the other.
  let last = { code: null as number | null, stdout: '', stderr: '' };
  for (const cmd of clientCmds) {
    last = await run(cmd, pkg, env);
    assert.equal(last.code, 0, `${cmd}\n${last.stdout}\n${last.stderr}\nsim: ${simOut}`);
  }
  assert.match(last.stdout, /^job [0-9a-f-]{36} completed in [0-9.]+ s: proof id [0-9a-f-]{36}, proof bytes \d+/m);
  const proofFile = /-o (\S+)/.exec(clientCmds[clientCmds.length - 1])?.[1];
  assert.ok(proofFile && fs.statSync(path.join(pkg, proofFile)).size > 0, 'the proof is saved where the README says');
});
