/**
 * The soak's slopes start once the coordinator's memory is meant to be flat: retention full (the
 * time-based warm-up) and V8's young generation grown to the cap the launcher's flags give it. Taken
 * earlier, the slope measures that growth (64 MiB in a step minutes into a run) as if it were a leak.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { warmupEnd, YOUNG_SETTLE_MIN, youngGenerationCap } from '../../bench/scenarios/soak';
import { launcherNodeFlags } from '../../bench/lib/proc';

const MiB = 1024 * 1024;

describe('soak warm-up', () => {
  it('reads the young generation cap from the last --max-semi-space-size (both semi-spaces)', () => {
    assert.equal(youngGenerationCap(['--max-semi-space-size=64']), 128 * MiB);
    assert.equal(youngGenerationCap(['--max-semi-space-size=64', '--trace-gc', '--max_semi_space_size=16']), 32 * MiB);
    assert.equal(youngGenerationCap(['--trace-gc']), undefined);
  });

  it("the launcher's own flags give the cap the soak waits for", () => {
    assert.equal(youngGenerationCap(launcherNodeFlags()), 128 * MiB);
  });

  it('ends a settling time after the new space reaches its cap when that is past the time-based warm-up', () => {
    const samples = [0, 1, 2, 3, 4, 5, 6].map((min) => ({ min, newSpace: (min < 4 ? 64 : 128) * MiB }));
    const w = warmupEnd(samples, 2, 128 * MiB);
    assert.equal(w.min, 4 + YOUNG_SETTLE_MIN);
    assert.match(w.why, /cap at 4\.0 min/);
  });

  it('keeps the time-based warm-up when the cap is reached before it', () => {
    const samples = [0, 1, 2, 3].map((min) => ({ min, newSpace: 128 * MiB }));
    assert.equal(warmupEnd(samples, 2 + YOUNG_SETTLE_MIN, 128 * MiB).min, 2 + YOUNG_SETTLE_MIN);
  });

  it('says so when the cap is never reached or unknown, and falls back to the time-based warm-up', () => {
    const samples = [0, 1, 2, 3].map((min) => ({ min, newSpace: min === 2 ? undefined : 64 * MiB }));
    const never = warmupEnd(samples, 2, 128 * MiB);
    assert.equal(never.min, 2);
    assert.match(never.why, /never reached/);
    assert.match(warmupEnd(samples, 2, undefined).why, /no known cap/);
  });
});
