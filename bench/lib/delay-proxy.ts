/**
 * A TCP proxy that adds latency, since this machine's kernel has no netem: every chunk read from one
 * side is written to the other `delayMs` after it arrived (each direction alone, so 5 ms each way is a
 * 10 ms round trip). Chunks are scheduled, not stop-and-wait: any number of them are in flight at
 * once, in order, so the throughput through the proxy is whatever the endpoints' windows allow
 * (window ÷ round trip), not one chunk per delay.
 *
 * Backpressure on both sockets: a destination whose `write()` returns false is not written again
 * until 'drain' (the due chunks wait in order), and a source is paused while more than `highWaterBytes`
 * of its data wait in the proxy (resumed below half of it). The bound must exceed bandwidth × delay
 * or it caps the throughput (16 MiB at 5 ms: 3.3 GB/s, far above what this machine moves).
 *
 * End of stream: a FIN is forwarded after the data before it (it is delayed like a chunk); when one
 * socket closes, the other is ended once what was queued for it went out, then destroyed. An error on
 * either socket destroys both at once.
 *
 * Every chunk's passage (arrival, departure, size) is logged per direction, so a scenario can time a
 * transfer on the wire: from its first byte into the proxy to its last byte out (`transfer()`).
 *
 * Run as a forked child (`DelayProxyApi`), it serves proxies to the bench over IPC, so the copying
 * does not run on the bench process's event loop.
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { serveIpc } from './ipc';

export interface DelayProxyOptions {
  /** `host:port` to forward to. */
  target: string;
  /** Added to every chunk, in each direction. */
  delayMs: number;
  /** Bytes of one direction waiting in the proxy above which its source is paused (default 16 MiB). */
  highWaterBytes?: number;
}

export interface DelayProxyStats {
  connections: number;
  /** Bytes forwarded client → target and target → client. */
  upBytes: number;
  downBytes: number;
  /** Most bytes of one direction ever waiting in the proxy. */
  maxQueuedBytes: number;
  /** Times a source was paused because its direction was above the high-water mark. */
  pauses: number;
}

/** A transfer as the proxy saw it (host clock, ms: `performance.timeOrigin + performance.now()`, like `hostNow()`). */
export interface WireTransfer {
  bytes: number;
  /** The first counted chunk arrived. */
  firstInAt: number;
  /** The last counted chunk was written on (0: not yet). */
  lastOutAt: number;
}

export type LaneName = 'up' | 'down';

const DEFAULT_HIGH_WATER = 16 << 20;
/** Passages kept per direction (the oldest half is dropped beyond this). */
const LOG_LIMIT = 1 << 18;

interface Passage {
  inAt: number;
  outAt: number;
  bytes: number;
}

interface Slot {
  due: number;
  /** null: the source's FIN. */
  data: Buffer | null;
  passage?: Passage;
}

/** One direction of one connection: `src` → delay → `dst`. */
class Lane {
  private readonly queue: Slot[] = [];
  private head = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private blocked = false;
  private paused = false;
  private ended = false;
  /** The FIN went to dst (or dst is gone). */
  finished = false;
  onFinished: (() => void) | undefined;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly delayMs: number,
    private readonly highWater: number,
    private readonly stats: DelayProxyStats,
    private readonly dir: 'upBytes' | 'downBytes',
    private readonly log: Passage[],
  ) {
    src.on('data', (chunk: Buffer) => this.push(chunk));
    src.on('end', () => this.end());
    dst.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  private push(chunk: Buffer): void {
    if (this.ended) return;
    const now = performance.now();
    const passage = { inAt: performance.timeOrigin + now, outAt: 0, bytes: chunk.length };
    if (this.log.length >= LOG_LIMIT) this.log.splice(0, LOG_LIMIT / 2);
    this.log.push(passage);
    this.queue.push({ due: now + this.delayMs, data: chunk, passage });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > this.stats.maxQueuedBytes) this.stats.maxQueuedBytes = this.queuedBytes;
    if (!this.paused && this.queuedBytes > this.highWater) {
      this.paused = true;
      this.stats.pauses++;
      this.src.pause();
    }
    this.arm();
  }

  /** The source is done: the FIN follows the data queued before it. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.push({ due: performance.now() + this.delayMs, data: null });
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.blocked || this.head >= this.queue.length) return;
    const wait = this.queue[this.head].due - performance.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    // Timers may fire up to a millisecond early against performance.now(): flush() re-arms then.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.ceil(wait));
  }

  private flush(): void {
    const now = performance.now();
    while (!this.blocked && this.head < this.queue.length && this.queue[this.head].due <= now) {
      const slot = this.queue[this.head++];
      if (slot.data === null) {
        this.finish();
        return;
      }
      this.queuedBytes -= slot.data.length;
      this.stats[this.dir] += slot.data.length;
      if (slot.passage) slot.passage.outAt = performance.timeOrigin + now;
      if (!this.dst.destroyed && !this.dst.write(slot.data)) this.blocked = true;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.paused && this.queuedBytes <= this.highWater / 2) {
      this.paused = false;
      this.src.resume();
    }
    this.arm();
  }

  private finish(): void {
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    if (!this.dst.destroyed) this.dst.end();
    this.finished = true;
    this.onFinished?.();
  }

  /** The other end is gone: nothing more will be delivered. */
  drop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.ended = true;
    this.finished = true;
  }
}

