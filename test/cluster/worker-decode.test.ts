/**
 * The strict WorkerMessage decoder (and the heartbeat-ack fast path in front of it) against the full
 * decoder: protobufjs on the public proto, plus the encoding rules protobufjs does not enforce
 * (`strictCheck`). A seeded differential fuzz: for every input both must agree on accept/reject and
 * on the decoded values. `WIRE_FUZZ_ITERATIONS` / `WIRE_FUZZ_SEED` run it longer or elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protobuf from 'protobufjs';
import { decodeWorkerMessage, WORKER_MESSAGE_SPECS } from '../../src/main/cluster/worker-decode';
import { decodeHeartbeatAck } from '../../src/main/cluster/service';
import type { WorkerMessageView } from '../../src/main/cluster/worker-inbound';
import { CLUSTER_API_PROTO } from '../../src/shared/proto';
import { Rng, TO_OBJECT, generate, loadRoot, strictCheck, unpackUint64, varint } from '../helpers/proto-fuzz';

const root = loadRoot(CLUSTER_API_PROTO);
const T = (name: string): protobuf.Type => root.lookupType(`zisk.distributed.api.v1.${name}`);
const WorkerMessage = T('WorkerMessage');

const ITERATIONS = Number(process.env.WIRE_FUZZ_ITERATIONS ?? 6000);
const SEED = Number(process.env.WIRE_FUZZ_SEED ?? 20240611);

type Verdict = { ok: true; value: unknown } | { ok: false; why: string };

/** The reference: protobufjs on the public proto, after the encoding rules it skips. */
function reference(buf: Buffer): Verdict {
  try {
    strictCheck(WorkerMessage, buf);
  } catch (e) {
    return { ok: false, why: `rules: ${(e as Error).message}` };
  }
  try {
    return { ok: true, value: WorkerMessage.toObject(WorkerMessage.decode(buf), TO_OBJECT) };
  } catch (e) {
    return { ok: false, why: `protobufjs: ${(e as Error).message}` };
  }
}

/** The coordinator's path, with relayed raw parts turned into what the public proto decodes them to. */
function coordinator(buf: Buffer): Verdict {
  const view = decodeHeartbeatAck(buf) ?? decodeWorkerMessage(buf);
  if (view.malformed !== undefined) return { ok: false, why: view.malformed };
  if (view.relay_error !== undefined) return { ok: false, why: view.relay_error };
  return { ok: true, value: toPublic(view) };
}

function toPublic(view: WorkerMessageView): unknown {
  const v = structuredClone(view) as Record<string, Record<string, unknown>>;
  const r = v.execute_task_response as Record<string, unknown> | undefined;
  if (r) {
    const witness = (w: Record<string, unknown> | null | undefined): void => {
      if (!w) return;
      w.publics = unpackUint64(Buffer.from(w.publics as Uint8Array));
      w.proof_values = unpackUint64(Buffer.from(w.proof_values as Uint8Array));
    };
    const ch = r.challenges as Record<string, unknown> | undefined;
    if (ch) {
      ch.challenges = (ch.challenges as Uint8Array[]).map((b) => T('Challenges').toObject(T('Challenges').decode(Buffer.from(b)), TO_OBJECT));
      witness(ch.witness_info as Record<string, unknown> | null);
    }
    const ex = r.execution as Record<string, unknown> | undefined;
    if (ex) witness(ex.witness_info as Record<string, unknown> | undefined);
    if (r.proofs !== undefined) r.proofs = T('ProofList').toObject(T('ProofList').decode(Buffer.from(r.proofs as Uint8Array)), TO_OBJECT);
  }
  return rebuffer(v);
}

/** structuredClone turns Buffers into Uint8Arrays; protobufjs gives Buffers. */
function rebuffer(x: unknown): unknown {
  if (x instanceof Uint8Array) return Buffer.from(x);
  if (Array.isArray(x)) return x.map(rebuffer);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, rebuffer(v)]));
  return x;
}

function agree(buf: Buffer, label: string): Verdict {
  const want = reference(buf);
  const got = coordinator(buf);
  assert.equal(got.ok, want.ok, `${label}: coordinator ${got.ok ? 'accepted' : `rejected (${(got as { why: string }).why})`}, reference ${want.ok ? 'accepted' : `rejected (${(want as { why: string }).why})`}; input ${buf.toString('hex').slice(0, 400)}`);
  if (got.ok && want.ok) assert.deepStrictEqual(got.value, want.value, `${label}: values differ; input ${buf.toString('hex').slice(0, 400)}`);
  return want;
}

test('the decoder tables match the public proto field by field', () => {
  for (const spec of WORKER_MESSAGE_SPECS) {
    const type = T(spec.name);
    assert.deepEqual([...spec.fields.keys()].sort((a, b) => a - b), type.fieldsArray.map((f) => f.id).sort((a, b) => a - b), spec.name);
    for (const f of type.fieldsArray) {
      const s = spec.fields.get(f.id)!;
      assert.equal(s.name, f.name, `${spec.name}.${f.id}`);
      const oneof = 'oneof' in s ? s.oneof : undefined;
      assert.equal(oneof, f.partOf?.name, `${spec.name}.${f.name} oneof`);
      const isMsg = f.resolvedType instanceof protobuf.Type;
      if (isMsg) {
        assert.ok(s.kind === 'message' || s.kind === 'opaque', `${spec.name}.${f.name} is a message`);
        assert.equal(s.type().name, f.resolvedType?.name);
        assert.equal(s.repeated === true, f.repeated, `${spec.name}.${f.name} repeated`);
      } else if (f.repeated) {
        assert.equal(f.type, 'uint64', `${spec.name}.${f.name}: the only repeated scalars are uint64 arrays`);
        assert.equal(s.kind, 'packedUint64');
      } else {
        assert.equal(s.kind, f.resolvedType instanceof protobuf.Enum ? 'enum' : f.type, `${spec.name}.${f.name}`);
      }
    }
  }
});

