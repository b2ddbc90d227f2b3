/**
 * Both gRPC ports listen with a backlog above Node's default 511 (grpc-js passes none), so a reconnect
 * storm of thousands of workers is not dropped by a full accept queue (docs/operations.md, Sizing).
 * Read from the kernel: on a listening socket `ss -ltn` shows the backlog in Send-Q. The kernel caps a
 * backlog at net.core.somaxconn, so that is what the ports must show.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { LISTEN_BACKLOG } from '../../src/main/process/grpc-server';
import { spawnCoordinator, stopCoordinator } from '../helpers/spawn-coordinator';

const NODE_DEFAULT_BACKLOG = 511;

/** Send-Q of the listening TCP socket on `port` (its backlog). */
function listenBacklog(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  const rows = out.split('\n').filter((l) => l.trim() !== '');
  assert.equal(rows.length, 1, `one listening socket on port ${port}: ${out}`);
  // State Recv-Q Send-Q Local Peer
  return Number(rows[0].trim().split(/\s+/)[2]);
}

test('the client API and worker ports listen with a backlog of min(LISTEN_BACKLOG, somaxconn)', async (t) => {
  const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  if (!(somaxconn > NODE_DEFAULT_BACKLOG)) {
    t.skip(`net.core.somaxconn is ${somaxconn}: no backlog above Node's ${NODE_DEFAULT_BACKLOG} can show here`);
    return;
  }
  const c = await spawnCoordinator({
    args: ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'],
    env: { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' },
  });
  try {
    const { api, cluster } = c.ports;
    assert.ok(api && cluster, `listener ports logged: ${JSON.stringify(c.ports)}`);
    const want = Math.min(LISTEN_BACKLOG, somaxconn);
    assert.equal(listenBacklog(cluster), want, 'worker port');
    assert.equal(listenBacklog(api), want, 'client API port');
  } finally {
    await stopCoordinator(c);
  }
});
