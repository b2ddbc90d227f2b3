/**
 * HTTP/2 flow-control probe on raw grpc-js: one bidi method with raw-byte messages.
 * - upload: the client sends an S-byte message (first byte 0); the server answers one byte when it
 *   has the whole message. Paced by the SERVER's receive window (grpc-js: fixed 64 KiB, PR 3058).
 * - download: the client sends `[1, S as u32le]`; the server answers S bytes. Paced by the CLIENT's
 *   receive window (`grpc-node.flow_control_window`).
 * The server runs in its own process (forked, `ProbeApi`); `recvWindowBytes` raises its receive
 * windows the way the coordinator does (`TunedGrpcServer`, src/main/grpc-server.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { HTTP2_DEFAULT_WINDOW_BYTES, TunedGrpcServer } from '../../src/main/process/grpc-server';
import { serveIpc } from '../lib/ipc';
import { hostNow } from '../lib/proc';

export type ProbeApi = {
  start: { params: { recvWindowBytes?: number }; result: { port: number } };
};

const identity = (b: Buffer): Buffer => b;

export const PROBE_METHOD: grpc.MethodDefinition<Buffer, Buffer> = {
  path: '/bench.WindowProbe/Stream',
  requestStream: true,
  responseStream: true,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};

async function startProbeServer(recvWindowBytes?: number): Promise<number> {
  const tuned = new TunedGrpcServer({ windowBytes: recvWindowBytes ?? HTTP2_DEFAULT_WINDOW_BYTES, maxMessageBytes: 256 << 20, keepaliveTimeMs: 0, keepaliveTimeoutMs: 0 });
  const server = tuned.server;
  const payloads = new Map<number, Buffer>();
  server.addService({ Stream: PROBE_METHOD }, {
    Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (msg: Buffer) => {
        if (msg[0] === 1 && msg.length >= 5) {
          const size = msg.readUInt32LE(1);
          let p = payloads.get(size);
          if (!p) payloads.set(size, (p = Buffer.alloc(size, 0x5a)));
          call.write(p);
        } else call.write(Buffer.from([0]));
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  return tuned.bind('127.0.0.1:0', grpc.ServerCredentials.createInsecure());
}

/** Client side (runs in the bench process): median MB/s-relevant times of `reps` transfers of `size` bytes. */
export async function probeTransfers(
  port: number,
  opts: { direction: 'up' | 'down'; size: number; reps: number; clientWindowBytes?: number },
): Promise<number[]> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 256 << 20,
    'grpc.max_send_message_length': 256 << 20,
    'grpc.use_local_subchannel_pool': 1,
    ...(opts.clientWindowBytes ? { 'grpc-node.flow_control_window': opts.clientWindowBytes } : {}),
  });
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(PROBE_METHOD.path, identity, identity);
  const replies: Array<(b: Buffer) => void> = [];
  call.on('data', (b: Buffer) => replies.shift()?.(b));
  call.on('error', () => undefined);
  const upMsg = Buffer.alloc(opts.size, 0x33);
  upMsg[0] = 0;
  const downReq = Buffer.alloc(5);
  downReq[0] = 1;
  downReq.writeUInt32LE(opts.size, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < opts.reps + 1; i++) {
      const t0 = hostNow();
      const got = new Promise<Buffer>((resolve) => replies.push(resolve));
      call.write(opts.direction === 'up' ? upMsg : downReq);
      const b = await got;
      if (opts.direction === 'down' && b.length !== opts.size) throw new Error(`probe: got ${b.length} bytes, expected ${opts.size}`);
      if (i > 0) times.push(hostNow() - t0); // the first transfer warms the connection up
    }
  } finally {
    call.end();
    client.close();
  }
  return times;
}

if (require.main === module) {
  serveIpc<ProbeApi>({ start: async ({ recvWindowBytes }) => ({ port: await startProbeServer(recvWindowBytes) }) });
}
