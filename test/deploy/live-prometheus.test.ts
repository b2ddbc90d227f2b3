/**
 * A real Prometheus (Debian's, on loopback, scraping every second, with deploy/prometheus/rules
 * loaded) scrapes the real coordinator binary while simulated workers run a setup, two prove jobs,
 * an execute and a wrap job. Through Prometheus' HTTP API: the target is up and the series say what
 * the run did; every alert rule loads and evaluates; every PromQL expression of the Grafana dashboard
 * (deploy/grafana) and of upstream's dashboard parses, and every metric they and the rules name is
 * one the coordinator exports; a worker that leaves is a disconnect; `promtool check metrics` finds
 * nothing but the names
 * docs/metrics.md (Lint) lists. Every wait polls for the value that proves it, bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimFleet } from '../../src/sim/fleet';
import { FAST_SIM } from '../helpers/cluster';
import { freePort, spawnCoordinator, stopCoordinator } from '../helpers/spawn-coordinator';
import { eventually, promtool, REPO_ROOT, startPrometheus, type PrometheusServer } from '../helpers/prometheus';
import { apiClient, fakeElf, inline, register, submit, waitTerminal } from '../api/helpers';

const LOOPBACK = { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' };
const WORKERS = 3;

/**
 * `promtool check metrics` findings that stay, by metric name (docs/metrics.md, Lint): names kept
 * from upstream so its dashboards work, and prom-client's Node default metrics.
 */
const ACCEPTED_LINT: ReadonlyMap<string, RegExp> = new Map([
  ['coordinator_registered_programs_total', /^non-counter metrics should not have "_total" suffix$/],
  ['nodejs_active_handles_total', /^non-counter metrics should not have "_total" suffix$/],
  ['nodejs_active_requests_total', /^non-counter metrics should not have "_total" suffix$/],
  ['nodejs_active_resources_total', /^non-counter metrics should not have "_total" suffix$/],
]);

/** Upstream's dashboard panels (their PromQL, as upstream ships it) and what each must show after this run. */
const UPSTREAM_PANELS: ReadonlyArray<{ expr: string; now?: string; want?: number }> = [
  { expr: 'up{job="zisk-coordinator"}', want: 1 },
  { expr: 'coordinator_active_jobs', want: 0 },
  { expr: 'coordinator_workers_connected', want: WORKERS },
  // "Jobs in last 5m" counts proofs; the same count without the window, which a short run cannot fill:
  { expr: 'sum(increase(coordinator_jobs_total[5m]))', now: 'sum(coordinator_jobs_total)', want: 2 },
  { expr: 'sum by (outcome) (rate(coordinator_jobs_total[1m]))', now: 'sum(coordinator_jobs_total{outcome="success"})', want: 2 },
  {
    expr: 'sum(rate(coordinator_jobs_total{outcome="failure"}[5m])) / clamp_min(sum(rate(coordinator_jobs_total[5m])), 1e-9)',
    now: 'sum(coordinator_jobs_total{outcome="failure"})',
    want: 0,
  },
  {
    expr: 'histogram_quantile(0.5, sum by (le) (rate(coordinator_job_duration_seconds_bucket{outcome="success"}[5m])))',
    now: 'sum(coordinator_job_duration_seconds_count{outcome="success"})',
    want: 2,
  },
  { expr: 'sum by (method) (rate(coordinator_requests_total[1m]))', now: 'sum(coordinator_requests_total{method="JobRequest"})', want: 5 },
  {
    expr: 'sum by (worker_id) (rate(coordinator_worker_jobs_total{outcome="success"}[1m]))',
    now: 'count(coordinator_worker_jobs_total{outcome="success"} > 0) > 0',
  },
];

/** Metric names a PromQL expression selects (not functions, keywords, labels or numbers). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(^|[^a-zA-Z_:])\d+(\.\d+)?(e[+-]?\d+)?/gi, '$1 ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))/g)) {
    if (m[1] === '(') continue;
    if (['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan'].includes(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

interface DashboardPanel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: DashboardPanel[];
}

/** Every expression of a Grafana dashboard, with Grafana's variables replaced by what they stand for. */
export function dashboardExpressions(json: string): Array<{ where: string; expr: string }> {
  const dash = JSON.parse(json) as { panels: DashboardPanel[]; templating?: { list: Array<{ name: string; definition?: string }> } };
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: DashboardPanel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    // label_values(<selector>, <label>) is Grafana's; the selector in it is PromQL.
    const m = /^label_values\((.*),\s*\w+\)$/.exec(v.definition ?? '');
    if (m) out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out.map(({ where, expr }) => ({
    where,
    expr: expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\{?instance\}?/g, '.*'),
  }));
}

async function valueOf(prom: PrometheusServer, expr: string): Promise<number | undefined> {
  const r = await prom.query(expr);
  return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
}

