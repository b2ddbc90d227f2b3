/**
 * Simulated `zisk-worker` fleet speaking the real cluster protocol, over grpc-js or (`wire: 'upstream'`)
 * over HTTP/2 the way upstream's worker speaks it.
 */
export * from './options';
export * from './messages';
export * from './data';
export { SimWorker, hostNow, workerStreamMethod, simChannelOptions, simCredentials } from './worker';
export type {
  AggTaskRecord,
  DisconnectInfo,
  DisconnectReason,
  JobContextInfo,
  JobStreamCounters,
  LogEntry,
  ResponseEndInfo,
  SimWorkerEvents,
  SimWorkerState,
  SimWorkerStats,
} from './worker';
export { SimFleet } from './fleet';
export type { FleetLogEntry, FleetStats, LogFilter, SimFleetEvents, SimFleetOptions } from './fleet';
export {
  decodeChallenges,
  decodePackedUint64,
  encodeChallenges,
  encodeProofList,
  packUint64,
  walkProofList,
} from './wire';
