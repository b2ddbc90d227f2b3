/**
 * The wire fuzz at any size: `node dist/test/fuzz/run.js --iterations N --seed S [--huge-ids]`.
 * Prints the counts and exits 1 when an invariant broke.
 */
import { runFuzz } from './harness';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`--${name} must be a non-negative integer`);
  return v;
}

async function main(): Promise<void> {
  const iterations = arg('iterations', 500);
  const seed = arg('seed', Date.now() % 2 ** 31);
  console.log(`wire fuzz: ${iterations} inputs per RPC, seed ${seed}`);
  const started = Date.now();
  const report = await runFuzz({ iterations, seed, hugeIds: process.argv.includes('--huge-ids') });
  for (const [what, outcomes] of Object.entries(report.counts).sort()) {
    console.log(`${what}: ${Object.entries(outcomes).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  console.log(`canary jobs completed: ${report.canaryCompleted}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const v of report.violations) console.log(`VIOLATION: ${v}`);
  process.exitCode = report.violations.length > 0 ? 1 : 0;
}

// `node --test dist/test/` loads every file under test/; only a direct run fuzzes.
if (require.main === module && process.env.NODE_TEST_CONTEXT === undefined) void main();
