import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import type { MessageTypeDefinition, PackageDefinition, ServiceDefinition } from '@grpc/proto-loader';

/** Root of the shipped .proto files (works from src/ via ts and from dist/src after compilation). */
export const PROTO_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../proto' : '../../proto');

/**
 * Decoding options shared by every proto we load. `longs: String` keeps every uint64 lossless
 * (docs/decisions.md, Wire contract); enums stay numeric so unknown values can be told apart from known
 * ones; `oneofs` exposes which member of a oneof is set; `defaults` fills proto3 implicit-presence
 * fields while leaving explicit-presence (`optional`) fields absent when they were not on the wire.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export const CLIENT_API_PROTO = 'zisk_coordinator_api.proto';
export const CLUSTER_API_PROTO = 'zisk_distributed_api.proto';
/** Internal view of the cluster proto: relayed uint64 arrays as opaque bytes (docs/decisions.md, Wire contract). */
export const CLUSTER_VIEW_PROTO = 'internal/cluster_relay_view.proto';
export const RPC_STATUS_PROTO = 'google/rpc/status.proto';

const cache = new Map<string, PackageDefinition>();

export function loadProto(file: string): PackageDefinition {
  let def = cache.get(file);
  if (!def) {
    def = protoLoader.loadSync(path.join(PROTO_DIR, file), LOADER_OPTIONS);
    cache.set(file, def);
  }
  return def;
}

export function serviceDefinition(file: string, fullName: string): ServiceDefinition {
  const def = loadProto(file)[fullName];
  // Message and enum definitions carry a `format` key; service definitions do not.
  if (!def || 'format' in def) throw new Error(`${fullName} is not a service in ${file}`);
  return def as ServiceDefinition;
}

export function messageType(file: string, fullName: string): MessageTypeDefinition<object, object> {
  const def = loadProto(file)[fullName];
  if (!def || !('format' in def) || def.format !== 'Protocol Buffer 3 DescriptorProto') {
    throw new Error(`${fullName} is not a message in ${file}`);
  }
  return def as MessageTypeDefinition<object, object>;
}

export const CLIENT_API_SERVICE = 'zisk.coordinator.v1.ZiskCoordinatorApi';
export const CLUSTER_API_SERVICE = 'zisk.distributed.api.v1.ZiskDistributedApi';
