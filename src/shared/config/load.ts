/**
 * Resolves the effective configuration: defaults < legacy core file < TOML file(s) < environment <
 * command line (docs/decisions.md, Process, configuration and signals). Pure apart from reading files:
 * it never exits, never logs, and returns its warnings so the caller decides where they go.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml, TomlDate, TomlError } from 'smol-toml';
import { explainTomlError } from './toml-errors';
import type { Config, ConfigSource, LogLevel } from './types';
import {
  CONFIG_FILE_ENV,
  CONFIG_KEYS,
  ENV_PREFIX,
  type ConfigValue,
  type KeySpec,
  assembleConfig,
  defaultValue,
  describeType,
  findKey,
  genericEnvName,
  isSection,
  keyByPath,
  packageVersion,
} from './schema';

/** The settings the command line can override (everything else comes from files and the environment). */
export interface CliOverrides {
  config?: string;
  apiPort?: number;
  clusterPort?: number;
  metricsPort?: number;
  logLevel?: LogLevel;
  /** Unknown keys in a config file are errors, not warnings. */
  strict?: boolean;
}

export interface LoadInput {
  cli: CliOverrides;
  env: NodeJS.ProcessEnv;
  cwd: string;
  homeDir: string;
  /** Replaces `/etc` in `/etc/zisk/coordinator.toml`, so tests never read the host's file. */
  etcDir?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Where each effective value came from, keyed by `section.key` (every key is present). */
  sources: Map<string, ConfigSource>;
  warnings: string[];
  /** Files read, in the order they were read (main files, then the legacy core file). */
  files: string[];
}

/** Bad configuration; the process exits 78 (EX_CONFIG) without binding anything. */
export class ConfigError extends Error {
  readonly exitCode = 78;
  /** One line per problem; `message` is these joined by newlines. */
  readonly problems: readonly string[];
  /** Warnings gathered before the failure; an unknown-key warning often explains the error. */
  readonly warnings: readonly string[];

  constructor(problems: readonly string[], warnings: readonly string[] = []) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
    this.warnings = warnings;
  }
}

const CLI_FIELDS: readonly { field: keyof Omit<CliOverrides, 'config' | 'strict'>; path: string; flag: string }[] = [
  { field: 'apiPort', path: 'server.port', flag: '--api-port' },
  { field: 'clusterPort', path: 'coordinator.port', flag: '--cluster-port' },
  { field: 'metricsPort', path: 'metrics.port', flag: '--metrics-port' },
  { field: 'logLevel', path: 'logging.level', flag: '--log-level' },
];

/**
 * ZISK_COORDINATOR_* names that belong to other tools of the ZisK stack (prove-client, installer) and
 * are routinely present in the same environment; they must not trigger the unknown-variable warning.
 */
const FOREIGN_ENV = new Set(['ZISK_COORDINATOR_URL', 'ZISK_COORDINATOR_BINARY']);

interface Layer {
  source: ConfigSource;
  values: Map<string, ConfigValue>;
}

type Coerced = { ok: true; value: ConfigValue } | { ok: false };

/** Collects problems and warnings while every source is examined, so one run reports all of them. */
class Report {
  readonly problems: string[] = [];
  readonly warnings: string[] = [];

  constructor(readonly strict = false) {}

  invalid(source: string, keyPath: string, spec: KeySpec, got: string, expected = describeType(spec.type)): void {
    this.problems.push(`${source}: ${keyPath}: expected ${expected}, got ${got}`);
  }
}

