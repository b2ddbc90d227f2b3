/**
 * The one table of configuration keys. Loading, validation, environment names, --print-config, the
 * --help text and the README reference are all derived from it, so a key added here is picked up
 * everywhere; a key added to `Config` but not here fails to compile.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from './types';

export type SectionName = keyof Config;

export type ValueType =
  | { readonly kind: 'string'; readonly nonEmpty?: boolean }
  | { readonly kind: 'optional-string'; readonly httpUrl?: boolean }
  | { readonly kind: 'int'; readonly min: number; readonly max: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'enum'; readonly values: readonly string[] };

export type ConfigValue = string | number | boolean | undefined;

export interface KeySpec {
  readonly section: SectionName;
  readonly key: string;
  /** `section.key`, the form used in messages and in `LoadedConfig.sources`. */
  readonly path: string;
  readonly type: ValueType;
  readonly default: ConfigValue;
  readonly description: string;
  /** `ZISK_COORDINATOR_<SECTION>_<KEY>`; undefined only for keys that cannot be set. */
  readonly env: string | undefined;
  /** The name upstream's Rust binary reads; it wins over `env` when both are set. */
  readonly upstreamEnv?: string;
  /** Long flag that overrides this key (the CLI layer). */
  readonly cliFlag?: string;
  readonly cliShort?: string;
  /** Forced by the process (service.version); setting it only produces a warning. */
  readonly fixed?: boolean;
}

export const ENV_PREFIX = 'ZISK_COORDINATOR_';
/** Upstream's name for the explicit config file; not a TOML key, so it has no generic twin. */
export const CONFIG_FILE_ENV = 'ZISK_COORDINATOR_CONFIG';

const PORT = { kind: 'int', min: 0, max: 65535 } as const;
// u64 upstream; JS numbers are exact up to 2^53, far beyond any sane duration or size.
const U64 = { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER } as const;
const U32 = { kind: 'int', min: 0, max: 4294967295 } as const;
// An interval of 0 would spin a timer loop, so intervals and the miss count start at 1.
const POSITIVE_U32 = { kind: 'int', min: 1, max: 4294967295 } as const;
// Durations that end up in setTimeout/setInterval: Node fires a delay above 2^31-1 ms after 1 ms,
// so a huge value would turn "wait almost forever" into "time out at once".
const TIMER_MAX_MS = 2147483647;
const TIMER_SECONDS = { kind: 'int', min: 0, max: Math.floor(TIMER_MAX_MS / 1000) } as const;
const POSITIVE_TIMER_SECONDS = { kind: 'int', min: 1, max: Math.floor(TIMER_MAX_MS / 1000) } as const;
const TIMER_MS = { kind: 'int', min: 0, max: TIMER_MAX_MS } as const;
const MIB = 1024 * 1024;
// grpc-js stores message limits in an int32.
const MESSAGE_BYTES = { kind: 'int', min: MIB, max: 2147483647 } as const;
// A zero byte budget would block every large write forever.
const BYTE_BUDGET = { kind: 'int', min: 1, max: Number.MAX_SAFE_INTEGER } as const;
// HTTP/2 windows: at least the protocol's initial 64 KiB, at most its 2^31-1 ceiling.
const HTTP2_WINDOW_BYTES = { kind: 'int', min: 65535, max: 2147483647 } as const;

type IntType = Extract<ValueType, { kind: 'int' }>;
type Entry<T> = {
  readonly description: string;
  readonly upstreamEnv?: string;
  readonly cliFlag?: string;
  readonly cliShort?: string;
  readonly fixed?: boolean;
} & ([T] extends [number]
  ? { readonly type: IntType; readonly default: T }
  : [T] extends [boolean]
    ? { readonly type: { readonly kind: 'bool' }; readonly default: T }
    : undefined extends T
      ? { readonly type: { readonly kind: 'optional-string'; readonly httpUrl?: boolean }; readonly default: undefined }
      : string extends T
        ? { readonly type: { readonly kind: 'string'; readonly nonEmpty?: boolean }; readonly default: string }
        : { readonly type: { readonly kind: 'enum'; readonly values: readonly T[] }; readonly default: T });

