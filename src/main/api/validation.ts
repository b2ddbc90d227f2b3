/**
 * Edge validation of client API requests (docs/architecture.md, Edge validation; docs/decisions.md,
 * Errors): pure checks and parsers.
 */
import type { Deadline } from '@grpc/grpc-js';
import { apiErrors, shown } from '../../shared/errors';
import {
  HASH_ID_BYTES,
  MAX_PROGRAM_NAME_BYTES,
  MAX_STREAM_URI_BYTES,
  type ClientSizeLimits,
} from '../../shared/wire-limits';
import type { LimitName } from '../observability/metrics';
import type { EpochMs, JobKind, ProofKind } from '../../shared/scheduler/types';
import { ApiFailure } from './grpc-errors';
import { type JobRecord } from './job-mirror';
import { parseUuid } from './job-ids';
import { HASH_ID_PATTERN } from './programs';
import type { RequestMeta } from './results';
import { QUIC_UNSUPPORTED_MESSAGE, resolveLocalUri, type LocalSourceKind } from '../data/local-sources';
import type { InputKindMsg, JobRequestMsg, PushKind, TimestampMsg, WaitMsg } from './messages';

/** WaitJobResult hold (docs/decisions.md, Job states and events). */
export const WAIT_DEFAULT_SECONDS = 5;
export const WAIT_MIN_SECONDS = 1;
export const WAIT_MAX_SECONDS = 3600;
/** How long before the client's own deadline a held WaitJobResult answers (at most). */
export const WAIT_DEADLINE_MARGIN_MS = 250;

const PROOF_KIND_NAMES: Record<ProofKind, string> = { 1: 'Stark', 2: 'StarkMinimal', 3: 'Plonk' };

/** Smallest and largest valid `google.protobuf.Timestamp` seconds (0001-01-01 .. 9999-12-31). */
const TS_MIN_SECONDS = -62_135_596_800;
const TS_MAX_SECONDS = 253_402_300_799;

export type ParsedData =
  | { kind: 'none' }
  | { kind: 'inline'; data: Buffer }
  | { kind: 'grpc'; uri: string }
  | { kind: 'local'; uri: string; path: string; source: LocalSourceKind };

export interface ParsedJob {
  kind: JobKind;
  meta: RequestMeta;
  input: ParsedData;
  hints: ParsedData;
  deadline?: EpochMs;
  wrapProof?: Buffer;
}

export function invalid(message: string): ApiFailure {
  return new ApiFailure(apiErrors.invalidArgument(message));
}

/** A field or payload past one of the limits (docs/operations.md, Limits). */
function limitFailure(data: ReturnType<typeof apiErrors.invalidArgument>, limit: LimitName): ApiFailure {
  return new ApiFailure(data, limit);
}

/** Refuses a string field longer than `limit` UTF-8 bytes. */
export function checkFieldLength(field: string, value: string, limit: number): void {
  // Cheap first: a string of at most limit/3 UTF-16 units is at most `limit` UTF-8 bytes.
  if (value.length * 3 <= limit) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > limit) throw limitFailure(apiErrors.fieldTooLong(field, bytes, limit), 'request_field');
}

/** Refuses a program over what a setup message to workers can carry. */
export function checkElfSize(bytes: number, limits: ClientSizeLimits): void {
  if (bytes > limits.elfBytes) {
    throw limitFailure(
      apiErrors.tooLarge('zisk_elf', bytes, limits.elfBytes, `a setup message to workers must fit in ${limits.workerSendBytes} bytes`),
      'elf_bytes',
    );
  }
}

export function invalidJobState(reason: string): ApiFailure {
  return new ApiFailure(apiErrors.invalidJobState(reason));
}

/** The canonical job id, or upstream's `invalid UUID` error (docs/decisions.md, Errors). */
export function parseJobId(rawId: string | undefined): string {
  const text = rawId ?? '';
  const parsed = parseUuid(text);
  if (!parsed.ok) throw invalid(`invalid UUID: ${shown(text)}`);
  return parsed.uuid;
}