export function loadConfig(input: LoadInput): LoadedConfig {
  const report = new Report(input.cli.strict === true);
  const env = input.env;
  const files: string[] = [];

  const fileLayers: Layer[] = [];
  for (const file of selectConfigFiles(input, report)) {
    const table = readTomlFile(file, report);
    files.push(file);
    if (table) fileLayers.push({ source: { kind: 'file', path: file }, values: mainFileValues(table, file, report) });
  }

  const envLayers = environmentLayers(env, report);
  const cliLayers = commandLineLayers(input.cli, report);

  // The legacy file's location may itself come from any layer above it, so it is resolved last.
  const legacyLayers: Layer[] = [];
  const pointer = lastLayerWith([...fileLayers, ...envLayers, ...cliLayers], 'coordinator.config_file');
  const configFile = pointer?.values.get('coordinator.config_file');
  if (pointer && typeof configFile === 'string') {
    const legacyPath = path.resolve(input.cwd, configFile);
    if (!isExistingPath(legacyPath)) {
      report.problems.push(`${sourceLabel(pointer.source)}: coordinator.config_file: file not found: ${legacyPath}`);
    } else {
      const table = readTomlFile(legacyPath, report);
      files.push(legacyPath);
      if (table) {
        legacyLayers.push({ source: { kind: 'legacy-file', path: legacyPath }, values: legacyFileValues(table, legacyPath, report) });
      }
    }
  }

  if (report.problems.length > 0) throw new ConfigError(report.problems, report.warnings);

  const values = new Map<string, ConfigValue>();
  const sources = new Map<string, ConfigSource>();
  for (const spec of CONFIG_KEYS) {
    values.set(spec.path, defaultValue(spec));
    sources.set(spec.path, { kind: 'default' });
  }
  for (const layer of [...legacyLayers, ...fileLayers, ...envLayers, ...cliLayers]) {
    for (const [keyPath, value] of layer.values) {
      values.set(keyPath, value);
      sources.set(keyPath, layer.source);
    }
  }

  return { config: assembleConfig(values), sources, warnings: report.warnings, files };
}

function lastLayerWith(layers: readonly Layer[], keyPath: string): Layer | undefined {
  let found: Layer | undefined;
  for (const layer of layers) if (layer.values.has(keyPath)) found = layer;
  return found;
}

function sourceLabel(source: ConfigSource): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'file':
    case 'legacy-file':
      return source.path;
    case 'env':
      return source.name;
    case 'cli':
      return source.flag;
  }
}

function isExistingPath(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

function selectConfigFiles(input: LoadInput, report: Report): string[] {
  if (input.cli.config === '') {
    report.problems.push('--config: expected a file path, got ""');
    return [];
  }
  const fromEnv = nonEmpty(input.env[CONFIG_FILE_ENV]);
  const explicit = input.cli.config !== undefined
    ? { value: input.cli.config, source: '--config' }
    : fromEnv !== undefined
      ? { value: fromEnv, source: CONFIG_FILE_ENV }
      : undefined;
  if (explicit) {
    const file = path.resolve(input.cwd, explicit.value);
    if (!isExistingPath(file)) {
      report.problems.push(`${explicit.source}: config file not found: ${file}`);
      return [];
    }
    return [file];
  }
  const xdg = nonEmpty(input.env.XDG_CONFIG_HOME);
  // The XDG spec says relative values are invalid and must be ignored.
  const configHome = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(input.homeDir, '.config');
  const candidates = [
    path.join(input.etcDir ?? '/etc', 'zisk', 'coordinator.toml'),
    path.join(configHome, 'zisk', 'coordinator.toml'),
    path.join(input.cwd, 'coordinator.toml'),
  ].map((p) => path.resolve(input.cwd, p));
  return [...new Set(candidates)].filter(isExistingPath);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

type TomlTable = Record<string, unknown>;

function readTomlFile(file: string, report: Report): TomlTable | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    report.problems.push(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return undefined;
  }
  try {
    // Integers as bigint keep `7000` (integer) apart from `7000.0` (float) and make range checks exact.
    return parseToml(text, { integersAsBigInt: true }) as TomlTable;
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
      report.problems.push(`${file}: ${explainTomlError(text, err.line, err.column, reason)}`);
      return undefined;
    }
    throw err;
  }
}

