/** Client-side helpers for the client API tests: typed-enough calls, error decoding, streams. */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { blake3 } from 'hash-wasm';
import { apiErrorOf, type DecodedApiError } from '../../src/main/api/grpc-errors';
import { apiClient, startTestCoordinator, unary, type ConfigOverrides, type TestCoordinator } from '../helpers/coordinator';

export { apiClient, unary };

export interface CallError {
  code: number;
  details: string;
  apiError: DecodedApiError | undefined;
  metadata: grpc.Metadata | undefined;
}

function asCallError(err: unknown): CallError {
  const e = err as grpc.ServiceError;
  return { code: e.code, details: e.details, apiError: apiErrorOf(e.metadata), metadata: e.metadata };
}

/** Runs a unary call that must fail; returns the decoded error. */
export async function callError(client: grpc.Client, method: string, request: object, deadlineMs = 10_000): Promise<CallError> {
  try {
    await unary(client, method, request, deadlineMs);
  } catch (err) {
    return asCallError(err);
  }
  throw new Error(`${method} succeeded but an error was expected`);
}

/** The call fails with this gRPC code, status message and ApiError code (message = status message unless given). */
export function assertError(e: CallError, code: grpc.status, details: string, apiCode: number, apiMessage = details): void {
  assert.equal(e.details, details);
  assert.equal(e.code, code, `status code for "${e.details}"`);
  assert.ok(e.apiError, `ApiError detail present for "${details}"`);
  assert.equal(e.apiError.code, apiCode);
  assert.equal(e.apiError.message, apiMessage);
}

export const API_NAMES: Record<number, string> = {
  1001: 'JOB_NOT_FOUND',
  1002: 'PROGRAM_NOT_FOUND',
  1004: 'INVALID_JOB_STATE',
  1005: 'INVALID_PROOF_CONVERSION',
  1006: 'INVALID_ARGUMENT',
  2001: 'CLUSTER_UNAVAILABLE',
  2003: 'SHUTTING_DOWN',
  3001: 'INTERNAL',
};

export async function blake3Hex(data: Buffer): Promise<string> {
  return blake3(data);
}

/** A fake ELF: the coordinator does not check its format. */
export function fakeElf(tag: string, size = 4096): Buffer {
  const b = Buffer.alloc(size);
  Buffer.from(`\x7fELF ${tag}`).copy(b);
  for (let i = 16; i < size; i++) b[i] = (i * 31 + tag.length) & 0xff;
  return b;
}

export async function register(client: grpc.Client, elf: Buffer): Promise<string> {
  const res = await unary<{ hash_id: string }>(client, 'RegisterGuestProgram', { zisk_elf: elf });
  return res.hash_id;
}

export async function submit(client: grpc.Client, jobKind: object): Promise<string> {
  const res = await unary<{ job_id: string }>(client, 'JobRequest', { job_kind: jobKind });
  return res.job_id;
}

export const inline = (data: Buffer = Buffer.alloc(0)): object => ({ inline: { data } });

// --- WaitJobResult / WatchJob shapes as the public proto decodes them ---

export interface WaitResult {
  job_id: string;
  job_status: { status: string; running?: { phase?: number }; failed?: { failure: Record<string, unknown> } };
  result?: Record<string, unknown> & { kind: string };
}

export async function wait(client: grpc.Client, jobId: string, timeoutSeconds?: number, deadlineMs = 10_000): Promise<WaitResult> {
  const req: Record<string, unknown> = { job_id: jobId };
  if (timeoutSeconds !== undefined) req.timeout_seconds = timeoutSeconds;
  return unary<WaitResult>(client, 'WaitJobResult', req, deadlineMs);
}

/** Loops WaitJobResult until a terminal status (like the SDK), bounded by `limitMs`. */
export async function waitTerminal(client: grpc.Client, jobId: string, limitMs = 15_000): Promise<WaitResult> {
  const end = Date.now() + limitMs;
  for (;;) {
    const r = await wait(client, jobId, 1);
    if (['completed', 'failed', 'cancelled'].includes(r.job_status.status)) return r;
    if (Date.now() > end) throw new Error(`job ${jobId} still ${r.job_status.status} after ${limitMs} ms`);
  }
}

