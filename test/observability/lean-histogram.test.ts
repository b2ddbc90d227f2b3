import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { LeanHistogram } from '../../src/main/observability/lean-histogram';

const BUCKETS = [0.001, 0.005, 0.1, 0.5, 1, 2, 5, 7200];

/** Observations on bucket bounds, between them, at zero and past the last bound. */
function observations(): Array<[string, string, number]> {
  const out: Array<[string, string, number]> = [];
  const values = [0, 0.001, 0.0011, 0.005, 0.09, 0.1, 0.75, 1, 2, 4.2, 5, 7200, 7200.5, 1e9];
  values.forEach((v, i) => out.push([i % 2 === 0 ? 'prove' : 'setup', i % 3 === 0 ? 'success' : 'failure', v]));
  return out;
}

test('LeanHistogram renders exactly what prom-client Histogram renders for the same observations', async () => {
  const reference = new Registry();
  const lean = new Registry();
  const ref = new Histogram({ name: 'h_seconds', help: 'help "quoted" \\ text', labelNames: ['kind', 'outcome'], buckets: BUCKETS, registers: [reference] });
  const mine = new LeanHistogram<'kind' | 'outcome'>('h_seconds', 'help "quoted" \\ text', ['kind', 'outcome'], BUCKETS, lean);
  ref.zero({ kind: 'wrap', outcome: 'cancelled' });
  mine.zero({ kind: 'wrap', outcome: 'cancelled' });
  for (const [kind, outcome, v] of observations()) {
    ref.labels(kind, outcome).observe(v);
    mine.labels(kind, outcome).observe(v);
  }
  const expected = await reference.metrics();
  assert.equal(await lean.metrics(), expected);
  assert.match(expected, /h_seconds_bucket\{le="0.005",kind="prove",outcome="success"\} 1\n/);
  // The JSON view, less prom-client's exemplar slots (always null here) and render-only fields.
  const json = async (r: Registry) =>
    (await r.getMetricsAsJSON()).map((m) => m.values.map((v) => ({ ...v.labels, metricName: (v as { metricName?: string }).metricName, value: v.value })));
  assert.deepEqual(await json(lean), await json(reference));

  reference.resetMetrics();
  lean.resetMetrics();
  // prom-client drops its series on reset; ours keep their (zeroed) series, which is what a
  // dashboard wants, so only the counts are compared.
  assert.match(await lean.metrics(), /h_seconds_count\{kind="prove",outcome="success"\} 0\n/);
});

test('LeanHistogram refuses a wrong number of label values instead of mislabelling a series', () => {
  const h = new LeanHistogram<'phase'>('p_seconds', 'help', ['phase'], BUCKETS, new Registry());
  assert.throws(() => h.labels('prove', 'extra'), /expected 1 label values, got 2/);
  assert.throws(() => h.labels(), /expected 1 label values, got 0/);
});