test('protobuf the reference accepts and the old decoders got wrong', () => {
  const publics = [1n, 300n, 2n ** 64n - 1n];
  const unpacked = Buffer.concat(publics.map((p) => Buffer.concat([Buffer.from([0x10]), varint(p)])));
  const packedChunk = Buffer.concat([Buffer.from([0x12]), varint(BigInt(varint(7n).length)), varint(7n)]);
  const witness = Buffer.concat([unpacked, packedChunk]);
  const list = Buffer.concat([Buffer.from([0x12]), varint(BigInt(witness.length)), witness, Buffer.from([0x1a, 0x00])]);
  const resp = Buffer.concat([Buffer.from([0x20, 0x01, 0x3a]), varint(BigInt(list.length)), list]);
  const msg = Buffer.concat([Buffer.from([0x2a]), varint(BigInt(resp.length)), resp]);
  const v = agree(msg, 'unpacked then packed publics');
  assert.ok(v.ok);
  const view = decodeWorkerMessage(msg);
  assert.equal(view.relay_error, undefined);
  assert.deepEqual(unpackUint64(view.execute_task_response!.challenges!.witness_info!.publics!), ['1', '300', '18446744073709551615', '7']);
});

test('invalid encodings are rejected with the reason, also those protobufjs lets through', () => {
  const cases: [string, Buffer, RegExp, boolean?][] = [
    ['a string declaring 268 MB with 3 bytes present', Buffer.from([0x0a, 0x09, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x01, 0x61, 0x62, 0x63]), /runs past the end/],
    ['an overlong varint (11 bytes)', Buffer.from([0x0a, 0x0e, 0x10, ...Buffer.alloc(10, 0x80), 0x01, 0x0a, 0x00]), /longer than 10 bytes/],
    ['wire type 7 on a known field', Buffer.from([0x0a, 0x05, 0x0f, 0x03, 0x61, 0x62, 0x63]), /wire type 7/],
    ['wire type 6 on an unknown field', Buffer.from([0x0a, 0x02, 0x16, 0x01]), /invalid wire type 6/, false],
    ['field number 0', Buffer.from([0x0a, 0x02, 0x00, 0x01]), /field number 0/],
    ['a varint beyond 64 bits', Buffer.from([0x0a, 0x0b, 0x10, ...Buffer.alloc(9, 0xff), 0x02]), /beyond 64 bits/],
    ['a group closed by another field', Buffer.from([0x0a, 0x02, 0x1b, 0x24]), /closes group 3/],
  ];
  for (const [name, buf, why, protobufjsAccepts = true] of cases) {
    assert.ok(reference(buf).ok === false, `${name}: the reference rejects it`);
    if (protobufjsAccepts) assert.doesNotThrow(() => WorkerMessage.decode(buf), `${name}: protobufjs alone accepts it`);
    const view = decodeWorkerMessage(buf);
    assert.match(view.malformed ?? '', why, name);
  }
});

test('a malformed relayed part is reported on an otherwise decoded message', () => {
  // execute_task_response{success, challenges{challenges: [<wire type 7>]}}
  const bad = Buffer.from([0x0f, 0x01]);
  const list = Buffer.concat([Buffer.from([0x0a, bad.length]), bad]);
  const resp = Buffer.concat([Buffer.from([0x0a, 0x01, 0x6a, 0x12, 0x01, 0x77, 0x20, 0x01, 0x3a, list.length]), list]);
  const msg = Buffer.concat([Buffer.from([0x2a, resp.length]), resp]);
  const view = decodeWorkerMessage(msg);
  assert.equal(view.malformed, undefined);
  assert.match(view.relay_error ?? '', /^ChallengesList\.challenges\[0\]: not a valid Challenges: .*wire type 7/);
  assert.equal(view.execute_task_response?.worker_id, 'w');
  assert.equal(reference(msg).ok, false);
});

test(`seeded differential fuzz: ${ITERATIONS} WorkerMessages (seed ${SEED}) decode like the reference`, (t) => {
  const rng = new Rng(SEED);
  const members = WorkerMessage.oneofs.payload.fieldsArray.map((f) => f.name);
  const tally = new Map<string, { accepted: number; rejected: number }>();
  for (let i = 0; i < ITERATIONS; i++) {
    const member = members[i % members.length];
    const mutateP = i % 3 === 0 ? 0 : 0.25;
    const buf = generate(rng, WorkerMessage, { mutate: mutateP, depth: 4, topMember: member });
    const label = `#${i} ${member}${mutateP ? ' (mutated)' : ''}`;
    const v = agree(buf, label);
    const key = `${member}${mutateP ? '/mutated' : '/valid'}`;
    const row = tally.get(key) ?? { accepted: 0, rejected: 0 };
    row[v.ok ? 'accepted' : 'rejected']++;
    tally.set(key, row);
    if (mutateP === 0) assert.ok(v.ok, `${label}: unmutated input must be valid`);
  }
  for (const [k, r] of [...tally].sort()) t.diagnostic(`${k}: ${r.accepted} accepted, ${r.rejected} rejected`);
});