export interface WatchedEvent {
  event: string;
  [k: string]: unknown;
}

export interface WatchHandle {
  events: WatchedEvent[];
  /** resolves with the final status once the stream ends */
  done: Promise<{ code: number; details: string; apiError: DecodedApiError | undefined }>;
  call: grpc.ClientReadableStream<WatchedEvent>;
}

export function watch(client: grpc.Client, jobId: string, deadlineMs = 20_000): WatchHandle {
  const fn = (client as unknown as Record<string, (req: object, opts: grpc.CallOptions) => grpc.ClientReadableStream<WatchedEvent>>).WatchJob;
  const call = fn.call(client, { job_id: jobId }, { deadline: Date.now() + deadlineMs });
  const events: WatchedEvent[] = [];
  call.on('data', (e: WatchedEvent) => events.push(e));
  // 'status' can come before a paused stream has delivered its buffered messages: an OK stream is
  // done once it has also ended.
  const done = new Promise<{ code: number; details: string; apiError: DecodedApiError | undefined }>((resolve) => {
    let status: grpc.StatusObject | undefined;
    let ended = false;
    const settle = (): void => {
      if (status && (ended || status.code !== grpc.status.OK)) {
        resolve({ code: status.code, details: status.details, apiError: apiErrorOf(status.metadata) });
      }
    };
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
    call.on('end', () => {
      ended = true;
      settle();
    });
    call.on('error', () => undefined);
  });
  return { events, done, call };
}

/** Resolves with the first event named `name` the watch delivered (already or later); rejects if the stream ends first. */
export function watchedEvent(w: WatchHandle, name: string): Promise<WatchedEvent> {
  const seen = w.events.find((e) => e.event === name);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const onData = (e: WatchedEvent): void => {
      if (e.event !== name) return;
      w.call.off('data', onData);
      resolve(e);
    };
    w.call.on('data', onData);
    void w.done.then((status) => {
      w.call.off('data', onData);
      reject(new Error(`watch ended (code ${status.code}) before a ${name} event: ${JSON.stringify(w.events.map((x) => x.event))}`));
    });
  });
}

/** A client stream (PushJobInput / PushJobHintsInput) writing `messages`, then half-closing. */
export function pushStream(
  client: grpc.Client,
  method: 'PushJobInput' | 'PushJobHintsInput',
  messages: object[],
  opts: { deadlineMs?: number; keepOpen?: boolean } = {},
): { result: Promise<object>; call: grpc.ClientWritableStream<object> } {
  const fn = (client as unknown as Record<string, (opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: object) => void) => grpc.ClientWritableStream<object>>)[method];
  let call!: grpc.ClientWritableStream<object>;
  const result = new Promise<object>((resolve, reject) => {
    call = fn.call(client, { deadline: Date.now() + (opts.deadlineMs ?? 10_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
  for (const m of messages) call.write(m);
  if (!opts.keepOpen) call.end();
  return { result, call };
}

export async function pushError(p: Promise<object>): Promise<CallError> {
  try {
    await p;
  } catch (err) {
    return asCallError(err);
  }
  throw new Error('push succeeded but an error was expected');
}

export async function scrape(tc: TestCoordinator): Promise<string> {
  const res = await fetch(`${tc.metricsUrl}/metrics`);
  return res.text();
}

/** Value of one sample line (`name{labels}`), 0 when absent. */
export function sample(text: string, series: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

export async function withCoordinator<T>(overrides: ConfigOverrides, fn: (tc: TestCoordinator, client: grpc.Client) => Promise<T>): Promise<T> {
  const tc = await startTestCoordinator(overrides);
  const client = apiClient(tc.apiAddress);
  try {
    return await fn(tc, client);
  } finally {
    client.close();
    await tc.stop();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const randomJobId = '7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a';
