/**
 * Hand-rolled encoders for `CoordinatorMessage{execute_task}` (cluster-protocol.md §1.3).
 *
 * Task messages carry one large part shared by every target (input bytes, the concatenated
 * challenges) and a few per-worker fields (worker_id, rank_id, allocation). The shared part is
 * encoded once; each target's message is one allocation: its own headers, the shared bytes, its own
 * fields (decisions D7). Relayed `Challenges` and `ProofList` bytes are copied verbatim, never
 * decoded (decisions D1). Every field appears once, so any protobuf decoder reads the result
 * (no reliance on merge semantics). test/cluster/task-encoding.test.ts decodes the output with the
 * public proto.
 */

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** CoordinatorMessage.execute_task */
const COORDINATOR_EXECUTE_TASK = 4;
/** ExecuteTaskRequest fields */
const TASK_WORKER_ID = 1;
const TASK_JOB_ID = 2;
const TASK_TYPE = 3;
const TASK_CONTRIBUTION_PARAMS = 4;
const TASK_PROVE_PARAMS = 5;
const TASK_AGG_PARAMS = 6;
const TASK_EXECUTION_PARAMS = 7;
const TASK_WRAP_PARAMS = 8;

export const TASK_TYPE_PARTIAL_CONTRIBUTION = 0;
export const TASK_TYPE_PROVE = 1;
export const TASK_TYPE_AGGREGATE = 2;
export const TASK_TYPE_EXECUTION = 3;
export const TASK_TYPE_WRAP = 4;

/** Collects encoded fields as buffer parts; big parts are referenced, not copied, until `finish`. */
class FieldWriter {
  readonly parts: Buffer[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length;
  }

  private push(buf: Buffer): this {
    this.parts.push(buf);
    this.length += buf.length;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.push(varint((field << 3) | wire));
  }

  uint32(field: number, value: number): this {
    if (value !== 0) this.tag(field, WIRE_VARINT).push(varint(value));
    return this;
  }

  bool(field: number, value: boolean): this {
    if (value) this.tag(field, WIRE_VARINT).push(varint(1));
    return this;
  }

  string(field: number, value: string | undefined, always = false): this {
    if (value === undefined || (value === '' && !always)) return this;
    return this.bytes(field, Buffer.from(value, 'utf8'), true);
  }

  /** `always` writes an empty value too (explicit presence: oneof members and `optional`). */
  bytes(field: number, value: Buffer | undefined, always = false): this {
    if (value === undefined || (value.length === 0 && !always)) return this;
    this.tag(field, WIRE_LEN).push(varint(value.length));
    if (value.length > 0) this.push(value);
    return this;
  }

  /** A length-delimited field whose body is the concatenation of already-encoded parts. */
  embedded(field: number, body: FieldWriter): this {
    return this.tag(field, WIRE_LEN).push(varint(body.byteLength)).append(body);
  }

  /** Appends fields already encoded by another writer (its parts are shared, not copied). */
  append(other: FieldWriter): this {
    for (const part of other.parts) this.push(part);
    return this;
  }

