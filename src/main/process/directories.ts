/**
 * Every directory the process needs, resolved once and proven usable before anything binds. A
 * directory that cannot be used is a configuration error (exit 78, like a bad key): the process
 * must not answer health checks as serving and then fail every RegisterGuestProgram.
 *
 * The checks are bounded in time. Node's recursive mkdir loops forever where mkdir of a missing
 * component keeps failing with ENOENT while its parent exists (anything under /proc), so missing
 * components are created one by one, at most once each. Writability is proven by creating and
 * removing a file, because root passes every permission-bit test (a read-only mount still fails).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../../shared/config/load';
import type { Config, ConfigSource, Directories } from '../../shared/config/types';

/** The directories the coordinator uses, absolute and checked. */

export interface DirectoryInput {
  config: Config;
  /** Where each setting came from, so a message can name it; absent for a configuration built in code. */
  sources?: ReadonlyMap<string, ConfigSource>;
  env: NodeJS.ProcessEnv;
  homeDir: string;
  /** Relative settings resolve against it, as `[coordinator] config_file` does. */
  cwd: string;
}

/** One line of the report `--check-config` prints. */
export interface DirectoryStatus {
  label: string;
  /** undefined: the directory is not used under this configuration (`note` says why). */
  path: string | undefined;
  origin: string;
  /** Components this check created (parents first). */
  created: string[];
  note?: string;
}

export interface PreparedDirectories {
  directories: Directories;
  report: DirectoryStatus[];
}

/** `under`: the default lies inside another checked directory, whose own problem says it all. */
type Located = { kind: 'at'; path: string; origin: string; under?: keyof Directories } | { kind: 'unused'; why: string } | undefined;

interface DirectoryNeed {
  role: keyof Directories;
  label: string;
  /** Missing components are created; the process writes files here (the cache is also read). */
  write: boolean;
  read: boolean;
  locate(input: DirectoryInput): Located;
}

/** What the process needs, in the order messages and reports list it. */
const NEEDS: readonly DirectoryNeed[] = [
  { role: 'cache', label: 'cache directory', write: true, read: true, locate: locateCache },
  { role: 'state', label: 'state directory', write: true, read: true, locate: locateState },
  {
    role: 'proofs',
    label: 'proofs directory',
    write: true,
    read: false,
    locate: (input) => fromSetting(input, 'coordinator.proofs_dir', input.config.coordinator.proofs_dir),
  },
  {
    role: 'inputs',
    label: 'inputs directory',
    write: false,
    read: true,
    locate: (input) => fromSetting(input, 'coordinator.inputs_dir', input.config.coordinator.inputs_dir),
  },
  {
    role: 'logs',
    label: 'log file directory',
    write: true,
    read: false,
    locate: (input) => {
      const file = fromSetting(input, 'logging.file_path', input.config.logging.file_path);
      return file?.kind === 'at' ? { ...file, path: path.dirname(file.path) } : file;
    },
  },
];

/**
 * Resolves and checks every directory the configuration needs, creating missing writable ones.
 * Throws a ConfigError naming each unusable directory, its setting and the reason.
 */