export class DelayProxy {
  readonly stats: DelayProxyStats = { connections: 0, upBytes: 0, downBytes: 0, maxQueuedBytes: 0, pauses: 0 };
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly logs: Record<LaneName, Passage[]> = { up: [], down: [] };
  private readonly host: string;
  private readonly port: number;

  private constructor(private readonly opts: DelayProxyOptions) {
    const i = opts.target.lastIndexOf(':');
    this.host = opts.target.slice(0, i).replace(/^\[|\]$/g, '');
    this.port = Number(opts.target.slice(i + 1));
    if (!this.host || !(this.port > 0)) throw new Error(`delay proxy: bad target ${opts.target}`);
    if (!(opts.delayMs >= 0)) throw new RangeError(`delay proxy: bad delay ${opts.delayMs}`);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client));
  }

  /** Listens on 127.0.0.1 (an OS-chosen port unless `port` is given). */
  static async start(opts: DelayProxyOptions, port = 0): Promise<DelayProxy> {
    const p = new DelayProxy(opts);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(port, '127.0.0.1', () => {
        p.server.off('error', reject);
        resolve();
      });
    });
    return p;
  }

  get address(): string {
    return `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  get listenPort(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    this.stats.connections++;
    client.pause();
    const upstream = net.connect({ host: this.host, port: this.port, allowHalfOpen: true, noDelay: true });
    this.track(client);
    this.track(upstream);
    const hw = this.opts.highWaterBytes ?? DEFAULT_HIGH_WATER;
    const up = new Lane(client, upstream, this.opts.delayMs, hw, this.stats, 'upBytes', this.logs.up);
    const down = new Lane(upstream, client, this.opts.delayMs, hw, this.stats, 'downBytes', this.logs.down);
    // Both FINs forwarded: the connection is over.
    const maybeDone = (): void => {
      if (up.finished && down.finished) {
        client.destroySoon();
        upstream.destroySoon();
      }
    };
    up.onFinished = maybeDone;
    down.onFinished = maybeDone;
    upstream.once('connect', () => client.resume());
    let failed = false;
    const fail = (): void => {
      if (failed) return;
      failed = true;
      up.drop();
      down.drop();
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    // One side closed (without an error): what it had sent still goes out, then the other side ends.
    const closed = (gone: net.Socket, toGone: Lane, fromGone: Lane, other: net.Socket): void => {
      gone.once('close', () => {
        toGone.drop();
        fromGone.end();
        if (fromGone.finished) other.destroySoon();
        else fromGone.onFinished = () => other.destroySoon();
      });
    };
    closed(client, down, up, upstream);
    closed(upstream, up, down, client);
  }

  /**
   * The chunks of `lane` (up: client → target) that arrived between `fromAt` and `toAt` (host clock),
   * leaving out chunks under `minChunkBytes` (a heartbeat must not open a transfer); null if none.
   */
  transfer(lane: LaneName, fromAt: number, toAt: number, minChunkBytes = 1024): WireTransfer | null {
    let t: WireTransfer | null = null;
    let pending = false;
    for (const p of this.logs[lane]) {
      if (p.inAt < fromAt || p.inAt > toAt || p.bytes < minChunkBytes) continue;
      if (!t) t = { bytes: 0, firstInAt: p.inAt, lastOutAt: 0 };
      t.bytes += p.bytes;
      t.lastOutAt = Math.max(t.lastOutAt, p.outAt);
      if (p.outAt === 0) pending = true;
    }
    if (t && pending) t.lastOutAt = 0;
    return t;
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  /** Stops listening and destroys every connection. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ------------------------------------------------------------------------------------------ IPC host

export type DelayProxyApi = {
  /** Opens a proxy to `target`; answers its `host:port`. */
  open: { params: DelayProxyOptions; result: { address: string } };
  stats: { params: { address: string }; result: DelayProxyStats };
  transfer: { params: { address: string; lane: LaneName; fromAt: number; toAt: number; minChunkBytes?: number }; result: WireTransfer | null };
  closeProxy: { params: { address: string }; result: null };
};

if (require.main === module) {
  const proxies = new Map<string, DelayProxy>();
  const get = (address: string): DelayProxy => {
    const p = proxies.get(address);
    if (!p) throw new Error(`no proxy at ${address}`);
    return p;
  };
  serveIpc<DelayProxyApi>({
    open: async (opts) => {
      const p = await DelayProxy.start(opts);
      proxies.set(p.address, p);
      return { address: p.address };
    },
    stats: ({ address }) => ({ ...get(address).stats }),
    transfer: ({ address, lane, fromAt, toAt, minChunkBytes }) => get(address).transfer(lane, fromAt, toAt, minChunkBytes),
    closeProxy: async ({ address }) => {
      await get(address).close();
      proxies.delete(address);
      return null;
    },
  });
}