  packedUint32(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const body = Buffer.concat(values.map(varint));
    return this.bytes(field, body);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

/**
 * One-byte varints (0–127: every tag and most lengths and counts here) as shared buffers: parts are
 * only ever read (`finish` copies them), and a task message has a dozen of them.
 */
const ONE_BYTE_VARINTS: readonly Buffer[] = Array.from({ length: 128 }, (_, i) => Buffer.from([i]));

function varint(value: number): Buffer {
  if (value >= 0 && value < 128 && Number.isInteger(value)) return ONE_BYTE_VARINTS[value];
  if (!Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`varint out of range: ${value}`);
  }
  const bytes: number[] = [];
  let v = value;
  while (v > 0x7f) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function wrapTask(task: FieldWriter): Buffer {
  return new FieldWriter().embedded(COORDINATOR_EXECUTE_TASK, task).finish();
}

export interface ContributionShared {
  jobId: string;
  executionOnly: boolean;
  dataId: string;
  hashId: string;
  /** inline stdin; undefined when the input is streamed or absent */
  inputData?: Buffer;
  /** inline hints bytes */
  hintsData?: Buffer;
  /** hints arrive as `stream_data`; the URI is informational for the worker */
  hintsStreamUri?: string;
}

export interface ContributionPerWorker {
  workerId: string;
  rank: number;
  totalWorkers: number;
  allocation: readonly number[];
  jobComputeUnits: number;
}

/** Encodes the shared part once; call the returned function per target. */
export function contributionTaskEncoder(shared: ContributionShared): (w: ContributionPerWorker) => Buffer {
  const params = new FieldWriter().string(1, shared.dataId);
  if (shared.inputData !== undefined) params.bytes(3, shared.inputData, true);
  if (shared.hintsStreamUri !== undefined) params.string(4, shared.hintsStreamUri, true).bool(5, true);
  if (shared.hintsData !== undefined) params.bytes(10, shared.hintsData, true);
  params.string(11, shared.hashId);
  const paramsField = shared.executionOnly ? TASK_EXECUTION_PARAMS : TASK_CONTRIBUTION_PARAMS;
  const taskType = shared.executionOnly ? TASK_TYPE_EXECUTION : TASK_TYPE_PARTIAL_CONTRIBUTION;

  return (w) => {
    const perWorker = new FieldWriter()
      .uint32(6, w.rank)
      .uint32(7, w.totalWorkers)
      .packedUint32(8, w.allocation)
      .uint32(9, w.jobComputeUnits);
    const body = new FieldWriter().append(params).append(perWorker);
    const task = new FieldWriter()
      .string(TASK_WORKER_ID, w.workerId)
      .string(TASK_JOB_ID, shared.jobId)
      .uint32(TASK_TYPE, taskType)
      .embedded(paramsField, body);
    return wrapTask(task);
  };
}

/** PROVE tasks: every target gets the same full challenge list (each entry an encoded `Challenges`). */
export function proveTaskEncoder(jobId: string, challenges: readonly Buffer[]): (workerId: string) => Buffer {
  const params = new FieldWriter();
  for (const entry of challenges) params.bytes(1, entry, true);
  return (workerId) =>
    wrapTask(
      new FieldWriter()
        .string(TASK_WORKER_ID, workerId)
        .string(TASK_JOB_ID, jobId)
        .uint32(TASK_TYPE, TASK_TYPE_PROVE)
        .embedded(TASK_PROVE_PARAMS, params),
    );
}

/**
 * AGGREGATE task. `proofList` is a contributor's encoded `ProofList`, relayed verbatim; undefined
 * sends an empty list, which must still be present on the wire (the worker rejects its absence).
 */
export function encodeAggregateTask(a: {
  jobId: string;
  workerId: string;
  proofList: Buffer | undefined;
  last: boolean;
  proofType: number;
}): Buffer {
  const params = new FieldWriter()
    .bytes(1, a.proofList ?? Buffer.alloc(0), true)
    .bool(2, a.last)
    .bool(3, a.last)
    .uint32(4, a.proofType);
  return wrapTask(
    new FieldWriter()
      .string(TASK_WORKER_ID, a.workerId)
      .string(TASK_JOB_ID, a.jobId)
      .uint32(TASK_TYPE, TASK_TYPE_AGGREGATE)
      .embedded(TASK_AGG_PARAMS, params),
  );
}

export function encodeWrapTask(a: { jobId: string; workerId: string; proofData: Buffer; proofDest: 1 | 2 }): Buffer {
  const params = new FieldWriter().bytes(1, a.proofData).uint32(2, a.proofDest);
  return wrapTask(
    new FieldWriter()
      .string(TASK_WORKER_ID, a.workerId)
      .string(TASK_JOB_ID, a.jobId)
      .uint32(TASK_TYPE, TASK_TYPE_WRAP)
      .embedded(TASK_WRAP_PARAMS, params),
  );
}