/** An absolute deadline from an optional Timestamp; out-of-range values count as absent (as upstream). */
export function deadlineOf(ts: TimestampMsg | null | undefined): EpochMs | undefined {
  if (!ts) return undefined;
  const seconds = Number(ts.seconds ?? 0);
  const nanos = ts.nanos ?? 0;
  if (!Number.isSafeInteger(seconds) || seconds < TS_MIN_SECONDS || seconds > TS_MAX_SECONDS) return undefined;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return undefined;
  return seconds * 1000 + Math.floor(nanos / 1_000_000);
}

function isProofKind(n: number | undefined): n is ProofKind {
  return n === 1 || n === 2 || n === 3;
}

function parseData(msg: InputKindMsg, what: 'input' | 'hints', inputsDir: string | undefined): ParsedData {
  if (msg.kind === 'inline') return { kind: 'inline', data: msg.inline?.data ?? Buffer.alloc(0) };
  const uri = msg.stream_uri ?? '';
  checkFieldLength(what === 'hints' ? 'hints.stream_uri' : 'input.stream_uri', uri, MAX_STREAM_URI_BYTES);
  if (/^grpc:\/\//i.test(uri)) return { kind: 'grpc', uri };
  if (/^quic:\/\//i.test(uri)) throw invalid(QUIC_UNSUPPORTED_MESSAGE);
  const r = resolveLocalUri(uri, inputsDir);
  if (!r.ok) throw invalid(what === 'hints' ? `hints: ${r.message}` : r.message);
  return { kind: 'local', uri, path: r.path, source: r.kind };
}

/** Shape and format checks, in order (docs/decisions.md, Errors); throws the first failure. */
export function parseJobRequest(req: JobRequestMsg, inputsDir: string | undefined, limits: ClientSizeLimits): ParsedJob {
  const jk = req.job_kind;
  if (!jk) throw invalid('job_kind must be set');
  switch (jk.kind) {
    case 'setup': {
      const s = jk.setup ?? {};
      const hashId = s.hash_id ?? '';
      if (!HASH_ID_PATTERN.test(hashId)) throw invalid(`invalid hash_id: ${shown(hashId)}`);
      checkFieldLength('program_name', s.program_name ?? '', MAX_PROGRAM_NAME_BYTES);
      return {
        kind: 'setup',
        meta: { kind: 'setup', hashId, withHints: s.with_hints === true, programName: s.program_name ?? '' },
        input: { kind: 'none' },
        hints: { kind: 'none' },
      };
    }
    case 'prove':
    case 'execute': {
      const kind = jk.kind;
      const p = (kind === 'prove' ? jk.prove : jk.execute) ?? {};
      if (!p.input) throw invalid('input must be set');
      if (!p.input.kind) throw invalid('input.kind must be set');
      if (p.hints && !p.hints.kind) throw invalid('input.kind must be set');
      const hashId = p.hash_id ?? '';
      if (!HASH_ID_PATTERN.test(hashId)) throw invalid(`invalid hash_id: ${shown(hashId)}`);
      const input = parseData(p.input, 'input', inputsDir);
      const hints = p.hints ? parseData(p.hints, 'hints', inputsDir) : ({ kind: 'none' } as const);
      const inline = (input.kind === 'inline' ? input.data.length : 0) + (hints.kind === 'inline' ? hints.data.length : 0);
      if (inline > limits.inlineBytes) {
        throw limitFailure(
          apiErrors.tooLarge(
            'inline input and hints',
            inline,
            limits.inlineBytes,
            `every worker's task message carries them and must fit in ${limits.workerSendBytes} bytes; send big inputs as a grpc:// stream`,
          ),
          'inline_bytes',
        );
      }
      const timeout = kind === 'prove' ? jk.prove?.proof_timeout : jk.execute?.execute_timeout;
      const dest = kind === 'prove' ? jk.prove?.proof_dest : 1;
      const proofKind: ProofKind = isProofKind(dest) ? dest : 1;
      const meta: RequestMeta = kind === 'prove' ? { kind, hashId, proofKind } : { kind, hashId };
      return { kind, meta, input, hints, deadline: deadlineOf(timeout) };
    }
    case 'wrap': {
      const w = jk.wrap ?? {};
      const proof = w.proof;
      if (!proof) throw invalid('wrap.proof must be set');
      const proofId = proof.proof_id ?? '';
      const id = parseUuid(proofId);
      if (!id.ok) throw invalid(`invalid wrap.proof: invalid proof_id: invalid UUID '${shown(proofId)}': ${id.detail}`);
      // Exempt from the hash_id format (the SDK sends it empty), not from a bound.
      checkFieldLength('wrap.proof.hash_id', proof.hash_id ?? '', HASH_ID_BYTES);
      const proofBytes = proof.data?.length ?? 0;
      if (proofBytes > limits.wrapProofBytes) {
        throw limitFailure(
          apiErrors.tooLarge('wrap.proof.data', proofBytes, limits.wrapProofBytes, `the wrap task message to a worker must fit in ${limits.workerSendBytes} bytes`),
          'wrap_proof_bytes',
        );
      }
      const from = proof.proof_kind ?? 0;
      if (!isProofKind(from)) throw invalid(`invalid wrap.proof: invalid proof_kind ${from}`);
      const dest = w.proof_dest ?? 0;
      if (!isProofKind(dest)) throw invalid('invalid proof_dest');
      if (dest === 1) {
        throw new ApiFailure(apiErrors.invalidProofConversion(PROOF_KIND_NAMES[from], PROOF_KIND_NAMES[dest]));
      }
      return {
        kind: 'wrap',
        meta: {
          kind: 'wrap',
          proofDest: dest,
          hashId: proof.hash_id ?? '',
          verificationKey: proof.verification_key ?? Buffer.alloc(0),
          publicInputs: proof.public_inputs ?? Buffer.alloc(0),
        },
        input: { kind: 'none' },
        hints: { kind: 'none' },
        wrapProof: proof.data ?? Buffer.alloc(0),
        deadline: deadlineOf(w.wrap_timeout),
      };
    }
    default:
      throw invalid('job_kind.kind must be set');
  }
}

/**
 * How long a WaitJobResult holds: the requested timeout clamped to WAIT_MIN/MAX_SECONDS (default when
 * unset), and short of the client's own deadline by a margin so the answer still reaches it.
 */
export function waitHoldMs(req: WaitMsg, deadline: Deadline, now: number): number {
  const present = req._timeout_seconds === 'timeout_seconds';
  const seconds = present ? Math.min(WAIT_MAX_SECONDS, Math.max(WAIT_MIN_SECONDS, req.timeout_seconds ?? 0)) : WAIT_DEFAULT_SECONDS;
  let holdMs = seconds * 1000;
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(deadlineMs)) {
    const remaining = deadlineMs - now;
    holdMs = Math.min(holdMs, Math.max(0, remaining - Math.min(WAIT_DEADLINE_MARGIN_MS, remaining / 10)));
  }
  return holdMs;
}

/** Throws the `Invalid job state` error when a Push stream of `kind` may not feed this job now. */
/**
 * Whether a push stream may feed `rec`. Mock mode takes what upstream's mock takes (the chunks are
 * dropped): input pushes to any job without a stream URI, hints pushes to any job.
 */
export function checkPushTarget(rec: JobRecord, kind: PushKind, method: string, mock: boolean): void {
  if (rec.terminal) throw invalidJobState(`job ${rec.id} is already terminal (current: ${rec.statusName()})`);
  const mode = kind === 'input' ? rec.input : rec.hints;
  const refused = mock ? kind === 'input' && mode.kind === 'local' : mode.kind !== 'grpc';
  if (refused) {
    const has = mode.kind === 'none' ? 'has no' : `uses ${mode.kind === 'inline' ? 'Inline' : 'StreamUri'}`;
    throw invalidJobState(`job ${rec.id} ${has} ${kind} — cannot push ${kind} via gRPC`);
  }
  if (rec.pushOpen[kind]) throw invalidJobState(`job ${rec.id} already has an open ${method} stream`);
  if (kind === 'hints' && rec.relays.hints?.ended) throw invalidJobState(`hints stream of job ${rec.id} already ended`);
}
