/**
 * Both gRPC ports fuzzed over real sockets while a canary keeps proving (see ./harness.ts). Small and
 * seeded here; `node dist/test/fuzz/run.js --iterations N --seed S` runs it longer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './harness';

const ITERATIONS = Number(process.env.WIRE_FUZZ_ITERATIONS ?? 500);
const SEED = Number(process.env.WIRE_FUZZ_SEED ?? 7);

test(`every client RPC and worker message kind, random and mutated (${ITERATIONS} per RPC, seed ${SEED}): statuses, no state change, canary completes`, async (t) => {
  const report = await runFuzz({ iterations: ITERATIONS, seed: SEED });
  for (const [what, outcomes] of Object.entries(report.counts).sort()) {
    t.diagnostic(`${what}: ${Object.entries(outcomes).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  t.diagnostic(`canary jobs completed: ${report.canaryCompleted}`);
  assert.deepEqual(report.violations, []);
  assert.ok(report.canaryCompleted >= 2);
});