interface RawEntry {
  readonly type: ValueType;
  readonly default: ConfigValue;
  readonly description: string;
  readonly upstreamEnv?: string;
  readonly cliFlag?: string;
  readonly cliShort?: string;
  readonly fixed?: boolean;
}

type SchemaDefinition = { readonly [S in SectionName]: { readonly [K in keyof Config[S]]-?: Entry<Config[S][K]> } };

let cachedVersion: string | undefined;

/** The version in this package's package.json; found by walking up so it works from src/ and dist/. */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      const pkg: unknown = JSON.parse(fs.readFileSync(candidate, 'utf8'));
      if (isRecord(pkg) && pkg.name === 'zisk-coordinator' && typeof pkg.version === 'string') {
        cachedVersion = pkg.version;
        return cachedVersion;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('zisk-coordinator package.json not found above ' + __dirname);
    dir = parent;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

// The version default is filled in lazily (packageVersion()); this placeholder never escapes.
const VERSION_PLACEHOLDER = '';

const DEFINITION: SchemaDefinition = {
  service: {
    name: { type: { kind: 'string' }, default: 'ZisK Coordinator', description: 'Service name (informational).' },
    version: {
      type: { kind: 'string' },
      default: VERSION_PLACEHOLDER,
      fixed: true,
      description: 'Always the package version; setting it only produces a warning.',
    },
    environment: {
      type: { kind: 'enum', values: ['development', 'staging', 'production'] },
      default: 'development',
      description: 'Deployment environment label (informational).',
    },
  },
  server: {
    host: {
      type: { kind: 'string', nonEmpty: true },
      default: '0.0.0.0',
      description: 'Bind address of the client API and the cluster (worker) gRPC servers.',
    },
    port: {
      type: PORT,
      default: 7000,
      upstreamEnv: 'ZISK_COORDINATOR_API_PORT',
      cliFlag: '--api-port',
      cliShort: '-a',
      description: 'Client API gRPC port.',
    },
    shutdown_timeout_seconds: {
      type: TIMER_SECONDS,
      default: 30,
      description: 'Drain window after SIGTERM/SIGINT before remaining jobs are failed.',
    },
    max_message_bytes: {
      type: MESSAGE_BYTES,
      default: 134217728,
      description: 'Max gRPC message size, both directions, both servers (at least 1 MiB); what the worker port sends is capped at 128 MiB.',
    },
    http2_window_bytes: {
      type: HTTP2_WINDOW_BYTES,
      default: 4194304,
      description: 'HTTP/2 receive window (per stream and per connection) both gRPC servers advertise; bounds upload speed to window / RTT.',
    },
    keepalive_time_seconds: {
      type: TIMER_SECONDS,
      default: 30,
      description: 'HTTP/2 keepalive ping interval on the client API port; 0 = no pings.',
    },
    keepalive_timeout_seconds: {
      type: POSITIVE_TIMER_SECONDS,
      default: 10,
      description: 'Close a client API connection whose keepalive ping is not answered within this time.',
    },
    tls_cert: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'PEM certificate (chain) both gRPC listeners serve TLS with; set together with tls_key; unset = plaintext (docs/security.md). Re-read on SIGHUP.',
    },
    tls_key: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'PEM private key of [server] tls_cert. Re-read on SIGHUP.',
    },
    api_token_file: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'File holding a bearer token: every client API call must send `authorization: Bearer <token>` (gRPC health stays open); unset = no token. Re-read on SIGHUP.',
    },
  },
  metrics: {
    enabled: {
      type: { kind: 'bool' },
      default: true,
      description: 'Serve /metrics; false removes /metrics but keeps /health on the same HTTP listener.',
    },
    host: { type: { kind: 'string', nonEmpty: true }, default: '0.0.0.0', description: 'Bind address of the metrics HTTP server.' },
    port: {
      type: PORT,
      default: 9090,
      upstreamEnv: 'ZISK_COORDINATOR_METRICS_PORT',
      cliFlag: '--metrics-port',
      description: 'Metrics and /health HTTP port.',
    },
  },
  logging: {
    level: {
      type: { kind: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error'] },
      default: 'info',
      upstreamEnv: 'RUST_LOG',
      cliFlag: '--log-level',
      description: 'Log level. RUST_LOG filters set it by their directive for zisk targets (`info,zisk=debug` → debug), else their global level, else info; `off` means error.',
    },
    format: {
      type: { kind: 'enum', values: ['pretty', 'json', 'compact'] },
      default: 'pretty',
      description: 'Log output format.',
    },
    file_path: { type: { kind: 'optional-string' }, default: undefined, description: 'Also write logs to this file.' },
  },
  backend: {
    mode: {
      type: { kind: 'enum', values: ['coordinator', 'mock'] },
      default: 'coordinator',
      description: 'coordinator = real workers; mock = synthetic jobs without workers (no worker port).',
    },
  },
  coordinator: {
    port: {
      type: PORT,
      default: 50051,
      upstreamEnv: 'ZISK_COORDINATOR_CLUSTER_PORT',
      cliFlag: '--cluster-port',
      description: 'Worker-facing (cluster) gRPC port.',
    },
    config_file: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: "Upstream's separate core file (relative to the working directory); its [coordinator] table and [server] proofs_dir sit beneath the main file.",
    },
    job_ttl_seconds: { type: U64, default: 3600, description: 'How long terminal jobs are kept.' },
    job_monitor_interval_seconds: { type: POSITIVE_TIMER_SECONDS, default: 10, description: 'Period of retention sweeps.' },
    phase1_timeout_seconds: { type: TIMER_SECONDS, default: 300, description: 'Contributions phase timeout (0 disables).' },
    phase2_timeout_seconds: { type: TIMER_SECONDS, default: 600, description: 'Prove phase timeout (0 disables).' },
    phase3_timeout_seconds: { type: TIMER_SECONDS, default: 100, description: 'Aggregate phase timeout (0 disables).' },
    execution_timeout_seconds: { type: TIMER_SECONDS, default: 300, description: 'Timeout of execute-only jobs.' },
    heartbeat_interval_seconds: { type: POSITIVE_TIMER_SECONDS, default: 30, description: 'Interval between heartbeats sent to workers.' },
    heartbeat_max_missed: { type: POSITIVE_U32, default: 3, description: 'Silent intervals before a worker is disconnected.' },
    stale_disconnected_threshold_seconds: { type: U64, default: 300, description: 'Forget disconnected workers after this long.' },
    reconnect_grace_period_ms: { type: TIMER_MS, default: 500, description: "Wait this long for a dropped worker to reconnect before failing its job." },
    default_compute_units: { type: U32, default: 0, description: 'Compute units per job; 0 = every eligible worker.' },
    min_compute_units: { type: POSITIVE_U32, default: 1, description: 'Minimum compute units to start a job (at least 1).' },
    max_total_workers: { type: U32, default: 1000, description: 'Max live (not disconnected) workers.' },
    max_workers_per_job: { type: U32, default: 0, description: 'Max workers per job; 0 = no cap.' },
    webhook_url: {
      type: { kind: 'optional-string', httpUrl: true },
      default: undefined,
      description: 'http(s) URL POSTed on every terminal prove/execute/wrap outcome.',
    },
    max_queued_jobs: { type: U32, default: 1024, description: 'Max queued jobs; beyond it JobRequest gets RESOURCE_EXHAUSTED.' },
    queue_timeout_seconds: { type: TIMER_SECONDS, default: 0, description: 'Fail jobs queued longer than this; 0 = never.' },
    setup_timeout_seconds: { type: TIMER_SECONDS, default: 600, description: 'Timeout of setup jobs.' },
    max_retained_jobs: { type: U32, default: 10000, description: 'Max terminal jobs kept (oldest evicted first).' },
    max_watchers_per_job: {
      type: POSITIVE_U32,
      default: 64,
      description: 'Max open WatchJob streams on one job; beyond it WatchJob gets RESOURCE_EXHAUSTED.',
    },
    max_watchers: {
      type: POSITIVE_U32,
      default: 10000,
      description: 'Max open WatchJob streams in all; beyond it WatchJob gets RESOURCE_EXHAUSTED.',
    },
    handshake_timeout_seconds: { type: TIMER_SECONDS, default: 10, description: 'A worker stream must register within this time.' },
    max_unregistered_streams: {
      type: POSITIVE_U32,
      default: 10000,
      description: 'Max worker streams open but not yet registered; beyond it a new stream ends at once with RESOURCE_EXHAUSTED.',
    },
    recovery_timeout_seconds: { type: TIMER_SECONDS, default: 360, description: 'Release a worker parked for recovery after this long.' },
    wrap_timeout_seconds: { type: TIMER_SECONDS, default: 600, description: 'Timeout of wrap jobs.' },
    max_worker_queue_bytes: { type: BYTE_BUDGET, default: 268435456, description: 'Max bytes queued on one worker stream.' },
    max_egress_bytes: { type: BYTE_BUDGET, default: 536870912, description: 'Max bytes of large messages queued across all workers.' },
    inputs_dir: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'Directory file:// and unix:// stream URIs must live under; unset refuses them.',
    },
    cache_dir: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'ELF and setup cache; unset = $ZISK_CACHE_DIR, else $ZISK_HOME/cache, else ~/.zisk/cache.',
    },
    proofs_dir: { type: { kind: 'optional-string' }, default: undefined, description: 'Write completed proofs here; unset = not written.' },
    max_job_attempts: {
      type: { kind: 'int', min: 1, max: 100 },
      default: 3,
      description: 'Attempts a job gets when infrastructure fails it (a worker lost, a phase timeout, a restart); 1 = fail at once, as upstream.',
    },
    keepalive_time_seconds: {
      type: TIMER_SECONDS,
      default: 0,
      description: 'HTTP/2 keepalive ping interval on the worker port; 0 = no pings (liveness is the heartbeat\'s job).',
    },
    keepalive_timeout_seconds: {
      type: POSITIVE_TIMER_SECONDS,
      default: 10,
      description: 'Close a worker connection whose keepalive ping is not answered within this time.',
    },
    scheduler_thread: {
      type: { kind: 'bool' },
      default: true,
      description: 'Run the scheduler on its own thread (false = on the main thread).',
    },
    tls_client_ca: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'PEM CA bundle: the worker port requires a client certificate signed by it (mutual TLS; needs [server] tls_cert). Re-read on SIGHUP.',
    },
    bind_worker_id_to_cert: {
      type: { kind: 'bool' },
      default: false,
      description: "Refuse a worker's register/reconnect unless its worker_id is its client certificate's subject CN or one of its DNS/URI SANs (needs tls_client_ca).",
    },
  },
  state: {
    backend: {
      type: { kind: 'enum', values: ['embedded', 'memory'] },
      default: 'embedded',
      description: 'embedded = jobs survive restarts and crashes (an LMDB store in [state] dir); memory = kept in memory only, as upstream.',
    },
    dir: {
      type: { kind: 'optional-string' },
      default: undefined,
      description: 'Directory of the embedded job store and its files (spooled inputs, proofs); unset = <cache dir>/coordinator-state.',
    },
    spool_max_bytes: {
      type: BYTE_BUDGET,
      default: 1073741824,
      description: 'Most bytes of pushed (grpc://) input or hints kept on disk per job so another attempt can replay them; past it the job is not retried.',
    },
    min_free_bytes: {
      type: U64,
      default: 536870912,
      description: 'Free space the embedded store\'s filesystem must keep: below it new jobs are refused (STATE_STORE_UNAVAILABLE) and pushed data is no longer spooled, so the store never runs out of room mid-write; 0 = no check.',
    },
  },
};

