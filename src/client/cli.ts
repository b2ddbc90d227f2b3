/**
 * `zisk-prove-client`: submit and follow jobs from a shell, as upstream's command of the same name
 * does (same command names and flags, same `--coordinator` URL and `ZISK_COORDINATOR_URL`), plus
 * `status`, `watch`, `wrap`, pushed input, `--json` for scripts and exit codes that say how the job
 * ended (docs/client.md).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../shared/config/schema';
import { CoordinatorApiClient, Unreachable, type ClientSecurity, type InputKind, type JobKindResponseMsg, type WaitResultMsg } from './api-client';
import { Reporter } from './report';

export const CLIENT_NAME = 'zisk-prove-client';

/** How the command ended (docs/client.md, Exit codes). */
export const CLIENT_EXIT = {
  ok: 0,
  jobFailed: 1,
  usage: 2,
  jobCancelled: 3,
  refused: 4,
  unreachable: 69,
} as const;

const PROOF_KINDS: Record<string, number> = { stark: 1, 'stark-minimal': 2, stark_minimal: 2, minimal: 2, plonk: 3 };
const PROOF_KIND_NAMES: Record<number, string> = { 1: 'stark', 2: 'stark-minimal', 3: 'plonk' };
const GRPC_UNAVAILABLE = 14;

interface GlobalOptions {
  coordinator: string;
  api?: string;
  json: boolean;
  connectTimeout: number;
  requestTimeout: number;
  tls: boolean;
  tlsCa?: string;
  tlsServerName?: string;
  tokenFile?: string;
}

function parseProofKind(value: string): number {
  const kind = PROOF_KINDS[value.toLowerCase()];
  if (kind === undefined) throw new InvalidArgumentError('Use stark, stark-minimal or plonk.');
  return kind;
}

function parseSeconds(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('Expected a whole number of seconds.');
  return Number(value);
}