function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof TomlDate);
}

function mainFileValues(table: TomlTable, file: string, report: Report): Map<string, ConfigValue> {
  const values = new Map<string, ConfigValue>();
  for (const [section, content] of Object.entries(table)) {
    if (!isSection(section)) {
      warnUnknown(file, section, content, report);
      continue;
    }
    if (!isTable(content)) {
      report.problems.push(`${file}: ${section}: expected a table, got ${describeTomlValue(content)}`);
      continue;
    }
    for (const [key, raw] of Object.entries(content)) {
      const spec = findKey(section, key);
      if (!spec) {
        warnUnknown(file, `${section}.${key}`, raw, report);
      } else if (spec.fixed) {
        report.warnings.push(`${file}: ${spec.path} cannot be set (always ${packageVersion()}; ignored)`);
      } else {
        const c = coerceToml(spec, raw);
        if (c.ok) values.set(spec.path, c.value);
        else report.invalid(file, spec.path, spec, describeTomlValue(raw));
      }
    }
  }
  return values;
}

function warnUnknown(file: string, keyPath: string, value: unknown, report: Report): void {
  if (isTable(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) warnUnknown(file, `${keyPath}.${k}`, v, report);
    return;
  }
  const hint = elsewhere(keyPath);
  if (report.strict) report.problems.push(`${file}: unknown key ${keyPath}${hint ? ` (${hint})` : ''}`);
  else report.warnings.push(`${file}: unknown key ${keyPath} (ignored${hint ? `; ${hint}` : ''})`);
}

/** Where a key in the wrong section belongs, if it is a key of another section. */
function elsewhere(keyPath: string): string | undefined {
  const parts = keyPath.split('.');
  if (parts.length !== 2) return undefined;
  const [section, key] = parts;
  const homes = CONFIG_KEYS.filter((k) => k.key === key && k.section !== section).map((k) => `[${k.section}]`);
  return homes.length > 0 ? `it belongs in ${homes.join(' or ')}` : undefined;
}

/**
 * Upstream's core file: only its [coordinator] table and [server] proofs_dir mean anything here. The
 * worker port and the file pointer itself belong to the main file, so they are ignored like the rest.
 */
function legacyFileValues(table: TomlTable, file: string, report: Report): Map<string, ConfigValue> {
  const values = new Map<string, ConfigValue>();
  const ignored: string[] = [];
  const collectIgnored = (keyPath: string, value: unknown): void => {
    if (isTable(value) && Object.keys(value).length > 0) {
      for (const [k, v] of Object.entries(value)) collectIgnored(`${keyPath}.${k}`, v);
    } else {
      ignored.push(keyPath);
    }
  };
  for (const [section, content] of Object.entries(table)) {
    if (section === 'coordinator' && isTable(content)) {
      for (const [key, raw] of Object.entries(content)) {
        const spec = findKey(section, key);
        if (!spec) warnUnknown(file, `${section}.${key}`, raw, report);
        else if (key === 'port' || key === 'config_file') ignored.push(spec.path);
        else {
          const c = coerceToml(spec, raw);
          if (c.ok) values.set(spec.path, c.value);
          else report.invalid(file, spec.path, spec, describeTomlValue(raw));
        }
      }
    } else if (section === 'server' && isTable(content)) {
      for (const [key, raw] of Object.entries(content)) {
        if (key !== 'proofs_dir') {
          collectIgnored(`server.${key}`, raw);
          continue;
        }
        const spec = keyByPath('coordinator.proofs_dir');
        const c = coerceToml(spec, raw);
        if (c.ok) values.set(spec.path, c.value);
        else report.invalid(file, 'server.proofs_dir', spec, describeTomlValue(raw));
      }
    } else {
      collectIgnored(section, content);
    }
  }
  if (ignored.length > 0) {
    report.warnings.push(
      `${file}: legacy config_file keys ignored (only [coordinator] and [server] proofs_dir are read): ${ignored.join(', ')}`,
    );
  }
  return values;
}

