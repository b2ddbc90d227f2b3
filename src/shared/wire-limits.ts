/**
 * Size limits that follow from the worker's fixed message limit (docs/operations.md, Limits).
 *
 * Every message the coordinator sends a worker must fit in what the worker port may send (the
 * smaller of `[server] max_message_bytes` and the worker's own 128 MiB decoder limit), or grpc-js
 * ends the whole stream with RESOURCE_EXHAUSTED. So what a client may submit is bounded by the
 * largest message built from it minus that message's envelope: the other fields at their own
 * bounds, each length prefix at its widest. The sizes below are computed from the wire format,
 * field by field, for the messages of proto/zisk_distributed_api.proto;
 * test/shared/wire-limits.test.ts encodes the worst case with the public proto and checks that it
 * fits exactly.
 */
import { varintSize } from './protobuf-wire';

/** The real worker's decoder limit is fixed at 128 MiB: a bigger message would kill its stream. */
export const WORKER_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;

/** Bounds on fields the coordinator copies into messages to workers (docs/operations.md, Limits). */
export const MAX_WORKER_ID_BYTES = 256;
export const MAX_PROGRAM_NAME_BYTES = 1024;
export const MAX_STREAM_URI_BYTES = 4096;
/** Compute units one worker may report: each becomes an entry of its task's `worker_allocation`. */
export const MAX_WORKER_COMPUTE_UNITS = 65_536;
/** What the coordinator's own ids are: a hyphenated UUID, a BLAKE3-256 in hex. */
export const UUID_BYTES = 36;
export const HASH_ID_BYTES = 64;
/** `register_response.message`: the coordinator's own fixed texts. */
export const MAX_REGISTER_MESSAGE_BYTES = 256;

/** Widest varint of a uint32 / int32 (a negative int32 takes 10), and of a Timestamp's int64 seconds. */
const UINT32_VARINT = 5;
const INT32_VARINT = 10;
const INT64_VARINT = 10;

/** A tag of a field number below 16 is one byte. */
function tag(): number {
  return 1;
}

/** A length-delimited field holding `n` bytes. */
function lenField(n: number): number {
  return tag() + varintSize(n) + n;
}

/** A varint field at its widest. */
function varintField(width: number): number {
  return tag() + width;
}

/** `SetupProgram` with an ELF of `elf` bytes and every other field at its bound. */
function setupProgramBody(elf: number): number {
  return (
    lenField(UUID_BYTES) + // job_id
    lenField(elf) + // elf_bytes
    lenField(HASH_ID_BYTES) + // hash_id
    varintField(1) + // with_hints
    lenField(MAX_PROGRAM_NAME_BYTES) // program_name
  );
}

/** `CoordinatorMessage{setup_program}`. */
export function setupMessageBytes(elf: number): number {
  return lenField(setupProgramBody(elf));
}

/** `CoordinatorMessage{register_response}` carrying the first setup (docs/decisions.md, Setup jobs). */
export function registerResponseBytes(elf: number): number {
  const timestamp = varintField(INT64_VARINT) + varintField(UINT32_VARINT);
  const body =
    lenField(MAX_WORKER_ID_BYTES) + // worker_id
    varintField(1) + // accepted
    lenField(MAX_REGISTER_MESSAGE_BYTES) + // message
    lenField(timestamp) + // registered_at
    lenField(varintField(INT32_VARINT)) + // directive{action}
    lenField(setupProgramBody(elf)); // setup_program
  return lenField(body);
}

/** `CoordinatorMessage{execute_task}` around task params of `params` bytes. */
function executeTaskBytes(params: number): number {
  const body =
    lenField(MAX_WORKER_ID_BYTES) + // worker_id
    lenField(UUID_BYTES) + // job_id
    varintField(INT32_VARINT) + // task_type
    lenField(params);
  return lenField(body);
}

/**
 * A contribution or execution task whose inline input and inline hints hold `inline` bytes in all.
 * Both inline fields are counted with their widest prefixes, and the hints URI as well (it never
 * comes with inline hints, but counting it keeps the bound one number).
 */
export function contributionTaskBytes(inline: number): number {
  const params =
    lenField(UUID_BYTES) + // data_id
    tag() + UINT32_VARINT + // input_data prefix
    tag() + UINT32_VARINT + // hints_data prefix
    inline +
    lenField(MAX_STREAM_URI_BYTES) + // hints_path
    varintField(1) + // hints_stream
    varintField(UINT32_VARINT) + // rank_id
    varintField(UINT32_VARINT) + // total_workers
    lenField(MAX_WORKER_COMPUTE_UNITS * UINT32_VARINT) + // worker_allocation (packed)
    varintField(UINT32_VARINT) + // job_compute_units
    lenField(HASH_ID_BYTES); // hash_id
  return executeTaskBytes(params);
}

/** A WRAP task carrying a proof of `proof` bytes. */
export function wrapTaskBytes(proof: number): number {
  return executeTaskBytes(lenField(proof) + varintField(INT32_VARINT));
}

/** `CoordinatorMessage{stream_data}` relaying one hints batch of `batch` bytes. */
export function hintsMessageBytes(batch: number): number {
  const payload = varintField(UINT32_VARINT) + lenField(batch); // sequence_number, payload
  return lenField(lenField(UUID_BYTES) + varintField(INT32_VARINT) + lenField(payload));
}

/** The largest `n` with `size(n) <= limit` (size grows by at least 1 per byte). */
function largestFitting(size: (n: number) => number, limit: number): number {
  let n = Math.max(0, limit - size(0));
  while (n > 0 && size(n) > limit) n--;
  return size(n) <= limit ? n : 0;
}

/** What a client may submit, given what the worker port may send. */
export interface ClientSizeLimits {
  /** What the worker port sends at most (the grpc-js send limit of the cluster server). */
  workerSendBytes: number;
  elfBytes: number;
  /** Inline input and inline hints of one job, together. */
  inlineBytes: number;
  wrapProofBytes: number;
  /** One PushJobHintsInput batch (hints batches are relayed whole: docs/protocol.md, Hints framing). */
  hintsBatchBytes: number;
}

export function workerSendLimit(maxMessageBytes: number): number {
  return Math.min(maxMessageBytes, WORKER_MAX_MESSAGE_BYTES);
}

export function clientSizeLimits(workerSendBytes: number): ClientSizeLimits {
  return {
    workerSendBytes,
    elfBytes: largestFitting((n) => Math.max(registerResponseBytes(n), setupMessageBytes(n)), workerSendBytes),
    inlineBytes: largestFitting(contributionTaskBytes, workerSendBytes),
    wrapProofBytes: largestFitting(wrapTaskBytes, workerSendBytes),
    hintsBatchBytes: largestFitting(hintsMessageBytes, workerSendBytes),
  };
}
