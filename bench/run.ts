/**
 * `npm run bench [-- [--smoke] [--cpu-prof] [--results-dir <dir>] [scenario …]]`
 *
 * Runs the benchmark scenarios (all by default, in a fixed order), each against the coordinator
 * binary and its raw grpc-js baseline in the same run, writes `<results-dir>/<scenario>.json` and
 * `<results-dir>/summary.md`, and prints the Markdown table on stdout (progress goes to stderr).
 * Exit code: 0 when every scenario ran (targets met or not), 1 when a scenario failed to run, 2 on
 * a usage error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { machineInfo, markdownTable, notesSection, writeResultFile, type ResultFile } from './lib/report';
import { repoRoot } from './lib/proc';
import type { Scenario, ScenarioContext, ScenarioResult } from './lib/types';
import { throughput } from './scenarios/throughput';
import { barrier } from './scenarios/barrier';
import { fanout } from './scenarios/fanout';
import { upload } from './scenarios/upload';
import { scale } from './scenarios/scale';
import { planning } from './scenarios/planning';
import { elf } from './scenarios/elf';
import { startup } from './scenarios/startup';
import { wan } from './scenarios/wan';
import { recovery } from './scenarios/recovery';
import { readers } from './scenarios/readers';
import { storm } from './scenarios/storm';
import { soak, SOAK_DEFAULT_MINUTES } from './scenarios/soak';
import { channel } from './scenarios/channel';

export const SCENARIOS: readonly Scenario[] = [startup, recovery, throughput, channel, barrier, fanout, upload, readers, wan, elf, scale, planning, storm, soak];

/** Scenarios `npm run bench` runs when none is named: `soak` is long and runs only when named (or in smoke mode). */
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s.name !== 'soak');

export interface RunOptions {
  smoke: boolean;
  cpuProf: boolean;
  resultsDir: string;
  scenarios: string[];
  coordinatorNodeArgs: string[];
  quiet: boolean;
  soakMinutes: number;
}

const USAGE = `usage: node dist/bench/run.js [--smoke] [--cpu-prof] [--results-dir <dir>] [--coordinator-node-arg <flag>]… [--soak-minutes <n>] [--list] [scenario …]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all but soak)`;

export function parseArgs(argv: string[]): RunOptions | 'list' | 'help' {
  const o: RunOptions = {
    smoke: false,
    cpuProf: false,
    resultsDir: path.join(repoRoot(), 'bench', 'results'),
    scenarios: [],
    coordinatorNodeArgs: [],
    quiet: false,
    soakMinutes: SOAK_DEFAULT_MINUTES,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--smoke') o.smoke = true;
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--list') return 'list';
    else if (a === '-h' || a === '--help') return 'help';
    else if (a === '--results-dir') o.resultsDir = path.resolve(argv[++i] ?? '');
    else if (a === '--coordinator-node-arg') o.coordinatorNodeArgs.push(argv[++i] ?? '');
    else if (a === '--soak-minutes') {
      const v = Number(argv[++i]);
      if (!(v > 0)) throw new Error(`--soak-minutes needs a positive number (got ${argv[i] ?? 'nothing'})`);
      o.soakMinutes = v;
    }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (!SCENARIOS.some((s) => s.name === a)) throw new Error(`unknown scenario ${a}`);
    else o.scenarios.push(a);
  }
  return o;
}

export async function runBench(o: RunOptions): Promise<{ results: ScenarioResult[]; failed: string[] }> {
  const selected = o.scenarios.length > 0 ? SCENARIOS.filter((s) => o.scenarios.includes(s.name)) : o.smoke ? SCENARIOS : DEFAULT_SCENARIOS;
  const log = (line: string): void => {
    if (!o.quiet) process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };
  const ctx: ScenarioContext = {
    smoke: o.smoke,
    coordinatorNodeArgs: o.coordinatorNodeArgs,
    profileDir: o.cpuProf ? path.join(o.resultsDir, 'profiles') : undefined,
    soakMinutes: o.soakMinutes,
    log,
  };
  const all: ScenarioResult[] = [];
  const failed: string[] = [];
  for (const s of selected) {
    const t0 = performance.now();
    const file: ResultFile = {
      scenario: s.name,
      generatedAt: new Date().toISOString(),
      smoke: o.smoke,
      machine: machineInfo(),
      durationMs: 0,
      results: [],
    };
    try {
      file.results = await s.run(ctx);
    } catch (err) {
      file.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failed.push(s.name);
      log(`${s.name} FAILED: ${file.error}`);
    }
    file.durationMs = Math.round(performance.now() - t0);
    writeResultFile(o.resultsDir, file);
    log(`${s.name}: done in ${(file.durationMs / 1000).toFixed(1)} s`);
    all.push(...file.results);
  }
  return { results: all, failed };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (parsed === 'list') {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(11)} ${s.summary}\n`);
    return 0;
  }
  const t0 = performance.now();
  const { results, failed } = await runBench(parsed);
  const table = markdownTable(results);
  const notes = notesSection(results);
  const header = `# zisk-coordinator bench${parsed.smoke ? ' (smoke)' : ''}: ${new Date().toISOString()}, ${machineInfo().cpus} cores, Node ${process.version}, ${((performance.now() - t0) / 1000).toFixed(0)} s`;
  const text = `${header}\n\n${table}\n\n${notes}${failed.length > 0 ? `\nFailed to run: ${failed.join(', ')}\n` : ''}`;
  fs.mkdirSync(parsed.resultsDir, { recursive: true });
  fs.writeFileSync(path.join(parsed.resultsDir, 'summary.md'), text);
  process.stdout.write(`${text}\n`);
  return failed.length > 0 ? 1 : 0;
}

if (require.main === module) {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
