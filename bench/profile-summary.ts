/**
 * `node dist/bench/profile-summary.js <file.cpuprofile | dir> [--top N]`: self time per function and
 * per package/module of V8 CPU profiles (as written by `--cpu-prof`), to read `npm run bench --
 * --cpu-prof` results without a GUI. One section per profile file (the coordinator writes one per
 * thread: main and scheduler).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  gcMs: number;
  byFunction: Array<{ name: string; ms: number }>;
  byModule: Array<{ name: string; ms: number }>;
}

function moduleOf(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return url;
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length).replace(/\.js$/, '');
  return path.basename(url);
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  // Self time from the sample stream (each sample's delta is the time until the next sample).
  const self = new Map<number, number>();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const dt = (deltas[i + 1] ?? 0) / 1000;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    total += ms;
    const f = n.callFrame;
    if (f.functionName === '(idle)') {
      idle += ms;
      continue;
    }
    if (f.functionName === '(garbage collector)') gc += ms;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${moduleOf(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + ms);
    const m = f.url ? moduleOf(f.url) : f.functionName;
    mod.set(m, (mod.get(m) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>): Array<{ name: string; ms: number }> =>
    [...m.entries()]
      .map(([name, ms]) => ({ name, ms }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top);
  return { file, totalMs: total, idleMs: idle, gcMs: gc, byFunction: sorted(fn), byModule: sorted(mod) };
}

export function renderSummary(s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number): string => `${((ms / Math.max(1, busy)) * 100).toFixed(1)}%`;
  const lines = [
    `## ${path.basename(s.file)}: ${(s.totalMs / 1000).toFixed(1)} s sampled, busy ${(busy / 1000).toFixed(1)} s (GC ${pct(s.gcMs)} of busy)`,
    '',
    'Self time by module:',
    ...s.byModule.map((m) => `  ${pct(m.ms).padStart(6)}  ${m.ms.toFixed(0).padStart(7)} ms  ${m.name}`),
    '',
    'Self time by function:',
    ...s.byFunction.map((m) => `  ${pct(m.ms).padStart(6)}  ${m.ms.toFixed(0).padStart(7)} ms  ${m.name}`),
    '',
  ];
  return lines.join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const topIdx = args.indexOf('--top');
  const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
  const targets = args.filter((a, i) => !a.startsWith('--') && (topIdx < 0 || i !== topIdx + 1));
  if (targets.length === 0) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile | dir>… [--top N]\n');
    process.exit(2);
  }
  for (const t of targets) {
    const files = fs.statSync(t).isDirectory()
      ? fs.readdirSync(t).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(t, f))
      : [t];
    for (const f of files.sort()) process.stdout.write(`${renderSummary(summarizeProfile(f, top))}\n`);
  }
}
