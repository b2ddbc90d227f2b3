/**
 * A whole cluster for integration tests: an in-process coordinator on port 0, simulated workers
 * speaking the real cluster protocol, a client of the public proto, and a registered, set-up program.
 */
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { SimFleet, type SimFleetOptions } from '../../src/sim/fleet';
import { simVk } from '../../src/sim/data';
import { apiClient, startTestCoordinator, type ConfigOverrides, type TestCoordinator } from './coordinator';
import { fakeElf, register, sample, scrape, sleep, submit, waitTerminal, type WaitResult } from '../api/helpers';

/** Short phase delays: jobs take tens of milliseconds. */
export const FAST_SIM: Partial<SimFleetOptions> = {
  setupDelayMs: 5,
  contributionDelayMs: 20,
  proveDelayMs: 20,
  aggregateDelayMs: 10,
  executeDelayMs: 20,
  wrapDelayMs: 20,
  recoveryDelayMs: 5,
  reconnectIntervalMs: 100,
};

export interface Cluster {
  tc: TestCoordinator;
  client: grpc.Client;
  fleet: SimFleet;
  hashId: string;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** `[coordinator]` overrides (shorthand for `overrides.coordinator`). */
  coordinator?: ConfigOverrides['coordinator'];
  overrides?: ConfigOverrides;
  sim?: Partial<SimFleetOptions>;
  /** One setup job per entry, with that `with_hints` (default `[false]`; `[]` = no setup). */
  setups?: boolean[];
  /** Distinguishes the fake ELF (and so the hash_id) between clusters. */
  tag?: string;
  /** The client's channel (default plaintext) and its options. */
  clientCredentials?: grpc.ChannelCredentials;
  clientOptions?: grpc.ChannelOptions;
}

export async function startCluster(workers: number, opts: ClusterOptions = {}): Promise<Cluster> {
  const overrides = { ...opts.overrides, coordinator: { ...opts.overrides?.coordinator, ...opts.coordinator } };
  const tc = await startTestCoordinator(overrides);
  const client = apiClient(tc.apiAddress, opts.clientOptions, opts.clientCredentials);
  const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers, ...FAST_SIM, ...opts.sim }).start();
  const close = async (): Promise<void> => {
    await fleet.stop();
    client.close();
    await tc.stop();
  };
  try {
    await fleet.waitAllRegistered(10_000);
    const hashId = await register(client, fakeElf(opts.tag ?? 'cluster'));
    for (const withHints of opts.setups ?? [false]) {
      const id = await submit(client, { setup: { hash_id: hashId, with_hints: withHints, program_name: 'guest' } });
      const r = await waitTerminal(client, id);
      assert.equal(r.job_status.status, 'completed', `setup: ${JSON.stringify(r.job_status)}`);
      assert.deepEqual((r.result?.setup as { vk: Buffer }).vk, simVk(hashId, withHints), 'the VK every worker agreed on');
    }
    return { tc, client, fleet, hashId, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export async function workersState(c: Cluster): Promise<Record<string, number>> {
  const text = await scrape(c.tc);
  const out: Record<string, number> = {};
  for (const s of ['idle', 'setting_up', 'ready', 'computing', 'disconnected']) {
    out[s] = sample(text, `coordinator_workers{state="${s}"}`);
  }
  return out;
}

/** Every worker back to Ready: none computing, none setting up or parked for recovery, none idle. */
export async function assertAllReady(c: Cluster, live: number): Promise<void> {
  const end = Date.now() + 5_000;
  let last: Record<string, number> = {};
  while (Date.now() < end) {
    last = await workersState(c);
    if (last.ready === live && last.computing === 0 && last.setting_up === 0 && last.idle === 0) return;
    await sleep(50);
  }
  assert.fail(`workers not all ready: ${JSON.stringify(last)}`);
}

export interface Failure {
  kind: string;
  timeout?: { phase?: number; limit?: { seconds: string; nanos: number } };
  execution?: { reason: string };
  input?: { reason: string };
  internal?: { trace_id: string };
}

export function failureOf(r: WaitResult): Failure {
  assert.equal(r.job_status.status, 'failed', JSON.stringify(r.job_status));
  return r.job_status.failed?.failure as unknown as Failure;
}
