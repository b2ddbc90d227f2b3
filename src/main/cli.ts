/**
 * Process entry: command line → configuration → coordinator. Exit codes are set through
 * process.exitCode so pending output is flushed before the process ends.
 */
import * as os from 'node:os';
import { parseCommandLine, PROGRAM_NAME } from './cli-args';
import { ConfigError, loadConfig, type LoadedConfig } from '../shared/config/load';
import { renderConfigToml } from '../shared/config/print';

export async function main(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exitCode = parsed.code;
    return;
  }
  const { options } = parsed;

  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ cli: options, env, cwd: process.cwd(), homeDir: env.HOME || os.homedir() });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    writeWarnings(err.warnings);
    process.stderr.write(err.problems.map((p) => `${PROGRAM_NAME}: error: ${p}\n`).join(''));
    process.exitCode = err.exitCode;
    return;
  }

  if (options.printConfig) {
    writeWarnings(loaded.warnings);
    process.stdout.write(renderConfigToml(loaded));
    process.exitCode = 0;
    return;
  }
  if (options.checkConfig) {
    writeWarnings(loaded.warnings);
    const files = loaded.files.length > 0 ? loaded.files.join(', ') : 'no config file';
    process.stdout.write(`configuration OK (${files})\n`);
    process.exitCode = 0;
    return;
  }

  try {
    // Loaded only when serving: --help, --version and the config commands stay fast and keep working
    // without grpc-js, the scheduler and the rest of the server graph.
    const { runCoordinator } = await import('./app');
    process.exitCode = await runCoordinator(loaded);
  } catch (err) {
    // runCoordinator reports its own expected failures through the exit code; this is a bug path.
    process.stderr.write(`${PROGRAM_NAME}: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
}

function writeWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`${PROGRAM_NAME}: warning: ${w}\n`);
}