function coerceToml(spec: KeySpec, raw: unknown): Coerced {
  const type = spec.type;
  if (type.kind === 'int') {
    return typeof raw === 'bigint' ? coerceInt(spec, raw) : { ok: false };
  }
  if (type.kind === 'bool') {
    return typeof raw === 'boolean' ? { ok: true, value: raw } : { ok: false };
  }
  return typeof raw === 'string' ? coerceString(spec, raw) : { ok: false };
}

function coerceInt(spec: KeySpec, n: bigint): Coerced {
  if (spec.type.kind !== 'int') return { ok: false };
  if (n < BigInt(spec.type.min) || n > BigInt(spec.type.max)) return { ok: false };
  return { ok: true, value: Number(n) };
}

function coerceString(spec: KeySpec, s: string): Coerced {
  const type = spec.type;
  switch (type.kind) {
    case 'string':
      return type.nonEmpty && s.trim() === '' ? { ok: false } : { ok: true, value: s };
    case 'enum':
      return type.values.includes(s) ? { ok: true, value: s } : { ok: false };
    case 'optional-string':
      // An empty value is how env files and TOML templates say "not set".
      if (s === '') return { ok: true, value: undefined };
      if (type.httpUrl && !isHttpUrl(s)) return { ok: false };
      return { ok: true, value: s };
    default:
      return { ok: false };
  }
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function describeTomlValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    // Show that a float was given: "got 7000" would look like a valid port.
    return Number.isInteger(v) ? v.toFixed(1) : String(v);
  }
  if (v instanceof TomlDate) return v.toISOString();
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return String(v);
}

function environmentLayers(env: NodeJS.ProcessEnv, report: Report): Layer[] {
  // One layer per variable so each value keeps its own variable name as its source.
  const layers: Layer[] = [];
  const known = new Set<string>([CONFIG_FILE_ENV, ...FOREIGN_ENV]);
  for (const spec of CONFIG_KEYS) {
    if (spec.upstreamEnv) known.add(spec.upstreamEnv);
    if (spec.fixed) {
      const name = genericEnvName(spec.section, spec.key);
      known.add(name);
      if (nonEmpty(env[name]) !== undefined) {
        report.warnings.push(`${name}: ${spec.path} cannot be set (always ${packageVersion()}; ignored)`);
      }
      continue;
    }
    if (spec.env) known.add(spec.env);
    const generic = spec.env !== undefined ? nonEmpty(env[spec.env]) : undefined;
    const upstream = spec.upstreamEnv !== undefined ? nonEmpty(env[spec.upstreamEnv]) : undefined;

    // Both are validated: a typo in the losing variable is still a typo.
    let genericValue: Coerced | undefined;
    if (generic !== undefined && spec.env) {
      genericValue = coerceEnv(spec, spec.env, generic, report);
    }
    let upstreamValue: Coerced | undefined;
    if (upstream !== undefined && spec.upstreamEnv) {
      upstreamValue = spec.upstreamEnv === 'RUST_LOG'
        ? rustLogValue(upstream, report)
        : coerceEnv(spec, spec.upstreamEnv, upstream, report);
    }

    if (upstream !== undefined && generic !== undefined) {
      report.warnings.push(
        `both ${spec.upstreamEnv} and ${spec.env} are set; ${spec.upstreamEnv} wins for ${spec.path}`,
      );
    }
    if (upstreamValue?.ok && spec.upstreamEnv) {
      layers.push({ source: { kind: 'env', name: spec.upstreamEnv }, values: new Map([[spec.path, upstreamValue.value]]) });
    } else if (upstreamValue === undefined && genericValue?.ok && spec.env) {
      layers.push({ source: { kind: 'env', name: spec.env }, values: new Map([[spec.path, genericValue.value]]) });
    }
  }
  for (const name of Object.keys(env).sort()) {
    if (name.startsWith(ENV_PREFIX) && !known.has(name) && nonEmpty(env[name]) !== undefined) {
      report.warnings.push(`environment: unknown variable ${name} (ignored)`);
    }
  }
  return layers;
}

