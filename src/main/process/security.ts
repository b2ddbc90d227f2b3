/**
 * The files of the opt-in protections (docs/security.md): the TLS certificate and key both gRPC
 * listeners serve, the CA bundle worker certificates must chain to, and the client API's bearer
 * token. Read and checked before anything binds (and by `--check-config`): a file that cannot be used
 * is a configuration error naming it (exit 78). SIGHUP reads them again (`reloadSecurity`): a part
 * whose files are bad keeps what it had, so a botched certificate rotation never takes a listener
 * down.
 *
 * No grpc-js here: `--check-config` stays light. The listeners turn this material into credentials
 * in tls-credentials.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { createHash, X509Certificate } from 'node:crypto';
import { ConfigError } from '../../shared/config/load';
import type { Config, ConfigSource } from '../../shared/config/types';

/** The certificate chain and key both listeners serve. */
export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate's validity end, for the log line. */
  notAfter: string;
  /** Files it came from (for messages). */
  files: { cert: string; key: string };
}

export interface ClientCaBundle {
  pem: Buffer;
  certificates: number;
  file: string;
}

export interface ApiTokenFile {
  /** SHA-256 of the token: only the fixed-length digest is kept and compared (api/auth.ts). */
  digest: Buffer;
  file: string;
}

export interface SecurityMaterial {
  tls?: TlsIdentity;
  clientCa?: ClientCaBundle;
  apiToken?: ApiTokenFile;
  bindWorkerIdToCert: boolean;
}

/** A file that cannot be used, with its setting and why. */
export class SecurityFileError extends Error {
  constructor(
    readonly setting: string,
    readonly file: string,
    readonly reason: string,
    origin: string,
  ) {
    super(`${setting} ${file}${origin ? ` (${origin})` : ''} is not usable: ${reason}`);
    this.name = 'SecurityFileError';
  }
}

interface Located {
  setting: string;
  file: string;
  origin: string;
}

function locate(config: Config, keyPath: string, cwd: string, sources: ReadonlyMap<string, ConfigSource> | undefined): Located | undefined {
  const [section, key] = keyPath.split('.') as [keyof Config, string];
  const value = (config[section] as unknown as Record<string, unknown>)[key];
  if (typeof value !== 'string') return undefined;
  return { setting: `[${section}] ${key}`, file: path.resolve(cwd, value), origin: originOf(sources?.get(keyPath)) };
}

function originOf(source: ConfigSource | undefined): string {
  switch (source?.kind) {
    case 'file':
      return `set in ${source.path}`;
    case 'legacy-file':
      return `set in legacy config_file ${source.path}`;
    case 'env':
      return `set by ${source.name}`;
    case 'cli':
      return `set by ${source.flag}`;
    default:
      return '';
  }
}

function readFile(at: Located): Buffer {
  try {
    return fs.readFileSync(at.file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SecurityFileError(at.setting, at.file, `cannot read it: ${e.message}`, at.origin);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, parsed; throws the reason when there is none or one is broken. */
function parseCertificates(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) in it');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of ${blocks.length} cannot be parsed: ${(err as Error).message}`);
    }
  });
}

function loadIdentity(certAt: Located, keyAt: Located): TlsIdentity {
  const cert = readFile(certAt);
  const key = readFile(keyAt);
  let leaf: X509Certificate;
  try {
    [leaf] = parseCertificates(cert);
  } catch (err) {
    throw new SecurityFileError(certAt.setting, certAt.file, (err as Error).message, certAt.origin);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new SecurityFileError(keyAt.setting, keyAt.file, 'no PEM private key (-----BEGIN … PRIVATE KEY-----) in it', keyAt.origin);
  }
  try {
    // What the listener will do with them: an encrypted key, or one that is not the certificate's,
    // fails here rather than on the first handshake.
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new SecurityFileError(keyAt.setting, keyAt.file, `does not go with ${certAt.file}: ${(err as Error).message}`, keyAt.origin);
  }
  return { cert, key, notAfter: leaf.validTo, files: { cert: certAt.file, key: keyAt.file } };
}

function loadClientCa(at: Located): ClientCaBundle {
  const pem = readFile(at);
  let certificates: X509Certificate[];
  try {
    certificates = parseCertificates(pem);
  } catch (err) {
    throw new SecurityFileError(at.setting, at.file, (err as Error).message, at.origin);
  }
  return { pem, certificates: certificates.length, file: at.file };
}

/** The token is the file's content without its trailing line break(s); it must fit an HTTP header. */
function loadToken(at: Located): ApiTokenFile {
  const token = readFile(at).toString('utf8').replace(/[\r\n]+$/, '');
  if (token === '') throw new SecurityFileError(at.setting, at.file, 'it is empty', at.origin);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new SecurityFileError(at.setting, at.file, 'the token must be printable ASCII without spaces (it travels in an HTTP/2 header)', at.origin);
  }
  return { digest: tokenDigest(token), file: at.file };
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

