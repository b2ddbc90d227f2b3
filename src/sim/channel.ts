/** The gRPC side of a sim worker's connection: the `WorkerStream` method and the channel options. */
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../shared/proto';
import type { CoordinatorMessageIn, WorkerMessageOut } from './messages';
import type { SimWorkerOptions } from './options';
import { decodeChallenges, walkProofList } from './wire';

export interface StreamMethod {
  path: string;
  serialize: (msg: WorkerMessageOut | Buffer) => Buffer;
  deserialize: (buf: Buffer) => CoordinatorMessageIn;
}

let streamMethod: StreamMethod | undefined;

/** The `WorkerStream` method of the relay view; a Buffer argument is written as already encoded. */
export function workerStreamMethod(): StreamMethod {
  if (!streamMethod) {
    const m = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE).WorkerStream;
    const ser = m.requestSerialize;
    const de = m.responseDeserialize;
    streamMethod = {
      path: m.path,
      serialize: (msg) => (Buffer.isBuffer(msg) ? msg : ser(msg)),
      deserialize: (buf) => checkRelayed(de(buf) as CoordinatorMessageIn),
    };
  }
  return streamMethod;
}

/** Plaintext by default; TLS (with a client certificate for mutual TLS) when `tls` is given. */
export function simCredentials(o: Pick<SimWorkerOptions, 'tls'>): grpc.ChannelCredentials {
  const t = o.tls;
  if (!t) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(t.ca ?? null, t.key ?? null, t.cert ?? null);
}

/**
 * The relay view leaves relayed challenges and proof lists as bytes; the real worker decodes them as
 * `Challenges` and `ProofList` with the rest of the message, so a malformed one fails the whole
 * message and with it the stream. Checked here, so a sim is no more forgiving than a real worker.
 */
function checkRelayed(msg: CoordinatorMessageIn): CoordinatorMessageIn {
  const t = msg.execute_task;
  for (const c of t?.prove_params?.challenges ?? []) decodeChallenges(c);
  if (t?.agg_params?.agg_proofs) walkProofList(t.agg_params.agg_proofs);
  return msg;
}

/** Channel options of a sim worker connection (insecure, 128 MiB both ways, its own TCP connection, its receive window). */
export function simChannelOptions(o: Pick<SimWorkerOptions, 'maxMessageBytes' | 'reconnectIntervalMs' | 'receiveWindowBytes' | 'tls'>): grpc.ClientOptions {
  return {
    ...(o.tls?.serverName !== undefined ? { 'grpc.ssl_target_name_override': o.tls.serverName } : {}),
    ...(o.receiveWindowBytes !== undefined ? { 'grpc-node.flow_control_window': o.receiveWindowBytes } : {}),
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.max_receive_message_length': o.maxMessageBytes,
    // Like a real worker: its own HTTP/2 connection, not a multiplexed share of another worker's.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
    'grpc.initial_reconnect_backoff_ms': Math.max(100, Math.min(1000, o.reconnectIntervalMs)),
    'grpc.max_reconnect_backoff_ms': Math.max(100, o.reconnectIntervalMs),
  };
}
