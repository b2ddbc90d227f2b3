/**
 * Command-line parsing. Returns what to do instead of exiting, so main() owns the process and tests can
 * call it directly. Usage errors map to exit 2 (commander would use 1, which we keep for runtime errors).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { LogLevel } from '../../shared/config/types';
import type { CliOverrides } from '../../shared/config/load';
import { CONFIG_FILE_ENV, keyByPath, packageVersion, type KeySpec } from '../../shared/config/schema';

export interface CliOptions extends CliOverrides {
  printConfig: boolean;
  checkConfig: boolean;
}

export type CommandLine =
  | { kind: 'run'; options: CliOptions }
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string };

export const PROGRAM_NAME = 'zisk-coordinator';
export const EXIT_USAGE = 2;

const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

function parsePort(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError('Expected an integer from 0 to 65535.');
  }
  return Number(value);
}

function parseLogLevel(value: string): LogLevel {
  const level = value.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InvalidArgumentError(`Allowed levels: ${LOG_LEVELS.join(', ')}.`);
  }
  return level as LogLevel;
}

/** "(env: A, B; default: x)", taken from the schema so help and behaviour cannot drift apart. */
function origins(spec: KeySpec, extraEnv: string[] = []): string {
  const envs = [spec.upstreamEnv, spec.env, ...extraEnv].filter((e): e is string => e !== undefined);
  return `[${spec.section}] ${spec.key}; env: ${envs.join(', ')}; default: ${String(spec.default)}`;
}

function portOption(keyPath: string, flags: string, what: string): Option {
  return new Option(flags, `${what} (${origins(keyByPath(keyPath))})`).argParser(parsePort);
}

const AFTER_HELP = `
Configuration precedence (later wins):
  built-in defaults < TOML file(s) < environment variables < command-line flags

Config files:
  --config <path> or ${CONFIG_FILE_ENV} selects exactly one file, which must exist.
  Otherwise each of these that exists is read, in this order, later files winning key by key:
    /etc/zisk/coordinator.toml
    $XDG_CONFIG_HOME/zisk/coordinator.toml (default ~/.config/zisk/coordinator.toml)
    ./coordinator.toml

Environment:
  Every TOML key also has the name ZISK_COORDINATOR_<SECTION>_<KEY>, for example
  ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS or ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS.
  The upstream names ZISK_COORDINATOR_API_PORT, ZISK_COORDINATOR_CLUSTER_PORT,
  ZISK_COORDINATOR_METRICS_PORT and RUST_LOG win over the generic ones.
  RUST_LOG sets the level of its directive for zisk targets (info,zisk=debug -> debug), else its
  global level.
  Use --print-config to see every key, its value and where the value came from.

Exit codes:
  0 success, 1 runtime error (e.g. a port in use), 2 usage error, 70 internal error,
  74 a write to the job store failed (e.g. disk full), 78 configuration error
`;

function buildProgram(out: { stdout: string; stderr: string }): Command {
  const program = new Command(PROGRAM_NAME)
    .usage('[OPTIONS]')
    .description('ZisK cluster coordinator: accepts proof requests from clients and fans work out to workers.')
    .helpOption('-h, --help', 'Print help')
    .addOption(new Option('--config <path>', `TOML config file; replaces the search for well-known files (env: ${CONFIG_FILE_ENV})`))
    .addOption(portOption('server.port', '-a, --api-port <port>', 'Client API gRPC port'))
    .addOption(portOption('coordinator.port', '--cluster-port <port>', 'Worker-facing gRPC port'))
    .addOption(portOption('metrics.port', '--metrics-port <port>', 'Metrics and /health HTTP port'))
    .addOption(
      new Option('--log-level <level>', `Log level: ${LOG_LEVELS.join(', ')} (${origins(keyByPath('logging.level'))})`)
        .argParser(parseLogLevel),
    )
    .addOption(new Option('--print-config', 'Print the effective configuration as TOML, with the source of each value, and exit').conflicts('checkConfig'))
    .addOption(new Option('--check-config', 'Validate the configuration and exit'))
    .addOption(new Option('--strict', 'Treat unknown configuration keys as errors (exit 78), with --check-config or at start'))
    .version(`${PROGRAM_NAME} ${packageVersion()}`, '-V, --version', 'Print version')
    .addHelpText('after', AFTER_HELP)
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => {
        out.stdout += s;
      },
      writeErr: (s) => {
        out.stderr += s;
      },
      // Errors are rendered by parseCommandLine from the CommanderError, in our own format.
      outputError: () => undefined,
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    });
  return program;
}

/** Parses the user arguments (argv without node and script). Never exits the process. */
export function parseCommandLine(argv: string[]): CommandLine {
  const out = { stdout: '', stderr: '' };
  const program = buildProgram(out);
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      return withText({ kind: 'exit', code: 0 }, out);
    }
    const message = err.message.replace(/^error: /, '');
    return {
      kind: 'exit',
      code: EXIT_USAGE,
      stderr: `${PROGRAM_NAME}: error: ${message}\nTry '${PROGRAM_NAME} --help' for more information.\n`,
    };
  }
  const opts = program.opts<{
    config?: string;
    apiPort?: number;
    clusterPort?: number;
    metricsPort?: number;
    logLevel?: LogLevel;
    printConfig?: boolean;
    checkConfig?: boolean;
    strict?: boolean;
  }>();
  const options: CliOptions = { printConfig: opts.printConfig === true, checkConfig: opts.checkConfig === true };
  if (opts.config !== undefined) options.config = opts.config;
  if (opts.apiPort !== undefined) options.apiPort = opts.apiPort;
  if (opts.clusterPort !== undefined) options.clusterPort = opts.clusterPort;
  if (opts.metricsPort !== undefined) options.metricsPort = opts.metricsPort;
  if (opts.logLevel !== undefined) options.logLevel = opts.logLevel;
  if (opts.strict === true) options.strict = true;
  return { kind: 'run', options };
}

function withText(result: { kind: 'exit'; code: number }, out: { stdout: string; stderr: string }): CommandLine {
  const r: CommandLine = { ...result };
  if (out.stdout) r.stdout = out.stdout;
  if (out.stderr) r.stderr = out.stderr;
  return r;
}