export function genericEnvName(section: string, key: string): string {
  return `${ENV_PREFIX}${section}_${key}`.toUpperCase();
}

function flatten(): KeySpec[] {
  const out: KeySpec[] = [];
  // The per-key typing of DEFINITION has done its job; iterate it through its common shape.
  const sections = Object.entries(DEFINITION) as unknown as [SectionName, Record<string, RawEntry>][];
  for (const [section, keys] of sections) {
    for (const [key, entry] of Object.entries(keys)) {
      out.push({
        section,
        key,
        path: `${section}.${key}`,
        type: entry.type,
        default: entry.default,
        description: entry.description,
        env: entry.fixed ? undefined : genericEnvName(section, key),
        // Upstream's ZISK_COORDINATOR_METRICS_PORT happens to be the generic name too: one variable.
        upstreamEnv: entry.upstreamEnv === genericEnvName(section, key) ? undefined : entry.upstreamEnv,
        cliFlag: entry.cliFlag,
        cliShort: entry.cliShort,
        fixed: entry.fixed,
      });
    }
  }
  return out;
}

/** Every key, in section order then declaration order (the order --print-config uses). */
export const CONFIG_KEYS: readonly KeySpec[] = flatten();

export const SECTIONS: readonly SectionName[] = Object.keys(DEFINITION) as SectionName[];

