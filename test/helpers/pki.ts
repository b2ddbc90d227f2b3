/**
 * Test certificates, made at test time with the `openssl` command line (Debian's `openssl` package;
 * .ci/run installs it) in a temp directory: nothing secret is ever committed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  /** A CA: its certificate and key. */
  newCa(name: string): CertFiles;
  /** A server certificate for localhost / 127.0.0.1 signed by `ca`. */
  serverCert(name: string, ca: CertFiles): CertFiles;
  /**
   * A client certificate signed by `ca` with subject CN `cn` and the given SANs (`DNS:x`, `URI:y`).
   * `expired`: valid only during the year 2001.
   */
  clientCert(name: string, ca: CertFiles, cn: string, opts?: { sans?: string[]; expired?: boolean }): CertFiles;
  read(file: string): Buffer;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Throws a clear error when the CLI is missing (the tests need it; .ci/run installs it). */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('these tests need the openssl command line (Debian: apt-get install openssl)');
  }
}

export function makePki(): Pki {
  requireOpenssl();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-pki-'));
  const file = (name: string): string => path.join(dir, name);
  const newKey = (name: string): string => {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file(`${name}.key`)], dir);
    return file(`${name}.key`);
  };
  let serial = 1;
  const sign = (name: string, ca: CertFiles, subject: string, ext: string, expired: boolean): CertFiles => {
    const key = newKey(name);
    openssl(['req', '-new', '-key', key, '-subj', subject, '-out', file(`${name}.csr`)], dir);
    fs.writeFileSync(file(`${name}.ext`), ext);
    if (!expired) {
      openssl(
        ['x509', '-req', '-in', file(`${name}.csr`), '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial++),
          '-days', '30', '-extfile', file(`${name}.ext`), '-out', file(`${name}.crt`)],
        dir,
      );
    } else {
      // `x509 -req` cannot backdate in OpenSSL 3.0; `ca` can, with a throwaway database.
      const db = file(`${name}-db`);
      fs.mkdirSync(db);
      fs.writeFileSync(path.join(db, 'index.txt'), '');
      fs.writeFileSync(path.join(db, 'serial'), `${String(serial++).padStart(2, '0')}\n`);
      fs.writeFileSync(
        path.join(db, 'ca.cnf'),
        ['[ca]', 'default_ca = d', '[d]', `dir = ${db}`, 'database = $dir/index.txt', 'serial = $dir/serial',
          'new_certs_dir = $dir', 'default_md = sha256', 'policy = p', 'unique_subject = no', '[p]', 'commonName = supplied', ''].join('\n'),
      );
      openssl(
        ['ca', '-batch', '-notext', '-config', path.join(db, 'ca.cnf'), '-cert', ca.cert, '-keyfile', ca.key, '-in', file(`${name}.csr`),
          '-startdate', '20010101000000Z', '-enddate', '20011231000000Z', '-extfile', file(`${name}.ext`), '-out', file(`${name}.crt`)],
        dir,
      );
    }
    return { cert: file(`${name}.crt`), key };
  };
  return {
    dir,
    newCa(name) {
      const key = newKey(name);
      openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '30', '-out', file(`${name}.crt`)], dir);
      return { cert: file(`${name}.crt`), key };
    },
    serverCert(name, ca) {
      const ext = 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n';
      return sign(name, ca, `/CN=${name}`, ext, false);
    },
    clientCert(name, ca, cn, opts = {}) {
      const sans = opts.sans ?? [];
      const ext = `basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n${sans.length > 0 ? `subjectAltName=${sans.join(',')}\n` : ''}`;
      return sign(name, ca, `/CN=${cn}`, ext, opts.expired ?? false);
    },
    read: (f) => fs.readFileSync(f),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
