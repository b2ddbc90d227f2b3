/**
 * The effective configuration of a running coordinator: every section and key, fully resolved
 * (defaults < TOML < environment < command line). Field names are the TOML key names so the
 * object prints back as TOML without a mapping table.
 */
export type Environment = 'development' | 'staging' | 'production';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'pretty' | 'json' | 'compact';
export type BackendMode = 'coordinator' | 'mock';
export type StateBackend = 'embedded' | 'memory';

export interface ServiceConfig {
  name: string;
  /** Always the package version; cannot be set. */
  version: string;
  environment: Environment;
}

export interface ServerConfig {
  /** Bind address of the client API and the cluster (worker) servers. */
  host: string;
  /** Client API port. */
  port: number;
  shutdown_timeout_seconds: number;
  /** Max gRPC message size, both directions, both servers. */
  max_message_bytes: number;
  /** HTTP/2 receive window advertised per stream and per connection by both gRPC servers. */
  http2_window_bytes: number;
  /** Client API port keepalive pings; 0 = none. */
  keepalive_time_seconds: number;
  keepalive_timeout_seconds: number;
  /** PEM certificate chain both gRPC listeners present; set together with tls_key. Unset = plaintext. */
  tls_cert?: string;
  /** PEM private key of tls_cert. */
  tls_key?: string;
  /** A file holding the bearer token every client API call must carry; unset = no token. */
  api_token_file?: string;
}

export interface MetricsConfig {
  enabled: boolean;
  host: string;
  port: number;
}

export interface LoggingConfig {
  level: LogLevel;
  format: LogFormat;
  /** Optional log file, written in addition to stdout. */
  file_path?: string;
}

export interface BackendConfig {
  mode: BackendMode;
}

export interface CoordinatorConfig {
  /** Worker-facing (cluster) gRPC port. */
  port: number;
  /** Upstream's separate core tuning file; its [coordinator] table sits beneath the main file's. */
  config_file?: string;
  job_ttl_seconds: number;
  job_monitor_interval_seconds: number;
  phase1_timeout_seconds: number;
  phase2_timeout_seconds: number;
  phase3_timeout_seconds: number;
  execution_timeout_seconds: number;
  heartbeat_interval_seconds: number;
  heartbeat_max_missed: number;
  stale_disconnected_threshold_seconds: number;
  reconnect_grace_period_ms: number;
  default_compute_units: number;
  min_compute_units: number;
  max_total_workers: number;
  max_workers_per_job: number;
  webhook_url?: string;
  max_queued_jobs: number;
  queue_timeout_seconds: number;
  setup_timeout_seconds: number;
  max_retained_jobs: number;
  max_watchers_per_job: number;
  max_watchers: number;
  handshake_timeout_seconds: number;
  max_unregistered_streams: number;
  recovery_timeout_seconds: number;
  wrap_timeout_seconds: number;
  max_worker_queue_bytes: number;
  max_egress_bytes: number;
  inputs_dir?: string;
  cache_dir?: string;
  proofs_dir?: string;
  /** Attempts a job gets when infrastructure fails it (a lost worker, a phase timeout); 1 = no retry. */
  max_job_attempts: number;
  /** Worker port keepalive pings; 0 = none (the heartbeat covers liveness). */
  keepalive_time_seconds: number;
  keepalive_timeout_seconds: number;
  /** Run the scheduler core on its own worker thread (true) or on the main thread (false). */
  scheduler_thread: boolean;
  /** PEM CA bundle: the worker port then requires a client certificate signed by it (mutual TLS). */
  tls_client_ca?: string;
  /** Refuse a registration whose worker_id is not the client certificate's CN or a DNS/URI SAN. */
  bind_worker_id_to_cert: boolean;
}

export interface StateConfig {
  /** embedded: jobs survive restarts (an LMDB store in `dir`); memory: upstream's behaviour. */
  backend: StateBackend;
  /** Where the embedded store lives; unset = `<cache dir>/coordinator-state`. */
  dir?: string;
  /** Most bytes of pushed (`grpc://`) input or hints kept on disk per job, so a retry can replay them. */
  spool_max_bytes: number;
  /** Free space the store's filesystem keeps: below it new jobs are refused; 0 = no check. */
  min_free_bytes: number;
}

export interface Config {
  service: ServiceConfig;
  server: ServerConfig;
  metrics: MetricsConfig;
  logging: LoggingConfig;
  backend: BackendConfig;
  coordinator: CoordinatorConfig;
  state: StateConfig;
}

/** Where an effective value came from, for --print-config. */
export type ConfigSource =
  | { kind: 'default' }
  | { kind: 'file'; path: string }
  | { kind: 'legacy-file'; path: string }
  | { kind: 'env'; name: string }
  | { kind: 'cli'; flag: string };

/** The directories the process uses, resolved from the configuration and checked before anything binds. */
export interface Directories {
  /** ELFs and completed setups; undefined in mock mode (programs are kept in memory there). */
  cache: string | undefined;
  /** `[coordinator] proofs_dir`: proof files are written here; undefined when unset. */
  proofs: string | undefined;
  /** `[coordinator] inputs_dir`: file:// and unix:// inputs are read from under it, never written. */
  inputs: string | undefined;
  /** The directory of `[logging] file_path`, checked only: the logger opens the file by its setting. */
  logs: string | undefined;
  /** The durable job store; undefined with `[state] backend = "memory"` or in mock mode. */
  state: string | undefined;
}
