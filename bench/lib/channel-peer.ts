/**
 * The far end of the `channel` scenario: a worker thread that answers each batch it receives with a
 * batch of effects, over the transport under test (bench/scenarios/channel.ts).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { mailboxRead, mailboxWrite, type ChannelMode, type PeerData } from './channel-wire';

const data = workerData as PeerData;
const mode: ChannelMode = data.mode;

if (mode === 'port-objects' || mode === 'port-json') {
  parentPort?.once('message', (port: MessagePort) => {
    port.on('message', (batch: unknown) => {
      if (mode === 'port-json') JSON.parse(batch as string);
      port.postMessage(mode === 'port-json' ? JSON.stringify(data.reply) : data.reply);
    });
  });
} else {
  // The thread never returns to its event loop: it sleeps in Atomics.wait until the main thread
  // bumps the inbound sequence number, as a scheduler thread built this way would.
  const inbound = new Int32Array(data.toPeer);
  let seen = 0;
  for (;;) {
    Atomics.wait(inbound, 0, seen);
    const seq = Atomics.load(inbound, 0);
    if (seq < 0) break;
    seen = seq;
    JSON.parse(mailboxRead(data.toPeer));
    mailboxWrite(data.toMain, JSON.stringify(data.reply));
    if (mode === 'sab-nudge') parentPort?.postMessage(0);
    else Atomics.notify(new Int32Array(data.toMain), 0);
  }
}
