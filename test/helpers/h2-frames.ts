/**
 * An HTTP/2 client on a bare TCP socket, for tests that must see the frames a server sends (SETTINGS,
 * WINDOW_UPDATE, PING), which `node:http2` hides. It sends the preface and an empty SETTINGS, acks
 * the server's SETTINGS and PINGs like any client, and reports every frame.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';

export const FRAME = { SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 } as const;
export const FLAG_ACK = 0x1;

export interface H2Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

export class RawH2Connection extends EventEmitter<{ frame: [H2Frame]; close: [] }> {
  readonly frames: H2Frame[] = [];
  private buf = Buffer.alloc(0);
  private readonly socket: net.Socket;

  constructor(port: number) {
    super();
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.emit('close'));
    this.socket.on('connect', () => {
      this.socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      this.socket.write(frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)));
    });
    this.socket.on('data', (d: Buffer) => this.onData(d));
  }

  /** Resolves with the first frame (already seen or to come) that matches. */
  waitFor(pred: (f: H2Frame) => boolean, timeoutMs = 10_000): Promise<H2Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('frame', listener);
        reject(new Error(`frame not seen within ${timeoutMs} ms; types seen: ${this.frames.map((f) => f.type).join(',')}`));
      }, timeoutMs);
      const listener = (f: H2Frame): void => {
        if (!pred(f)) return;
        clearTimeout(timer);
        this.off('frame', listener);
        resolve(f);
      };
      this.on('frame', listener);
    });
  }

  count(pred: (f: H2Frame) => boolean): number {
    return this.frames.filter(pred).length;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const f: H2Frame = {
        type: this.buf[3],
        flags: this.buf[4],
        streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buf.subarray(9, 9 + len)),
      };
      this.buf = this.buf.subarray(9 + len);
      if (f.type === FRAME.SETTINGS && !(f.flags & FLAG_ACK)) this.socket.write(frame(FRAME.SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
      if (f.type === FRAME.PING && !(f.flags & FLAG_ACK)) this.socket.write(frame(FRAME.PING, FLAG_ACK, 0, f.payload));
      this.frames.push(f);
      this.emit('frame', f);
    }
  }
}

export const isPing = (f: H2Frame): boolean => f.type === FRAME.PING && !(f.flags & FLAG_ACK);
