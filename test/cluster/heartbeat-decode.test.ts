/** The heartbeat-ack fast path decodes exactly what the full decoder does, and nothing else. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../../src/shared/proto';
import { decodeHeartbeatAck } from '../../src/main/cluster/service';

const pub = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;
const view = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE).WorkerStream;

test('heartbeat acks decode like the full decoder, for short, empty, long and non-ASCII ids', () => {
  for (const id of ['w1', '', 'x'.repeat(200), '0123456789abcdef0123456789abcdef', 'wörker-ü-✓']) {
    const buf = pub.requestSerialize({ heartbeat_ack: { worker_id: id } });
    const fast = decodeHeartbeatAck(buf);
    assert.ok(fast, `fast path taken for ${JSON.stringify(id)}`);
    const full = view.requestDeserialize(buf) as { payload: string; heartbeat_ack: { worker_id: string } };
    assert.equal(fast.payload, full.payload);
    assert.equal(fast.heartbeat_ack?.worker_id, full.heartbeat_ack.worker_id);
  }
});

test('anything but a plain heartbeat ack falls through to the full decoder', () => {
  const others = [
    pub.requestSerialize({ register: { worker_id: 'w', compute_capacity: { compute_units: 1 } } }),
    pub.requestSerialize({ recovery_complete: { worker_id: 'w' } }),
    pub.requestSerialize({}),
    Buffer.concat([pub.requestSerialize({ heartbeat_ack: { worker_id: 'w' } }), Buffer.from([0x08, 0x01])]),
    Buffer.from([0x0a, 0x05, 0x0a]), // truncated
  ];
  for (const buf of others) assert.equal(decodeHeartbeatAck(buf), undefined, buf.toString('hex'));
});
