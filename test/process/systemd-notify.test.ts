/**
 * systemd readiness (docs/operations.md, systemd): with NOTIFY_SOCKET set, the real binary sends
 * READY=1 once it serves and STOPPING=1 when the drain starts, through systemd-notify. The service
 * manager's end is emulated by a unix datagram socket (Node cannot bind one: a small python3 program
 * does) that also answers systemd-notify's barrier as systemd does, by closing the descriptor that
 * comes with it; without that answer systemd-notify would wait for its timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, spawnCoordinator, stopCoordinator, tempDir } from '../helpers/spawn-coordinator';

const LOOPBACK = { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1', ZISK_COORDINATOR_BACKEND_MODE: 'mock' };

const MANAGER = String.raw`
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4) + socket.CMSG_SPACE(12))
    pid, fds = None, []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds = list(a)
    print(json.dumps({"message": msg.decode(), "pid": pid}), flush=True)
    for fd in fds:
        os.close(fd)
`;

interface Datagram {
  message: string;
  pid: number | null;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

const missing = ['python3', 'systemd-notify'].filter((c) => !have(c));
const skip = missing.length > 0 ? `needs ${missing.join(' and ')} (Debian: python3, systemd; .ci/run installs them)` : false;

/** The emulated service manager: every datagram it receives, in order, and a way to wait for one. */
async function notifySocket(dir: string): Promise<{ path: string; received: Datagram[]; next(pred: (d: Datagram) => boolean): Promise<Datagram>; proc: ChildProcess }> {
  const socketPath = path.join(dir, 'notify.sock');
  const proc = spawn('python3', ['-c', MANAGER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const received: Datagram[] = [];
  const waiters: { pred: (d: Datagram) => boolean; resolve: (d: Datagram) => void }[] = [];
  let bound!: () => void;
  const ready = new Promise<void>((r) => (bound = r));
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const raw of parts) {
      const obj = JSON.parse(raw) as Datagram & { bound?: boolean };
      if (obj.bound) {
        bound();
        continue;
      }
      received.push(obj);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].pred(obj)) waiters.splice(i, 1)[0].resolve(obj);
      }
    }
  });
  await ready;
  return {
    path: socketPath,
    received,
    proc,
    next: (pred) => {
      const seen = received.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

const has = (key: string) => (d: Datagram) => d.message.split('\n').includes(key);
/** What each message says, without the barriers and the MAINPID every message of systemd-notify --pid carries. */
const said = (received: Datagram[]): string[] =>
  received.map((d) => d.message.split('\n').filter((l) => !l.startsWith('MAINPID=')).join('\n')).filter((m) => m !== 'BARRIER=1');

test('NOTIFY_SOCKET: READY=1 arrives once serving (health already 200), STOPPING=1 when the drain starts', { skip, timeout: 30_000 }, async (t) => {
  const dir = tempDir('zisk-notify-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const manager = await notifySocket(dir);
  t.after(() => manager.proc.kill());
  const metrics = await freePort();
  const c = await spawnCoordinator({
    args: ['--api-port', '0', '--metrics-port', String(metrics)],
    env: { ...LOOPBACK, NOTIFY_SOCKET: manager.path },
    waitServing: false,
  });
  t.after(() => stopCoordinator(c));
  const ready = await manager.next(has('READY=1'));
  // Whoever hears READY=1 may send traffic at once: the coordinator must already serve.
  assert.equal((await fetch(`http://127.0.0.1:${metrics}/health`)).status, 200);
  const serving = await c.waitForLine((l) => l.msg === 'zisk-coordinator serving');
  // MAINPID is the coordinator's own PID (the launcher execs node), whoever sends the datagram.
  assert.ok(has(`MAINPID=${String(serving.pid)}`)(ready), ready.message);
  if (process.getuid?.() === 0) {
    // As root systemd-notify credits the message to --pid, the coordinator itself (NotifyAccess=main would do).
    assert.equal(ready.pid, serving.pid);
  }
  assert.deepEqual(said(manager.received), ['READY=1']);

  c.kill('SIGTERM');
  await manager.next(has('STOPPING=1'));
  assert.equal((await c.exited).code, 0);
  assert.deepEqual(said(manager.received), ['READY=1', 'STOPPING=1']);
  assert.ok(manager.received.some(has('BARRIER=1')), 'systemd-notify waited for the manager (its barrier)');
});

test('NOTIFY_SOCKET set but no systemd-notify on PATH: a warning naming the problem, and the coordinator serves anyway', { skip, timeout: 30_000 }, async (t) => {
  const dir = tempDir('zisk-notify-nopath-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  const c = await spawnCoordinator({
    args: ['--api-port', '0', '--metrics-port', '0'],
    env: { ...LOOPBACK, NOTIFY_SOCKET: path.join(dir, 'nobody.sock'), PATH: bin },
  });
  t.after(() => stopCoordinator(c));
  const warning = await c.waitForLine((l) => l.level === 'warn' && String(l.msg).includes('systemd-notify'));
  assert.match(String(warning.msg), /NOTIFY_SOCKET is set but systemd-notify is not on PATH/);
  assert.equal((await fetch(`http://127.0.0.1:${c.ports.metrics}/health`)).status, 200);
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
});
