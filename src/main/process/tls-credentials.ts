/**
 * Server credentials whose certificate, key and CA can be replaced while the listener runs
 * (docs/security.md, Rotating certificates). grpc-js's `ServerCredentials` keeps the secure context
 * options and hands every update to the HTTP/2 servers built from it, which call
 * `setSecureContext`: new handshakes use the new material, established connections keep theirs.
 * `createSsl` offers no way to update; the protected `updateSecureContextOptions` of its base class
 * is that way, so this subclass exposes it.
 *
 * grpc-js turns a context it cannot apply into "refuse every new connection". Callers therefore
 * build the context once themselves first (`checkedContext`), so only material Node accepts is ever
 * handed over, and a bad reload leaves the previous material in place.
 */
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ClientCaBundle, TlsIdentity } from './security';

export interface TlsContextInput {
  identity: TlsIdentity;
  /** Present on the worker port with mutual TLS: the CA bundle client certificates must chain to. */
  clientCa?: ClientCaBundle;
}

function contextOptions(input: TlsContextInput): tls.SecureContextOptions {
  return {
    cert: input.identity.cert,
    key: input.identity.key,
    ...(input.clientCa ? { ca: input.clientCa.pem } : {}),
  };
}

/** Builds the context as the listener will; throws what Node would throw there. */
export function checkedContext(input: TlsContextInput): tls.SecureContextOptions {
  const options = contextOptions(input);
  tls.createSecureContext(options);
  return options;
}

export class ReloadableServerCredentials extends grpc.ServerCredentials {
  /**
   * `requireClientCert`: the handshake fails without a client certificate that chains to the CA
   * bundle (Node checks it, `rejectUnauthorized`), so such a peer never opens a stream.
   */
  constructor(input: TlsContextInput, requireClientCert: boolean) {
    super(
      requireClientCert ? { requestCert: true, rejectUnauthorized: true } : { requestCert: false },
      checkedContext(input),
    );
  }

  /** New material for new connections; throws (changing nothing) if Node cannot use it. */
  update(input: TlsContextInput): void {
    this.updateSecureContextOptions(checkedContext(input));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}