/** `http://host:port` (upstream's form), `host:port` or `:port` → the address grpc-js dials. */
export function addressOf(url: string): string {
  const m = /^(?:https?:\/\/)?([^/]*?)\/?$/.exec(url.trim());
  const hostPort = m?.[1] ?? '';
  if (!/^(\[[0-9a-fA-F:]+\]|[^:[\]]*):[0-9]{1,5}$/.test(hostPort)) {
    throw new InvalidArgumentError(`'${url}' is not a coordinator address: use http://host:port or host:port`);
  }
  return hostPort.startsWith(':') ? `localhost${hostPort}` : hostPort;
}

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageProblem(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A pushed input is a sequence of 64-bit words (docs/client.md, Inputs): a file that is not cannot be sent. */
function checkStreamFile(file: string): void {
  let size: number;
  try {
    fs.accessSync(file, fs.constants.R_OK);
    size = fs.statSync(file).size;
  } catch (err) {
    throw new UsageProblem(`cannot read input ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (size % 8 !== 0) throw new UsageProblem(`input ${file} is ${size} bytes: a pushed input must be a whole number of 8-byte words`);
}

function deadlineOf(seconds: number | undefined): object {
  if (!seconds) return {};
  const at = Date.now() + seconds * 1000;
  return { seconds: String(Math.floor(at / 1000)), nanos: (at % 1000) * 1e6 };
}

interface ProgramChoice {
  hashId?: string;
  elf?: string;
}

function securityOf(g: GlobalOptions): ClientSecurity {
  const out: ClientSecurity = {};
  if (g.tls || g.tlsCa !== undefined || /^https:\/\//.test(g.api ?? g.coordinator)) {
    out.tls = {};
    if (g.tlsCa !== undefined) out.tls.ca = readFile(g.tlsCa, 'CA bundle');
    if (g.tlsServerName !== undefined) out.tls.serverName = g.tlsServerName;
  }
  if (g.tokenFile !== undefined) {
    const token = readFile(g.tokenFile, 'token file').toString('utf8').replace(/\r?\n$/, '');
    if (token === '') throw new UsageProblem(`token file ${g.tokenFile} is empty`);
    out.token = token;
  }
  return out;
}

/** A problem with what the user asked, found before anything was sent (exit 2). */
class UsageProblem extends Error {}

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export async function runClient(argv: readonly string[], io: Io): Promise<number> {
  let exitCode: number = CLIENT_EXIT.ok;
  const program = new Command(CLIENT_NAME)
    .description('Submit jobs to a ZisK coordinator and follow them.')
    .version(packageVersion())
    .addOption(new Option('--coordinator <url>', 'client API of the coordinator').env('ZISK_COORDINATOR_URL').default('http://localhost:7000'))
    .option('--api <host:port>', 'the same, as host:port (wins over --coordinator)')
    .option('--json', 'machine-readable output: one JSON object per line', false)
    .addOption(new Option('--connect-timeout <seconds>', 'give up connecting after this long').argParser(parseSeconds).default(10))
    .addOption(new Option('--request-timeout <seconds>', 'deadline of each unary call').argParser(parseSeconds).default(60))
    .option('--tls', 'connect with TLS (implied by an https:// coordinator URL or --tls-ca)', false)
    .option('--tls-ca <file>', 'CA bundle (PEM) that signed the coordinator\'s certificate (default: the system\'s roots)')
    .option('--tls-server-name <name>', 'name to check the coordinator\'s certificate against (default: the host)')
    .addOption(new Option('--token-file <file>', 'file holding the client API token ([server] api_token_file)').env('ZISK_COORDINATOR_TOKEN_FILE'))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');

  const session = async <T>(fn: (client: CoordinatorApiClient, report: Reporter) => Promise<T>): Promise<T> => {
    const g = program.opts<GlobalOptions>();
    const address = addressOf(g.api ?? g.coordinator);
    const report = new Reporter(io.stdout, io.stderr, g.json);
    const client = new CoordinatorApiClient(address, g.requestTimeout * 1000, securityOf(g));
    try {
      await client.connect(g.connectTimeout * 1000);
      return await fn(client, report);
    } finally {
      client.close();
    }
  };

  /** Submits a job, follows it (unless detached) and reports how it ended. */
  const runJob = async (client: CoordinatorApiClient, report: Reporter, what: string, jobKind: object, opts: { detach?: boolean; push?: string; out?: (r: JobKindResponseMsg, jobId: string) => void }): Promise<number> => {
    const jobId = await client.submit(jobKind);
    report.submitted(what, jobId);
    if (opts.detach) return CLIENT_EXIT.ok;
    let pushFailure: Error | undefined;
    const pushing = opts.push
      ? client.pushInput(jobId, opts.push).catch(async (err: Error) => {
          // Nobody else will feed this job: cancel it rather than leave it waiting for input.
          pushFailure = err;
          report.note(`pushing ${opts.push} failed: ${(err as Partial<grpc.ServiceError>).details ?? err.message}; cancelling job ${jobId}`);
          await client.cancel(jobId).catch(() => undefined);
        })
      : undefined;
    const watching = client.watch(jobId, (e) => report.event(jobId, e)).catch(() => undefined);
    const result = await client.waitTerminal(jobId);
    await Promise.all([watching, pushing]);
    if (pushFailure) return CLIENT_EXIT.refused;
    return finish(report, result, opts.out);
  };

  const finish = (report: Reporter, r: WaitResultMsg, out?: (result: JobKindResponseMsg, jobId: string) => void): number => {
    if (r.job_status.status === 'completed' && r.result && out) out(r.result, r.job_id);
    report.terminal(r);
    if (r.job_status.status === 'failed') return CLIENT_EXIT.jobFailed;
    if (r.job_status.status === 'cancelled') return CLIENT_EXIT.jobCancelled;
    return CLIENT_EXIT.ok;
  };

  program
    .command('register')
    .description('register an ELF and print its hash_id')
    .argument('[elf]', 'the guest program (ELF file)')
    .option('-e, --elf <file>', 'the same, as upstream spells it')
    .action(async (elfArg: string | undefined, o: { elf?: string }) => {
      const file = o.elf ?? elfArg;
      if (!file) throw new UsageProblem('register needs an ELF file');
      const elf = readFile(file, 'ELF');
      exitCode = await session(async (client, report) => {
        report.registered(await client.register(elf), file, elf.length);
        return CLIENT_EXIT.ok;
      });
    });

  program
    .command('setup')
    .description('run setup for a program (registering its ELF first when given one)')
    .argument('[hash]', 'hash_id of a registered program')
    .option('-e, --elf <file>', 'register this ELF first and set it up')
    .option('--with-hints', 'enable hints for this program', false)
    .option('--name <name>', 'program name (default: the ELF file name)')
    .option('--detach', 'print the job id and return without waiting', false)
    .action(async (hashArg: string | undefined, o: { elf?: string; withHints: boolean; name?: string; detach: boolean }) => {
      if (!hashArg && !o.elf) throw new UsageProblem('setup needs a hash_id or --elf <file>');
      const elf = o.elf ? readFile(o.elf, 'ELF') : undefined;
      exitCode = await session(async (client, report) => {
        let hashId = hashArg ?? '';
        if (elf && o.elf) {
          hashId = await client.register(elf);
          report.registered(hashId, o.elf, elf.length);
        }
        const name = o.name ?? (o.elf ? path.parse(o.elf).name : hashId.slice(0, 12));
        return runJob(client, report, 'setup', { setup: { hash_id: hashId, with_hints: o.withHints, program_name: name } }, { detach: o.detach });
      });
    });

  /** The program a job runs: a hash_id as given, or an ELF registered first (registering is idempotent). */
  const programOf = (command: string, hashArg: string | undefined, o: ProgramChoice): ((client: CoordinatorApiClient, report: Reporter) => Promise<string>) => {
    const hashId = o.hashId ?? hashArg;
    if (hashId && o.elf) throw new UsageProblem(`${command} takes a hash_id or --elf, not both`);
    if (hashId) return () => Promise.resolve(hashId);
    if (!o.elf) throw new UsageProblem(`${command} needs a hash_id or --elf <file>`);
    const file = o.elf;
    const elf = readFile(file, 'ELF');
    return async (client, report) => {
      const registered = await client.register(elf);
      report.registered(registered, file, elf.length);
      return registered;
    };
  };

  const inputOf = (o: { input?: string; inputStream?: string }): { input: InputKind; push?: string } => {
    if (o.input && o.inputStream) throw new UsageProblem('give --input or --input-stream, not both');
    if (o.inputStream) {
      checkStreamFile(o.inputStream); // fail now, not halfway through the job
      return { input: { stream_uri: 'grpc://push' }, push: o.inputStream };
    }
    return { input: { inline: { data: o.input ? readFile(o.input, 'input') : Buffer.alloc(0) } } };
  };
  const hintsOf = (file: string | undefined): object => (file ? { hints: { inline: { data: readFile(file, 'hints') } } } : {});
  const writeOut = (file: string, data: Buffer, report: Reporter, what: string): void => {
    fs.writeFileSync(file, data);
    report.saved(what, file, data.length);
  };

  program
    .command('prove')
    .description('prove a program run on an input')
    .argument('[hash]', 'hash_id of a registered, set-up program')
    .option('-H, --hash-id <hash>', 'the same, as upstream spells it')
    .option('-e, --elf <file>', 'instead of a hash_id: the program\'s ELF (registered if it is not yet)')
    .option('-i, --input <file>', 'input data, sent inline in the request')
    .option('--input-stream <file>', 'input data, pushed as a stream (for big inputs)')
    .option('--hints <file>', 'hints data, sent inline')
    .addOption(new Option('--proof <kind>', 'stark, stark-minimal or plonk').argParser(parseProofKind).default(1, 'stark'))
    .option('-o, --output <file>', 'where the proof goes (default <job id>.proof.bin)')
    .addOption(new Option('--timeout <seconds>', 'fail the job if not done by then (0 = no limit)').argParser(parseSeconds).default(0))
    .option('--detach', 'print the job id and return without waiting', false)
    .action(async (hashArg: string | undefined, o: ProgramChoice & { input?: string; inputStream?: string; hints?: string; proof: number; output?: string; timeout: number; detach: boolean }) => {
      const program = programOf('prove', hashArg, o);
      const { input, push } = inputOf(o);
      const request = (hashId: string): object => ({ prove: { hash_id: hashId, input, proof_dest: o.proof, ...hintsOf(o.hints), ...(o.timeout ? { proof_timeout: deadlineOf(o.timeout) } : {}) } });
      exitCode = await session(async (client, report) =>
        runJob(client, report, `prove (${PROOF_KIND_NAMES[o.proof]})`, request(await program(client, report)), {
          detach: o.detach,
          push,
          out: (r, jobId) => {
            const proof = r.prove?.proof ?? r.wrap?.proof;
            if (!proof) return;
            const file = path.resolve(io.cwd, o.output ?? `${jobId}.proof.bin`);
            writeOut(file, Buffer.from(proof.data), report, 'proof');
            if (proof.public_inputs.length > 0) writeOut(file.replace(/(\.bin)?$/, '.public_inputs.bin'), Buffer.from(proof.public_inputs), report, 'public inputs');
          },
        }),
      );
    });

  program
    .command('execute')
    .description('run a program on an input without proving it')
    .argument('[hash]', 'hash_id of a registered program')
    .option('-H, --hash-id <hash>', 'the same, as upstream spells it')
    .option('-e, --elf <file>', 'instead of a hash_id: the program\'s ELF (registered if it is not yet)')
    .option('-i, --input <file>', 'input data, sent inline')
    .option('--input-stream <file>', 'input data, pushed as a stream')
    .option('--hints <file>', 'hints data, sent inline')
    .option('-o, --output <file>', 'where the public outputs go')
    .addOption(new Option('--timeout <seconds>', 'fail the job if not done by then (0 = no limit)').argParser(parseSeconds).default(0))
    .option('--detach', 'print the job id and return without waiting', false)
    .action(async (hashArg: string | undefined, o: ProgramChoice & { input?: string; inputStream?: string; hints?: string; output?: string; timeout: number; detach: boolean }) => {
      const program = programOf('execute', hashArg, o);
      const { input, push } = inputOf(o);
      const request = (hashId: string): object => ({ execute: { hash_id: hashId, input, ...hintsOf(o.hints), ...(o.timeout ? { execute_timeout: deadlineOf(o.timeout) } : {}) } });
      exitCode = await session(async (client, report) =>
        runJob(client, report, 'execute', request(await program(client, report)), {
          detach: o.detach,
          push,
          out: (r) => {
            if (o.output && r.execute) writeOut(path.resolve(io.cwd, o.output), Buffer.from(r.execute.public_outputs), report, 'public outputs');
          },
        }),
      );
    });

  program
    .command('wrap')
    .description('wrap a proof into another kind (stark → stark-minimal or plonk)')
    .requiredOption('--proof-file <file>', 'the proof to wrap (as saved by prove)')
    .addOption(new Option('--from <kind>', 'kind of that proof').argParser(parseProofKind).default(1, 'stark'))
    .addOption(new Option('--to <kind>', 'kind wanted').argParser(parseProofKind).default(3, 'plonk'))
    .option('--proof-id <uuid>', 'proof_id of that proof (default: a new one)')
    .option('-o, --output <file>', 'where the wrapped proof goes (default <job id>.proof.bin)')
    .option('--detach', 'print the job id and return without waiting', false)
    .action(async (o: { proofFile: string; from: number; to: number; proofId?: string; output?: string; detach: boolean }) => {
      const data = readFile(o.proofFile, 'proof');
      const proof = { proof_id: o.proofId ?? randomUUID(), hash_id: '', proof_kind: o.from, data };
      exitCode = await session((client, report) =>
        runJob(client, report, `wrap (${PROOF_KIND_NAMES[o.from]} → ${PROOF_KIND_NAMES[o.to]})`, { wrap: { proof, proof_dest: o.to } }, {
          detach: o.detach,
          out: (r, jobId) => {
            if (r.wrap) writeOut(path.resolve(io.cwd, o.output ?? `${jobId}.proof.bin`), Buffer.from(r.wrap.proof.data), report, 'wrapped proof');
          },
        }),
      );
    });

  program
    .command('status')
    .description("print a job's status now")
    .argument('<job>', 'job id')
    .action(async (jobId: string) => {
      exitCode = await session(async (client, report) => {
        const r = await client.wait(jobId, 0);
        report.status(r);
        if (r.job_status.status === 'failed') return CLIENT_EXIT.jobFailed;
        if (r.job_status.status === 'cancelled') return CLIENT_EXIT.jobCancelled;
        return CLIENT_EXIT.ok;
      });
    });

  program
    .command('watch')
    .description("follow a job's events until it ends")
    .argument('<job>', 'job id')
    .action(async (jobId: string) => {
      exitCode = await session(async (client, report) => {
        report.following(jobId);
        await client.watch(jobId, (e) => report.event(jobId, e));
        return finish(report, await client.wait(jobId, 0));
      });
    });

  program
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('[job]', 'job id')
    .option('-j, --job-id <job>', 'the same, as upstream spells it')
    .action(async (jobArg: string | undefined, o: { jobId?: string }) => {
      const jobId = o.jobId ?? jobArg;
      if (!jobId) throw new UsageProblem('cancel needs a job id');
      exitCode = await session(async (client, report) => {
        report.cancelled(jobId, await client.cancel(jobId));
        return CLIENT_EXIT.ok;
      });
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    return exitCodeOf(err, io.stderr);
  }
}

function exitCodeOf(err: unknown, stderr: NodeJS.WritableStream): number {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with code 0
    return err.exitCode === 0 ? CLIENT_EXIT.ok : CLIENT_EXIT.usage;
  }
  if (err instanceof UsageProblem || err instanceof InvalidArgumentError) {
    stderr.write(`${CLIENT_NAME}: ${err.message}\n`);
    return CLIENT_EXIT.usage;
  }
  if (err instanceof Unreachable) {
    stderr.write(`${CLIENT_NAME}: ${err.message}\n`);
    return CLIENT_EXIT.unreachable;
  }
  const status = err as Partial<grpc.ServiceError>;
  if (typeof status.code === 'number') {
    stderr.write(`${CLIENT_NAME}: the coordinator refused the request: ${status.details ?? status.message}\n`);
    return status.code === GRPC_UNAVAILABLE && /No connection established|Connection dropped|ECONNREFUSED/.test(status.details ?? '') ? CLIENT_EXIT.unreachable : CLIENT_EXIT.refused;
  }
  stderr.write(`${CLIENT_NAME}: ${err instanceof Error ? err.message : String(err)}\n`);
  return CLIENT_EXIT.refused;
}

export function main(): void {
  void runClient(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }).then((code) => {
    process.exitCode = code;
  });
}
