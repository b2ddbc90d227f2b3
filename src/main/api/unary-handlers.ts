/** RegisterGuestProgram, JobRequest and CancelJob: the client API's calls answered by the registry or the scheduler. */
import { randomUUID } from 'node:crypto';
import { apiErrors, ERROR_CODES } from '../../shared/errors';
import type { BlobId, InputSpec, JobSpec } from '../../shared/scheduler/types';
import type { BlobStore } from '../data/blob-store';
import { ApiFailure } from './grpc-errors';
import { JobRecord, type DataMode } from './job-mirror';
import type { ApiContext } from './context';
import type { JobIdMsg, JobRequestMsg, RegisterProgramMsg } from './messages';
import type { SubmitOutcome } from './scheduler-requests';
import { checkElfSize, invalid, parseJobRequest, type ParsedData, type ParsedJob } from './validation';

export async function registerProgram(ctx: ApiContext, req: RegisterProgramMsg): Promise<{ hash_id: string }> {
  const elf = req.zisk_elf;
  if (!elf || elf.length === 0) throw invalid('zisk_elf must not be empty');
  checkElfSize(elf.length, ctx.limits);
  const size = elf.length;
  const { hashId, created } = await ctx.programs.register(elf);
  ctx.deps.logger.info(
    { hash_id: hashId, bytes: size, created },
    created ? `registered guest program ${hashId} (${size} bytes)` : `guest program ${hashId} already registered`,
  );
  return { hash_id: hashId };
}

export async function jobRequest(ctx: ApiContext, req: JobRequestMsg): Promise<{ job_id: string }> {
  const { deps, programs, jobs } = ctx;
  const parsed = parseJobRequest(req, deps.directories.inputs, ctx.limits);
  const { meta } = parsed;
  if (meta.kind !== 'wrap' && !programs.has(meta.hashId)) {
    throw new ApiFailure(apiErrors.programNotFound(meta.hashId));
  }
  if (!deps.lifecycle.acceptingJobs || ctx.closed()) throw new ApiFailure(apiErrors.shuttingDown());
  const shortage = deps.storeShortage();
  if (shortage) throw new ApiFailure(apiErrors.stateStoreUnavailable(shortage));
  // Workers are sent the ELF of a setup from memory; a cache file that vanished means "not found".
  if (meta.kind === 'setup' && !ctx.mock && !(await programs.acquireElf(meta.hashId))) {
    throw new ApiFailure(apiErrors.programNotFound(meta.hashId));
  }

  const jobId = randomUUID();
  const stored = storeRequest(parsed, deps.blobs);
  const rec = new JobRecord(jobId, parsed.kind, meta, stored.input, stored.hints, Date.now());
  rec.requestBlobIds.push(...stored.blobIds);
  rec.deadline = parsed.deadline;
  rec.wrapProof = parsed.wrapProof;
  jobs.add(rec);

  let outcome: SubmitOutcome;
  try {
    outcome = await ctx.scheduler.submit(jobId, stored.spec);
  } catch (err) {
    // Whatever the scheduler does later with this job, nobody will ever know its id.
    ctx.scheduler.cancelUnanswered(jobId);
    jobs.discard(rec);
    throw err;
  }
  if (!outcome.ok) {
    jobs.discard(rec);
    const code = outcome.error.code in ERROR_CODES ? outcome.error.code : 'INTERNAL';
    throw new ApiFailure({ code, message: outcome.error.message });
  }
  try {
    await jobs.accepted(rec);
  } catch (err) {
    throw new ApiFailure(apiErrors.stateStoreUnavailable((err as Error).message));
  }
  if (rec.terminal) jobs.afterTerminal(rec);
  else if (!ctx.mock) jobs.startLocalSources(rec, parsed);
  return { job_id: jobId };
}

export async function cancelJob(ctx: ApiContext, req: JobIdMsg): Promise<{ job_id: string; cancelled: boolean }> {
  const rec = ctx.jobs.lookup(req.job_id);
  if (rec.terminal) return { job_id: rec.id, cancelled: false };
  const outcome = await ctx.scheduler.cancel(rec.id);
  if (!outcome.found) throw new ApiFailure(apiErrors.jobNotFound(rec.id));
  // Answered once clients see the job cancelled, i.e. once that is on disk (docs/decisions.md, Durable jobs).
  if (rec.pendingTerminal) await rec.pendingTerminal;
  return { job_id: rec.id, cancelled: outcome.cancelled };
}

interface StoredRequest {
  input: DataMode;
  hints: DataMode;
  spec: JobSpec;
  /** Blobs the request put in the store (inline input and hints, the proof to wrap), in that order. */
  blobIds: BlobId[];
}

/** The job's data modes and its scheduler spec; request bytes go to the blob store. */
function storeRequest(parsed: ParsedJob, blobs: BlobStore): StoredRequest {
  const blobIds: BlobId[] = [];
  const toMode = (d: ParsedData): DataMode => {
    if (d.kind === 'inline') {
      const blobId = blobs.put(d.data);
      blobIds.push(blobId);
      return { kind: 'inline', blobId };
    }
    if (d.kind === 'grpc' || d.kind === 'local') return { kind: d.kind, uri: d.uri };
    return { kind: 'none' };
  };
  const input = toMode(parsed.input);
  const hints = toMode(parsed.hints);
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
  const { meta } = parsed;
  const deadline = parsed.deadline !== undefined ? { deadline: parsed.deadline } : {};
  let spec: JobSpec;
  switch (meta.kind) {
    case 'setup':
      spec = { kind: 'setup', hashId: meta.hashId, withHints: meta.withHints, programName: meta.programName };
      break;
    case 'prove':
    case 'execute':
      spec = {
        kind: meta.kind,
        hashId: meta.hashId,
        input: specOf(input),
        hints: specOf(hints),
        proofKind: meta.kind === 'prove' ? meta.proofKind : 1,
        ...deadline,
      };
      break;
    case 'wrap': {
      const proofBlobId = blobs.put(parsed.wrapProof ?? Buffer.alloc(0));
      blobIds.push(proofBlobId);
      spec = { kind: 'wrap', proofBlobId, proofDest: meta.proofDest, ...deadline };
      break;
    }
  }
  return { input, hints, spec, blobIds };
}
