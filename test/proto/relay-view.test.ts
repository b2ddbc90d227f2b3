/**
 * The internal relay view must stay wire-identical to the public cluster proto: same messages,
 * fields, numbers; only the documented uint64 arrays / sub-lists become `bytes` (same wire type).
 * Also pins the unusual field numbers of both public protos against the specs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_API_PROTO, CLUSTER_API_PROTO, CLUSTER_VIEW_PROTO, loadProto } from '../../src/shared/proto';

interface FieldDesc {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}

function messages(file: string): Map<string, FieldDesc[]> {
  const out = new Map<string, FieldDesc[]>();
  for (const [name, def] of Object.entries(loadProto(file))) {
    if (!('format' in def) || def.format !== 'Protocol Buffer 3 DescriptorProto') continue;
    out.set(name, (def.type as { field: FieldDesc[] }).field);
  }
  return out;
}

/** message.field → why the view may declare it as bytes */
const VIEW_SUBSTITUTIONS = new Set([
  'zisk.distributed.api.v1.ProveParams.challenges',
  'zisk.distributed.api.v1.AggParams.agg_proofs',
  'zisk.distributed.api.v1.ExecuteTaskResponse.proofs',
  'zisk.distributed.api.v1.ChallengesList.challenges',
  'zisk.distributed.api.v1.WitnessExecInfo.publics',
  'zisk.distributed.api.v1.WitnessExecInfo.proof_values',
]);

test('relay view is wire-identical to the public cluster proto', () => {
  const pub = messages(CLUSTER_API_PROTO);
  const view = messages(CLUSTER_VIEW_PROTO);
  const ns = 'zisk.distributed.api.v1.';
  const names = (m: Map<string, FieldDesc[]>): string[] => [...m.keys()].filter((k) => k.startsWith(ns)).sort();
  assert.deepEqual(names(view), names(pub));
  let substituted = 0;
  for (const name of names(pub)) {
    const pf = pub.get(name)!;
    const vf = view.get(name)!;
    assert.deepEqual(vf.map((f) => [f.name, f.number]), pf.map((f) => [f.name, f.number]), name);
    for (const p of pf) {
      const v = vf.find((f) => f.number === p.number)!;
      const key = `${name}.${p.name}`;
      if (VIEW_SUBSTITUTIONS.has(key)) {
        substituted++;
        assert.equal(v.type, 'TYPE_BYTES', key);
        // Packed repeated scalars and embedded messages are length-delimited, like bytes.
        assert.ok(p.type === 'TYPE_MESSAGE' || (p.type === 'TYPE_UINT64' && p.label === 'LABEL_REPEATED'), key);
      } else {
        assert.deepEqual([v.type, v.label, v.typeName, v.oneofIndex], [p.type, p.label, p.typeName, p.oneofIndex], key);
      }
    }
  }
  assert.equal(substituted, VIEW_SUBSTITUTIONS.size);
});

function num(file: string, message: string, fieldName: string): [number, string] {
  const f = messages(file).get(message)?.find((x) => x.name === fieldName);
  assert.ok(f, `${message}.${fieldName} exists`);
  return [f.number, f.type];
}

test('unusual field numbers of the client API match the spec', () => {
  const c = 'zisk.coordinator.v1.';
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}JobKind`, 'execute'), [5, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}JobKindResponse`, 'execute'), [4, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}ExecuteRequest`, 'hints'), [4, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}ProveRequest`, 'hints'), [5, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}ProveRequest`, 'proof_dest'), [4, 'TYPE_ENUM']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}WaitJobResultRequest`, 'timeout_seconds'), [2, 'TYPE_UINT32']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}JobEventFailed`, 'timestamp'), [3, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLIENT_API_PROTO, `${c}CostPerType`, 'other'), [6, 'TYPE_UINT64']);
  assert.equal(messages(CLIENT_API_PROTO).get(`${c}JobKind`)?.some((f) => f.number === 4), false, 'field 4 reserved');
});

test('unusual field numbers of the cluster API match the spec', () => {
  const d = 'zisk.distributed.api.v1.';
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}SetupProgram`, 'with_hints'), [4, 'TYPE_BOOL']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}SetupProgram`, 'program_name'), [5, 'TYPE_STRING']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}StreamPayload`, 'sequence_number'), [3, 'TYPE_UINT32']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}StreamPayload`, 'payload'), [4, 'TYPE_BYTES']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ContributionParams`, 'hints_data'), [10, 'TYPE_BYTES']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ContributionParams`, 'hash_id'), [11, 'TYPE_STRING']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ExecuteTaskRequest`, 'execution_params'), [7, 'TYPE_MESSAGE']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ExecuteTaskResponse`, 'worker_in_recovery'), [11, 'TYPE_BOOL']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ProofStark`, 'airgroup_id'), [2, 'TYPE_UINT64']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}Challenges`, 'airgroup_id'), [2, 'TYPE_UINT32']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}ZiskExecuteTime`, 'task_received_time'), [6, 'TYPE_DOUBLE']);
  assert.deepEqual(num(CLUSTER_API_PROTO, `${d}WrapParams`, 'proof_dest'), [2, 'TYPE_INT32']);
});