export function prepareDirectories(input: DirectoryInput): PreparedDirectories {
  const directories: Directories = { cache: undefined, proofs: undefined, inputs: undefined, logs: undefined, state: undefined };
  const report: DirectoryStatus[] = [];
  const problems: string[] = [];
  const failed = new Set<keyof Directories>();
  for (const need of NEEDS) {
    const located = need.locate(input);
    if (!located) continue;
    if (located.kind === 'at' && located.under !== undefined && failed.has(located.under)) continue;
    if (located.kind === 'unused') {
      report.push({ label: need.label, path: undefined, origin: '', created: [], note: located.why });
      continue;
    }
    const outcome = checkDirectory(located.path, need);
    if ('problem' in outcome) {
      failed.add(need.role);
      problems.push(`${need.label} ${located.path} (${located.origin}) is not usable: ${outcome.problem}`);
      continue;
    }
    directories[need.role] = located.path;
    report.push({ label: need.label, path: located.path, origin: located.origin, created: outcome.created });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { directories, report };
}

/** `[coordinator] cache_dir`, else `$ZISK_CACHE_DIR`, else `$ZISK_HOME/cache`, else `~/.zisk/cache`. */
function locateCache(input: DirectoryInput): Located {
  // Mock mode never writes a program (docs/decisions.md, Mock backend): a mock instance must start
  // where the real cache location is unusable (CI, a read-only HOME), and must not create one there.
  if (input.config.backend.mode === 'mock') return { kind: 'unused', why: 'mock mode keeps programs in memory' };
  const configured = fromSetting(input, 'coordinator.cache_dir', input.config.coordinator.cache_dir);
  if (configured) return configured;
  const { env, cwd } = input;
  if (env.ZISK_CACHE_DIR) return { kind: 'at', path: path.resolve(cwd, env.ZISK_CACHE_DIR), origin: 'from ZISK_CACHE_DIR' };
  if (env.ZISK_HOME) return { kind: 'at', path: path.resolve(cwd, env.ZISK_HOME, 'cache'), origin: 'from ZISK_HOME' };
  return { kind: 'at', path: path.resolve(input.homeDir, '.zisk', 'cache'), origin: 'default ~/.zisk/cache' };
}

/** `[state] dir`, else `coordinator-state` under the cache directory; unused when jobs stay in memory. */
function locateState(input: DirectoryInput): Located {
  if (input.config.backend.mode === 'mock') return { kind: 'unused', why: 'mock mode keeps jobs in memory' };
  if (input.config.state.backend === 'memory') return { kind: 'unused', why: '[state] backend = "memory" keeps jobs in memory' };
  const configured = fromSetting(input, 'state.dir', input.config.state.dir);
  if (configured) return configured;
  const cache = locateCache(input);
  if (cache?.kind !== 'at') return cache;
  return { kind: 'at', path: path.join(cache.path, 'coordinator-state'), origin: 'default: coordinator-state in the cache directory', under: 'cache' };
}

function fromSetting(input: DirectoryInput, keyPath: string, value: string | undefined): Located {
  if (value === undefined) return undefined;
  const [section, key] = keyPath.split('.');
  return { kind: 'at', path: path.resolve(input.cwd, value), origin: `from [${section}] ${key}${describeSource(input.sources?.get(keyPath))}` };
}

function describeSource(source: ConfigSource | undefined): string {
  switch (source?.kind) {
    case 'file':
      return ` in ${source.path}`;
    case 'legacy-file':
      return ` in legacy config_file ${source.path}`;
    case 'env':
      return `, set by ${source.name}`;
    case 'cli':
      return `, set by ${source.flag}`;
    default:
      return '';
  }
}

type CheckOutcome = { created: string[] } | { problem: string };

function checkDirectory(dir: string, need: DirectoryNeed): CheckOutcome {
  const found = findExisting(dir);
  if ('problem' in found) return found;
  const created: string[] = [];
  if (found.missing.length > 0) {
    if (!need.write) return { problem: found.blocker ? `${found.blocker} is not a directory` : 'it does not exist' };
    if (found.blocker) return { problem: `cannot create it: ${found.blocker} is not a directory` };
    for (const component of found.missing) {
      const made = makeOne(component);
      if (made !== undefined) return { problem: `cannot create it: ${made}` };
      created.push(component);
    }
  } else if (found.blocker) {
    return { problem: 'it is not a directory' };
  }
  if (need.read) {
    try {
      fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
    } catch (err) {
      return { problem: `cannot read it: ${messageOf(err)}` };
    }
  }
  if (need.write) {
    const problem = probeWrite(dir);
    if (problem !== undefined) return { problem: `cannot write in it: ${problem}` };
  }
  return { created };
}

/**
 * Walks up from `dir` to the nearest existing entry. `missing` lists the components below it,
 * parents first; `blocker` is that entry when it is not a directory. One stat per component: the
 * walk ends at the root at the latest.
 */
function findExisting(dir: string): { missing: string[]; blocker?: string } | { problem: string } {
  const missing: string[] = [];
  const components = dir.split(path.sep).length;
  let current = dir;
  for (let i = 0; i <= components; i++) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(current);
    } catch (err) {
      const code = codeOf(err);
      // ENOTDIR: a file further up; the walk goes on until it reaches that file.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return { problem: `cannot inspect ${current}: ${messageOf(err)}` };
      missing.unshift(current);
      const parent = path.dirname(current);
      if (parent === current) break;
      current = parent;
      continue;
    }
    return stat.isDirectory() ? { missing } : { missing, blocker: current };
  }
  return { problem: `no existing parent directory found above ${dir}` };
}

/** Creates one directory; the error text when it cannot, undefined when it exists afterwards. */
function makeOne(dir: string): string | undefined {
  try {
    fs.mkdirSync(dir);
    return undefined;
  } catch (err) {
    if (codeOf(err) !== 'EEXIST') return messageOf(err);
  }
  // Created meanwhile by someone else, or a dangling symlink: only a directory will do.
  try {
    return fs.statSync(dir).isDirectory() ? undefined : `${dir} is not a directory`;
  } catch (err) {
    return messageOf(err);
  }
}

function probeWrite(dir: string): string | undefined {
  const probe = path.join(dir, `.zisk-coordinator-probe.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    fs.closeSync(fs.openSync(probe, 'wx'));
  } catch (err) {
    return messageOf(err);
  }
  try {
    fs.unlinkSync(probe);
    return undefined;
  } catch (err) {
    return `cannot remove ${probe}: ${messageOf(err)}`;
  }
}

function codeOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