const BY_PATH = new Map(CONFIG_KEYS.map((k) => [k.path, k]));

export function findKey(section: string, key: string): KeySpec | undefined {
  return BY_PATH.get(`${section}.${key}`);
}

export function keyByPath(keyPath: string): KeySpec {
  const spec = BY_PATH.get(keyPath);
  if (!spec) throw new Error(`no such config key: ${keyPath}`);
  return spec;
}

export function isSection(name: string): name is SectionName {
  return (SECTIONS as readonly string[]).includes(name);
}

/** The effective default, with the version resolved. */
export function defaultValue(spec: KeySpec): ConfigValue {
  return spec.fixed && spec.path === 'service.version' ? packageVersion() : spec.default;
}

/**
 * Builds a Config from one value per key path. Callers pass a value for every key, which is what makes
 * the cast below sound (the schema covers every key of Config, checked at compile time).
 */
export function assembleConfig(values: ReadonlyMap<string, ConfigValue>): Config {
  const out: Record<string, Record<string, ConfigValue>> = {};
  for (const section of SECTIONS) out[section] = {};
  for (const spec of CONFIG_KEYS) {
    const v = values.has(spec.path) ? values.get(spec.path) : defaultValue(spec);
    if (v !== undefined) out[spec.section][spec.key] = v;
  }
  return out as unknown as Config;
}