function coerceEnv(spec: KeySpec, name: string, raw: string, report: Report): Coerced {
  const type = spec.type;
  let result: Coerced;
  let expected = describeType(type);
  if (type.kind === 'int') {
    result = /^[+-]?[0-9]+$/.test(raw.trim()) ? coerceInt(spec, BigInt(raw.trim())) : { ok: false };
  } else if (type.kind === 'bool') {
    expected = 'true, false, 1 or 0';
    const v = raw.trim().toLowerCase();
    result = v === 'true' || v === '1' ? { ok: true, value: true } : v === 'false' || v === '0' ? { ok: true, value: false } : { ok: false };
  } else {
    result = coerceString(spec, raw);
  }
  if (!result.ok) report.invalid(name, spec.path, spec, JSON.stringify(raw), expected);
  return result;
}

/**
 * RUST_LOG is a tracing filter (`info,zisk=debug`). Its directives for this program's own targets
 * (`zisk`, `zisk_coordinator`, any `zisk_*` crate, with or without a `::module` path) set
 * logging.level, as they would upstream's log; failing those, its global level (a bare level). It never
 * fails: upstream falls back silently on a filter it cannot use.
 */
function rustLogValue(filter: string, report: Report): Coerced {
  const level = rustLogLevel(filter);
  if (level === undefined) {
    report.warnings.push(`RUST_LOG=${filter} sets no level for zisk or globally; using info`);
    return { ok: true, value: 'info' };
  }
  return { ok: true, value: level };
}

// tracing's LevelFilter also accepts 0-5 (0 = off); we have no "off", so it becomes error.
const RUST_LEVELS: Record<string, LogLevel> = {
  off: 'error', error: 'error', warn: 'warn', warning: 'warn', info: 'info', debug: 'debug', trace: 'trace',
  '0': 'error', '1': 'error', '2': 'warn', '3': 'info', '4': 'debug', '5': 'trace',
};

/**
 * The level a RUST_LOG filter gives this program: the last directive naming one of its targets, else
 * the last bare level directive, else undefined. `off` maps to error.
 */
export function rustLogLevel(filter: string): LogLevel | undefined {
  let global: LogLevel | undefined;
  let own: LogLevel | undefined;
  for (const part of filter.split(',')) {
    const directive = part.trim().toLowerCase();
    if (Object.hasOwn(RUST_LEVELS, directive)) {
      global = RUST_LEVELS[directive];
      continue;
    }
    const m = /^([a-z0-9_:]+)(?:\[[^\]]*\])?=([a-z0-9]+)$/.exec(directive);
    if (!m || !Object.hasOwn(RUST_LEVELS, m[2])) continue;
    const crate = m[1].split('::')[0];
    if (crate === 'zisk' || crate.startsWith('zisk_')) own = RUST_LEVELS[m[2]];
  }
  return own ?? global;
}

function commandLineLayers(cli: CliOverrides, report: Report): Layer[] {
  const layers: Layer[] = [];
  for (const { field, path: keyPath, flag } of CLI_FIELDS) {
    const raw = cli[field];
    if (raw === undefined) continue;
    const spec = keyByPath(keyPath);
    const c = typeof raw === 'number'
      ? Number.isInteger(raw) ? coerceInt(spec, BigInt(raw)) : { ok: false as const }
      : coerceString(spec, raw);
    if (!c.ok) report.invalid(flag, keyPath, spec, JSON.stringify(raw));
    else layers.push({ source: { kind: 'cli', flag }, values: new Map([[keyPath, c.value]]) });
  }
  return layers;
}
