/**
 * Process entry: command line → configuration → coordinator. Exit codes are set through
 * process.exitCode so pending output is flushed before the process ends.
 */
import * as os from 'node:os';
import { parseCommandLine, PROGRAM_NAME } from './cli-args';
import { ConfigError, loadConfig, type LoadedConfig } from '../../shared/config/load';
import { renderConfigToml } from '../../shared/config/print';
import { prepareDirectories, type DirectoryStatus, type PreparedDirectories } from './directories';
import { describeSecurity, loadSecurity, type SecurityMaterial } from './security';

export async function main(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exitCode = parsed.code;
    return;
  }
  const { options } = parsed;

  const cwd = process.cwd();
  const homeDir = env.HOME || os.homedir();
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ cli: options, env, cwd, homeDir });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    reportConfigError(err);
    return;
  }

  if (options.printConfig) {
    writeWarnings(loaded.warnings);
    process.stdout.write(renderConfigToml(loaded));
    process.exitCode = 0;
    return;
  }

  // Before anything binds, and the same checks for --check-config: a directory that cannot be used
  // would otherwise only show when the first program is registered or the first proof is saved.
  let prepared: PreparedDirectories;
  try {
    prepared = prepareDirectories({ config: loaded.config, sources: loaded.sources, env, homeDir, cwd });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    writeWarnings(loaded.warnings);
    reportConfigError(err);
    return;
  }

  // The certificate, key, CA and token files likewise: one that cannot be used exits 78 naming it.
  const securityInput = { config: loaded.config, sources: loaded.sources, cwd };
  let security: SecurityMaterial;
  try {
    security = loadSecurity(securityInput);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    writeWarnings(loaded.warnings);
    reportConfigError(err);
    return;
  }

  if (options.checkConfig) {
    writeWarnings(loaded.warnings);
    const files = loaded.files.length > 0 ? loaded.files.join(', ') : 'no config file';
    process.stdout.write(
      `configuration OK (${files})\n${prepared.report.map(describeDirectory).join('')}${describeSecurity(security).map((l) => `${l}\n`).join('')}`,
    );
    process.exitCode = 0;
    return;
  }

  try {
    // Loaded only when serving: --help, --version and the config commands stay fast and keep working
    // without grpc-js, the scheduler and the rest of the server graph.
    const { runCoordinator } = await import('./app');
    // SIGHUP reads the configuration again exactly as here: same flags, variables and files.
    const reread = (): LoadedConfig => loadConfig({ cli: options, env, cwd, homeDir });
    process.exitCode = await runCoordinator(loaded, prepared.directories, { reread, env, security: { input: securityInput, material: security } });
  } catch (err) {
    // runCoordinator reports its own expected failures through the exit code; this is a bug path.
    process.stderr.write(`${PROGRAM_NAME}: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
}

function reportConfigError(err: ConfigError): void {
  writeWarnings(err.warnings);
  process.stderr.write(err.problems.map((p) => `${PROGRAM_NAME}: error: ${p}\n`).join(''));
  process.exitCode = err.exitCode;
}

function describeDirectory(d: DirectoryStatus): string {
  if (d.path === undefined) return `${d.label}: not used (${d.note ?? 'not needed'})\n`;
  const created = d.created.length > 0 ? ` (created ${d.created.join(', ')})` : '';
  return `${d.label} ${d.path} (${d.origin}): OK${created}\n`;
}

function writeWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`${PROGRAM_NAME}: warning: ${w}\n`);
}