export function defaultConfig(): Config {
  return assembleConfig(new Map());
}

/** Human text for "expected <what>" in validation errors. */
export function describeType(type: ValueType): string {
  switch (type.kind) {
    case 'string':
      return type.nonEmpty ? 'a non-empty string' : 'a string';
    case 'optional-string':
      return type.httpUrl ? 'an http(s) URL' : 'a string';
    case 'bool':
      return 'a boolean (true or false)';
    case 'enum':
      return `one of ${type.values.map((v) => `"${v}"`).join(', ')}`;
    case 'int':
      if (type.max >= Number.MAX_SAFE_INTEGER) return `an integer >= ${type.min}`;
      return `an integer between ${type.min} and ${type.max}`;
  }
}

function typeCell(type: ValueType): string {
  switch (type.kind) {
    case 'string':
      return type.nonEmpty ? 'string (non-empty)' : 'string';
    case 'optional-string':
      return type.httpUrl ? 'http(s) URL, optional' : 'string, optional';
    case 'bool':
      return 'bool';
    case 'enum':
      return type.values.map((v) => `\`${v}\``).join(' \\| ');
    case 'int':
      return type.max >= Number.MAX_SAFE_INTEGER ? `int ≥ ${type.min}` : `int ${type.min}–${type.max}`;
  }
}

function defaultCell(spec: KeySpec): string {
  if (spec.fixed) return 'package version (fixed)';
  if (spec.default === undefined) return 'unset';
  if (typeof spec.default === 'string') return `\`"${spec.default}"\``;
  return `\`${String(spec.default)}\``;
}

/** The configuration reference as a Markdown table, for the README. */
export function renderConfigReferenceMarkdown(): string {
  const escape = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = [
    '| Key | Type | Default | Environment | Flag | Description |',
    '|---|---|---|---|---|---|',
  ];
  for (const spec of CONFIG_KEYS) {
    const envs: string[] = [];
    if (spec.env) envs.push(`\`${spec.env}\``);
    if (spec.upstreamEnv) envs.push(`\`${spec.upstreamEnv}\` (upstream, wins)`);
    const flags = [spec.cliFlag, spec.cliShort].filter((f): f is string => f !== undefined).map((f) => `\`${f}\``);
    lines.push(
      `| \`${spec.section}.${spec.key}\` | ${typeCell(spec.type)} | ${defaultCell(spec)} | ${envs.join(', ') || '—'} | ${flags.join(', ') || '—'} | ${escape(spec.description)} |`,
    );
  }
  return lines.join('\n') + '\n';
}
