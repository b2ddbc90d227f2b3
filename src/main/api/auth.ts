/**
 * The client API's bearer token (docs/security.md, Client API token): every call must carry
 * `authorization: Bearer <token>`, checked before its handler runs; the gRPC health service stays
 * open so probes need no secret. Installed only when a token is configured: without one there is no
 * interceptor and no per-call cost.
 *
 * Only the token's SHA-256 is kept, and the presented token is hashed too: the comparison is between
 * two 32-byte digests in constant time, so neither the token's length nor its prefix leaks through
 * timing.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { apiErrors } from '../../shared/errors';
import { toServiceError } from './grpc-errors';

/** Calls on these services need no token. */
const OPEN_SERVICE_PREFIX = '/grpc.health.v1.Health/';
const BEARER = /^bearer +(\S+)\s*$/i;

export type TokenVerdict = 'ok' | 'missing' | 'invalid';

/** The expected token's digest; replaced on SIGHUP, read on every call. */
export class ApiToken {
  constructor(private digest: Buffer) {}

  replace(digest: Buffer): void {
    this.digest = digest;
  }

  /** Checks the `authorization` metadata values of a call. */
  check(values: grpc.MetadataValue[]): TokenVerdict {
    if (values.length === 0) return 'missing';
    // More than one authorization header is not a bearer credential (RFC 6750 §2.1 allows one).
    if (values.length > 1) return 'invalid';
    const value = values[0];
    if (typeof value !== 'string') return 'invalid';
    const m = BEARER.exec(value);
    if (!m) return 'invalid';
    const presented = createHash('sha256').update(m[1], 'utf8').digest();
    return timingSafeEqual(presented, this.digest) ? 'ok' : 'invalid';
  }
}

/**
 * The interceptor: a call without the right token ends with UNAUTHENTICATED before its handler
 * starts (and before any of its messages is read); `refused` records it (method name, verdict).
 */
export function bearerTokenInterceptor(token: ApiToken, refused: (method: string, verdict: Exclude<TokenVerdict, 'ok'>) => void): grpc.ServerInterceptor {
  return (descriptor, call) => {
    if (descriptor.path.startsWith(OPEN_SERVICE_PREFIX)) return new grpc.ServerInterceptingCall(call);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const verdict = token.check(metadata.get('authorization'));
            if (verdict === 'ok') {
              mdNext(metadata);
              return;
            }
            const method = descriptor.path.slice(descriptor.path.lastIndexOf('/') + 1);
            refused(method, verdict);
            const err = toServiceError(apiErrors.unauthenticated(verdict === 'missing' ? 'missing bearer token' : 'invalid bearer token'));
            call.sendStatus({ code: err.code, details: err.details, metadata: err.metadata });
          },
        });
      },
    });
  };
}
