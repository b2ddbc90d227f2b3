/**
 * A stored job (src/main/state/store.ts) made into a record of the client API's mirror again, after
 * a restart: its request, its data, its attempts, its history replayed event by event, and its
 * result, whose proof (when big enough to have a file) stays there until a client asks (see
 * JobRegistry.ensureResult).
 */
import type { BlobStore } from '../data/blob-store';
import type { InputSpec, JobSpec } from '../../shared/scheduler/types';
import type { StoredBytes, StoredData, StoredJob } from '../state/store';
import type { JobJournal } from './job-journal';
import { JobRecord, type DataMode, type IncomingEvent } from './job-mirror';
import type { BuiltResult, JobKindResponseWire, RequestMeta } from './results';

/** Rebuilds a record; `apply` replays each stored event on it as the mirror would. */
export async function restoreRecord(
  job: StoredJob,
  blobs: BlobStore,
  journal: JobJournal,
  apply: (rec: JobRecord, at: number, event: IncomingEvent) => void,
): Promise<JobRecord> {
  const { deadline, ...metaFields } = job.request as Record<string, unknown> & { deadline?: number };
  const meta = metaFields as unknown as RequestMeta;
  const terminal = job.history.some((e) => e.kind === 'completed' || e.kind === 'failed' || e.kind === 'cancelled');
  // A finished job needs none of its request bytes again; an unfinished one is sent them again.
  const load = async (bytes: StoredBytes): Promise<Buffer> => ('inline' in bytes ? bytes.inline : journal.read(bytes.file));
  const requestBlobs: number[] = [];
  const modeOf = async (d: StoredData): Promise<DataMode> => {
    switch (d.kind) {
      case 'none':
        return { kind: 'none' };
      case 'inline': {
        const blobId = blobs.put(terminal ? Buffer.alloc(0) : await load(d.data));
        requestBlobs.push(blobId);
        return { kind: 'inline', blobId };
      }
      case 'grpc':
        return { kind: 'grpc', uri: d.uri };
      case 'local':
        return { kind: 'local', uri: d.uri };
    }
  };
  const rec = new JobRecord(job.id, job.kind, meta, await modeOf(job.input), await modeOf(job.hints), job.createdAt);
  rec.accepted = true;
  rec.requestBlobIds.push(...requestBlobs);
  if (typeof deadline === 'number') rec.deadline = deadline;
  rec.attempt = job.attempt;
  rec.failedAttempts.push(...job.failedAttempts);
  for (const kind of ['input', 'hints'] as const) {
    const d = job[kind];
    if (d.kind === 'inline' && 'file' in d.data) rec.files[kind] = d.data.file;
    if (d.kind === 'grpc' && d.spool) rec.spooled[kind] = d.spool;
    if (d.kind === 'local') rec.localSources[kind] = { path: d.path, source: d.source };
  }
  if (job.wrapProof) {
    if ('file' in job.wrapProof) rec.files.wrapProof = job.wrapProof.file;
    if (!terminal) {
      rec.wrapProof = await load(job.wrapProof);
      rec.requestBlobIds.push(blobs.put(rec.wrapProof));
    }
  }
  if (job.result?.proofFile) rec.files.proof = job.result.proofFile;
  for (const e of job.history) {
    switch (e.kind) {
      case 'completed': {
        const result: BuiltResult = {
          response: job.result?.response as unknown as JobKindResponseWire,
          blobIds: [],
          warnings: [],
        };
        if (job.result?.executedSteps !== undefined) result.executedSteps = job.result.executedSteps;
        if (job.result?.proof) {
          result.proofData = job.result.proof;
          setProofData(result.response, job.result.proof);
        }
        apply(rec, e.at, { kind: 'completed', result });
        break;
      }
      case 'failed':
        apply(rec, e.at, { kind: 'failed', failure: e.failure ?? { kind: 'execution', reason: 'unknown failure' } });
        break;
      case 'progress':
        if (e.phase !== undefined) apply(rec, e.at, { kind: 'progress', phase: e.phase });
        break;
      default:
        apply(rec, e.at, { kind: e.kind });
    }
  }
  return rec;
}

/** The scheduler's spec of a restored job (blob ids of the bytes loaded again; -1 where not needed). */
export function specOfRestored(rec: JobRecord, blobs: BlobStore): JobSpec {
  const meta = rec.meta;
  const deadline = rec.deadline !== undefined ? { deadline: rec.deadline } : {};
  const specOf = (m: DataMode): InputSpec => {
    switch (m.kind) {
      case 'inline':
        return { kind: 'inline', blobId: m.blobId, bytes: blobs.get(m.blobId)?.length ?? 0 };
      case 'grpc':
        return { kind: 'grpc' };
      case 'local':
        return { kind: 'local', uri: m.uri };
      case 'none':
        return { kind: 'none' };
    }
  };
  switch (meta.kind) {
    case 'setup':
      return { kind: 'setup', hashId: meta.hashId, withHints: meta.withHints, programName: meta.programName };
    case 'prove':
    case 'execute':
      return {
        kind: meta.kind,
        hashId: meta.hashId,
        input: specOf(rec.input),
        hints: specOf(rec.hints),
        proofKind: meta.kind === 'prove' ? meta.proofKind : 1,
        ...deadline,
      };
    case 'wrap':
      return { kind: 'wrap', proofBlobId: rec.requestBlobIds[rec.requestBlobIds.length - 1] ?? -1, proofDest: meta.proofDest, ...deadline };
  }
}

/** Whether every byte the job's workers need can be sent again. */
export function replayable(rec: JobRecord): boolean {
  const ok = (m: DataMode, kind: 'input' | 'hints'): boolean => {
    if (m.kind === 'grpc') return rec.spooled[kind] !== undefined;
    if (m.kind === 'local') return rec.localSources[kind]?.source !== 'unix';
    return true;
  };
  return ok(rec.input, 'input') && ok(rec.hints, 'hints');
}

/** Puts proof bytes read back from a file into a result's wire object. */
export function setProofData(response: JobKindResponseWire, data: Buffer): void {
  if ('prove' in response) response.prove.proof.data = data;
  else if ('wrap' in response) response.wrap.proof.data = data;
}
