/** Writes results as JSON (one file per scenario) and renders the Markdown table. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Metric, ScenarioResult } from './types';

export interface ResultFile {
  scenario: string;
  generatedAt: string;
  smoke: boolean;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; platform: string };
  /** Wall time of the scenario, including its baseline. */
  durationMs: number;
  results: ScenarioResult[];
  error?: string;
}

export function machineInfo(): ResultFile['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

export function writeResultFile(dir: string, file: ResultFile): string {
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, `${file.scenario}.json`);
  fs.writeFileSync(p, `${JSON.stringify(file, null, 2)}\n`);
  return p;
}

export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function metCell(m: Metric): string {
  if (m.met === undefined) return '';
  return m.met ? '✅' : '❌';
}

/** One table for every result: scenario, variant, metric, coordinator, baseline, ratio, target, met. */
export function markdownTable(results: readonly ScenarioResult[]): string {
  const rows: string[] = [
    '| Scenario | Variant | Metric | Unit | Coordinator | Baseline | Ratio | Target | Met |',
    '|---|---|---|---|--:|--:|--:|---|:-:|',
  ];
  for (const r of results) {
    for (const m of r.metrics) {
      rows.push(
        `| ${r.scenario} | ${r.variant ?? ''} | ${m.name} | ${m.unit} | ${fmt(m.coordinator)} | ${m.baseline === undefined ? '' : fmt(m.baseline)} | ${
          m.ratio === undefined || m.ratio === null ? '' : `${fmt(m.ratio)}×`
        } | ${m.target ?? ''} | ${metCell(m)} |`,
      );
    }
  }
  return rows.join('\n');
}

export function notesSection(results: readonly ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    if (r.notes.length === 0) continue;
    out.push(`**${r.scenario}${r.variant ? ` (${r.variant})` : ''}**`);
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

/** Structural check used by the smoke test: every result is well formed. */
export function validateResult(r: unknown): string[] {
  const problems: string[] = [];
  const o = r as Partial<ScenarioResult> | null;
  if (typeof o !== 'object' || o === null) return ['result is not an object'];
  if (typeof o.scenario !== 'string' || o.scenario === '') problems.push('scenario missing');
  if (o.variant !== undefined && typeof o.variant !== 'string') problems.push('variant not a string');
  if (!Array.isArray(o.notes) || o.notes.some((n) => typeof n !== 'string')) problems.push('notes not a string[]');
  if (!Array.isArray(o.metrics) || o.metrics.length === 0) {
    problems.push('metrics missing or empty');
    return problems;
  }
  for (const m of o.metrics) {
    const where = `${o.scenario}/${o.variant ?? ''}/${(m as Metric).name}`;
    if (typeof m.name !== 'string' || m.name === '') problems.push(`${where}: name`);
    if (typeof m.unit !== 'string') problems.push(`${where}: unit`);
    if (m.coordinator !== null && typeof m.coordinator !== 'number') problems.push(`${where}: coordinator`);
    if (m.baseline !== undefined && m.baseline !== null && typeof m.baseline !== 'number') problems.push(`${where}: baseline`);
    if (m.ratio !== undefined && m.ratio !== null && typeof m.ratio !== 'number') problems.push(`${where}: ratio`);
    if (m.target !== undefined && typeof m.target !== 'string') problems.push(`${where}: target`);
    if (m.met !== undefined && typeof m.met !== 'boolean') problems.push(`${where}: met`);
    if (m.target !== undefined && m.met === undefined) problems.push(`${where}: target without met`);
  }
  return problems;
}