test('a real Prometheus scraping a real coordinator: series, rules, dashboards and lint', { timeout: 60_000 }, async (t) => {
  const ports = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
  const c = await spawnCoordinator({
    args: ['--api-port', String(ports.api), '--cluster-port', String(ports.cluster), '--metrics-port', String(ports.metrics)],
    env: LOOPBACK,
  });
  t.after(() => stopCoordinator(c));
  const prom = await startPrometheus([`127.0.0.1:${ports.metrics}`]);
  t.after(() => prom.stop());
  const fleet = new SimFleet({ coordinator: `127.0.0.1:${ports.cluster}`, workers: WORKERS, ...FAST_SIM }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${ports.api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(10_000);

  const hashId = await register(client, fakeElf('prometheus'));
  const jobs = [await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'prometheus' } })];
  assert.equal((await waitTerminal(client, jobs[0]!)).job_status.status, 'completed');
  jobs.push(await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1 } }));
  jobs.push(await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, 2)), proof_dest: 1 } }));
  jobs.push(await submit(client, { execute: { hash_id: hashId, input: inline(Buffer.alloc(8)) } }));
  jobs.push(
    await submit(client, {
      wrap: { proof: { proof_id: '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1', proof_kind: 1, data: Buffer.from('a proof'), hash_id: hashId }, proof_dest: 2 },
    }),
  );
  for (const id of jobs) assert.equal((await waitTerminal(client, id)).job_status.status, 'completed', id);

  // What the run implies, as Prometheus has it once it has scraped past the last job.
  const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const expected: Array<[string, number]> = [
    ['up{job="zisk-coordinator"}', 1],
    ['coordinator_workers_connected', WORKERS],
    [`coordinator_build_info{version="${version}"}`, 1],
    ['sum(coordinator_jobs_submitted_total)', 5],
    ['sum(coordinator_jobs_finished_total{outcome="success"})', 5],
    ['sum(coordinator_jobs_finished_total{outcome!="success"})', 0],
    ['coordinator_jobs_finished_total{kind="wrap",outcome="success"}', 1],
    ['coordinator_jobs_total{kind="prove",outcome="success"}', 2],
    ['coordinator_phase_duration_seconds_count{phase="aggregate"}', 2],
    ['sum(coordinator_running_jobs)', 0],
    ['coordinator_queue_depth', 0],
    ['sum(coordinator_worker_registrations_total)', WORKERS],
  ];
  for (const [expr, want] of expected) {
    await eventually(`${expr} == ${want}`, 15_000, async () => ((await valueOf(prom, expr)) === want ? true : undefined));
  }

  // Every rule loads and evaluates without error.
  const rulesText = fs.readFileSync(path.join(REPO_ROOT, 'deploy/prometheus/rules/zisk-coordinator.yml'), 'utf8');
  const alertCount = [...rulesText.matchAll(/^\s*- alert:/gm)].length;
  type Rule = { name: string; query: string; health: string; lastError?: string; lastEvaluation: string };
  const rules = await eventually('every rule evaluated', 15_000, async () => {
    const data = await prom.get<{ groups: Array<{ rules: Rule[] }> }>('/api/v1/rules');
    const all = data.groups.flatMap((g) => g.rules);
    return all.length === alertCount && all.every((r) => r.health !== 'unknown') ? all : undefined;
  });
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  // Nothing fires on a healthy run (ZiskCoordinatorDown may be pending from before the first scrape).
  const alerts = await prom.get<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>('/api/v1/alerts');
  assert.deepEqual(
    alerts.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname),
    [],
  );

  // Exported: every family the coordinator declares (an open label set such as ignored-message
  // reasons has no sample until it happens), and what Prometheus adds (`up`).
  const body = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
  const exported = new Set(await prom.get<string[]>('/api/v1/label/__name__/values'));
  for (const [, name, type] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name!);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name! + suffix);
  }
  const dashboard = dashboardExpressions(fs.readFileSync(path.join(REPO_ROOT, 'deploy/grafana/dashboards/zisk-coordinator.json'), 'utf8'));
  assert.ok(dashboard.length >= 30, `dashboard expressions: ${dashboard.length}`);
  const checked: Array<{ where: string; expr: string }> = [
    ...dashboard,
    ...rules.map((r) => ({ where: `rule ${r.name}`, expr: r.query })),
    ...UPSTREAM_PANELS.map((p) => ({ where: 'upstream dashboard', expr: p.expr })),
  ];
  const named = new Set<string>();
  for (const { where, expr } of checked) {
    await prom.query(expr).catch((err: Error) => assert.fail(`${where}: ${expr}: ${err.message}`));
    for (const name of metricNames(expr)) {
      named.add(name);
      assert.ok(exported.has(name), `${where} names ${name}, which the coordinator does not export`);
    }
  }
  for (const name of ['coordinator_state_disk_free_bytes', 'coordinator_jobs_finished_total', 'process_resident_memory_bytes', 'up']) {
    assert.ok(named.has(name), `the name extraction found ${name}`);
  }

  // Upstream's dashboard shows what it showed against upstream.
  for (const p of UPSTREAM_PANELS) {
    const expr = p.now ?? p.expr;
    if (p.want === undefined) assert.ok((await prom.query(expr)).length > 0, expr);
    else assert.equal(await valueOf(prom, expr), p.want, expr);
  }

  // A worker leaves: its stream's end is a disconnect, and the fleet shrinks.
  await fleet.workers[0]!.stop();
  for (const [expr, want] of [
    ['coordinator_worker_disconnects_total', 1],
    ['coordinator_workers_connected', WORKERS - 1],
  ] as const) {
    await eventually(`${expr} == ${want}`, 15_000, async () => ((await valueOf(prom, expr)) === want ? true : undefined));
  }

  // promtool check metrics on the coordinator's own exposition.
  const lint = await promtool(['check', 'metrics'], body);
  const findings = (lint.stdout + lint.stderr)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const unexpected = findings.filter((line) => {
    const [name, ...rest] = line.split(' ');
    const accepted = ACCEPTED_LINT.get(name!);
    return !accepted?.test(rest.join(' '));
  });
  assert.deepEqual(unexpected, [], 'promtool check metrics');
  // The list holds nothing promtool no longer reports.
  assert.deepEqual(findings.map((l) => l.split(' ')[0]).sort(), [...ACCEPTED_LINT.keys()].sort());
});