interface Locations {
  cert?: Located;
  key?: Located;
  ca?: Located;
  token?: Located;
}

export interface SecurityInput {
  config: Config;
  sources?: ReadonlyMap<string, ConfigSource>;
  /** Relative paths resolve against it, as directories do. */
  cwd: string;
}

/** The settings that go together, checked before any file is read. */
function locateAll(input: SecurityInput): Locations {
  const { config, cwd, sources } = input;
  const at: Locations = {
    cert: locate(config, 'server.tls_cert', cwd, sources),
    key: locate(config, 'server.tls_key', cwd, sources),
    ca: locate(config, 'coordinator.tls_client_ca', cwd, sources),
    token: locate(config, 'server.api_token_file', cwd, sources),
  };
  const problems: string[] = [];
  if ((at.cert === undefined) !== (at.key === undefined)) {
    problems.push(`[server] tls_cert and [server] tls_key must be set together (only ${at.cert ? 'tls_cert' : 'tls_key'} is set)`);
  }
  if (at.ca && !at.cert) problems.push('[coordinator] tls_client_ca needs TLS on the worker port: set [server] tls_cert and [server] tls_key too');
  if (config.coordinator.bind_worker_id_to_cert && !at.ca) {
    problems.push('[coordinator] bind_worker_id_to_cert needs client certificates: set [coordinator] tls_client_ca too');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return at;
}

/**
 * Reads and checks every configured file. Throws ConfigError (exit 78) naming each file that cannot
 * be used, and every misconfigured combination.
 */
export function loadSecurity(input: SecurityInput): SecurityMaterial {
  const at = locateAll(input);
  const material: SecurityMaterial = { bindWorkerIdToCert: input.config.coordinator.bind_worker_id_to_cert };
  const problems: string[] = [];
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof SecurityFileError)) throw err;
      problems.push(err.message);
    }
  };
  if (at.cert && at.key) attempt(() => (material.tls = loadIdentity(at.cert as Located, at.key as Located)));
  if (at.ca) attempt(() => (material.clientCa = loadClientCa(at.ca as Located)));
  if (at.token) attempt(() => (material.apiToken = loadToken(at.token as Located)));
  if (problems.length > 0) throw new ConfigError(problems);
  return material;
}

export interface ReloadOutcome {
  /** What to serve from now on: the new parts that loaded, the old ones where they did not. */
  material: SecurityMaterial;
  /** Parts re-read successfully ('tls', 'client CA', 'API token'). */
  reloaded: string[];
  /** One per part kept because its files were bad. */
  failures: SecurityFileError[];
}

/**
 * SIGHUP: the same files read again, each part on its own. The settings themselves are not re-read
 * (a protection is turned on or off by a restart), so the parts in use stay the parts in use.
 */
export function reloadSecurity(input: SecurityInput, current: SecurityMaterial): ReloadOutcome {
  const at = locateAll(input);
  const material: SecurityMaterial = { ...current };
  const reloaded: string[] = [];
  const failures: SecurityFileError[] = [];
  const attempt = (part: string, fn: () => void): void => {
    try {
      fn();
      reloaded.push(part);
    } catch (err) {
      if (!(err instanceof SecurityFileError)) throw err;
      failures.push(err);
    }
  };
  if (current.tls && at.cert && at.key) attempt('tls', () => (material.tls = loadIdentity(at.cert as Located, at.key as Located)));
  if (current.clientCa && at.ca) attempt('client CA', () => (material.clientCa = loadClientCa(at.ca as Located)));
  if (current.apiToken && at.token) attempt('API token', () => (material.apiToken = loadToken(at.token as Located)));
  return { material, reloaded, failures };
}

/** `--check-config` lines: what is on and from which files (nothing when every protection is off). */
export function describeSecurity(m: SecurityMaterial): string[] {
  const lines: string[] = [];
  if (!m.tls && !m.apiToken) return lines;
  if (m.tls) lines.push(`TLS on both gRPC listeners: ${m.tls.files.cert} + ${m.tls.files.key}: OK (certificate valid until ${m.tls.notAfter})`);
  else lines.push('TLS: off (both gRPC listeners are plaintext)');
  if (m.clientCa) {
    lines.push(
      `worker client certificates required, CA bundle ${m.clientCa.file}: OK (${m.clientCa.certificates} certificate(s))` +
        (m.bindWorkerIdToCert ? '; worker_id bound to the certificate' : ''),
    );
  }
  lines.push(m.apiToken ? `client API bearer token ${m.apiToken.file}: OK` : 'client API bearer token: off');
  return lines;
}
