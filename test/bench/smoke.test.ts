/**
 * The benchmark suite cannot rot: every scenario runs in smoke mode (tiny sizes, seconds each) through
 * the real runner (`dist/bench/run.js --smoke <scenario>`), against the real coordinator binary and its
 * baseline, and must produce a well-formed `<scenario>.json`. No assertion on speed.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { ResultFile } from '../../bench/lib/report';
import { validateResult } from '../../bench/lib/report';

const RUNNER = path.resolve(__dirname, '../../bench/run.js');
const resultsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-bench-smoke-'));

/**
 * Metrics every scenario must report (in every variant, or per variant by name), so a renamed or
 * dropped figure is noticed.
 */
const EXPECTED: Record<string, { variants: Array<string | undefined>; metrics: string[] | Record<string, string[]> }> = {
  startup: { variants: [undefined], metrics: ['startup_p50', 'sigterm_exit_p50'] },
  recovery: { variants: [undefined], metrics: ['serving_time_p50', 'rss_peak', 'rss_serving'] },
  throughput: { variants: ['thread', 'thread-memory', 'main', 'durability', 'hop'], metrics: ['closed_loop_throughput', 'open_loop_p50', 'open_loop_p99'] },
  channel: { variants: ['port-json', 'sab-nudge', 'sab-waitasync'], metrics: ['cpu_per_round_trip', 'wall_per_round_trip'] },
  barrier: { variants: ['thread', 'main'], metrics: ['barrier_p50', 'barrier_p99'] },
  fanout: { variants: ['pushed', 'inline'], metrics: ['egress', 'rss_growth'] },
  upload: { variants: ['proof-relay', 'final-proof', 'window-probe'], metrics: [] },
  readers: { variants: ['watch', 'wait'], metrics: ['rss_peak_growth', 'rss_after_readers', 'main_loop_max', 'bytes_identical'] },
  wan: { variants: ['relay', 'elf'], metrics: ['throughput', 'gain_over_64KiB_window'] },
  elf: { variants: [undefined], metrics: ['register_throughput', 'main_loop_max'] },
  scale: { variants: ['thread', 'main'], metrics: ['main_loop_p99', 'rss_peak'] },
  storm: {
    variants: ['sigterm', 'sigkill', 'burst'],
    metrics: {
      sigterm: ['all_registered_after_serving', 'rejected', 'stuck_after_10s', 'listen_overflows', 'main_loop_p99'],
      sigkill: ['all_registered_after_serving', 'rejected', 'stuck_after_10s', 'listen_overflows', 'main_loop_p99'],
      burst: ['all_accepted', 'failed', 'listen_overflows'],
    },
  },
  planning: { variants: [undefined], metrics: ['main_loop_p99', 'main_loop_max', 'watch_latency_p50', 'watch_latency_p99', 'scrape_latency_p99'] },
  soak: { variants: [undefined], metrics: ['native_slope', 'heap_slope', 'rss_slope', 'rss_anon_slope', 'rss_file_slope', 'warmup_end', 'rss_end', 'jobs_unaccounted'] },
};

function runScenario(name: string, timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUNNER, '--smoke', '--results-dir', resultsDir, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

after(() => fs.rmSync(resultsDir, { recursive: true, force: true }));

describe('bench smoke: every scenario produces well-formed results', { concurrency: 2 }, () => {
  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(name, { timeout: 90_000 }, async () => {
      const run = await runScenario(name, 80_000);
      assert.equal(run.code, 0, `runner exit code for ${name}; stderr:\n${run.stderr.slice(-3000)}`);
      assert.match(run.stdout, /\| Scenario \| Variant \| Metric \|/, 'Markdown table on stdout');
      const file = JSON.parse(fs.readFileSync(path.join(resultsDir, `${name}.json`), 'utf8')) as ResultFile;
      assert.equal(file.scenario, name);
      assert.equal(file.smoke, true);
      assert.equal(file.error, undefined, `scenario error: ${file.error ?? ''}`);
      assert.ok(file.results.length > 0, 'at least one result');
      for (const r of file.results) {
        assert.deepEqual(validateResult(r), [], `well-formed result ${JSON.stringify(r).slice(0, 500)}`);
        assert.equal(r.scenario, name);
        assert.ok(!r.notes.some((n) => / failed: /.test(n)), `no failed measurement: ${r.notes.join(' | ')}`);
      }
      assert.deepEqual(
        file.results.map((r) => r.variant),
        expected.variants,
        'variants',
      );
      for (const r of file.results) {
        const wanted = Array.isArray(expected.metrics) ? expected.metrics : (expected.metrics[r.variant ?? ''] ?? []);
        for (const m of wanted) {
          const found = r.metrics.find((x) => x.name === m);
          assert.ok(found, `${name}/${r.variant ?? ''}: metric ${m}`);
          assert.equal(typeof found.coordinator, 'number', `${name}/${r.variant ?? ''}/${m}: a measured coordinator figure`);
        }
      }
    });
  }
});
