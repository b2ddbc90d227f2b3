/** Client API messages as proto-loader decodes them (`kind` names the member set in a oneof). */
import type { JobStatusWire } from './job-mirror';
import type { JobKindResponseWire } from './results';

export interface TimestampMsg {
  seconds?: string | number;
  nanos?: number;
}

export interface InputKindMsg {
  kind?: string;
  inline?: { data?: Buffer } | null;
  stream_uri?: string;
}

export interface ProofMsg {
  proof_id?: string;
  hash_id?: string;
  verification_key?: Buffer;
  proof_kind?: number;
  data?: Buffer;
  public_inputs?: Buffer;
}

export interface JobKindMsg {
  kind?: string;
  setup?: { hash_id?: string; with_hints?: boolean; program_name?: string } | null;
  prove?: { hash_id?: string; input?: InputKindMsg | null; proof_timeout?: TimestampMsg | null; proof_dest?: number; hints?: InputKindMsg | null } | null;
  execute?: { hash_id?: string; input?: InputKindMsg | null; execute_timeout?: TimestampMsg | null; hints?: InputKindMsg | null } | null;
  wrap?: { proof?: ProofMsg | null; proof_dest?: number; wrap_timeout?: TimestampMsg | null } | null;
}

export interface RegisterProgramMsg {
  zisk_elf?: Buffer;
}

export interface JobRequestMsg {
  job_kind?: JobKindMsg | null;
}

export interface JobIdMsg {
  job_id?: string;
}

export interface WaitMsg extends JobIdMsg {
  timeout_seconds?: number;
  _timeout_seconds?: string;
}

export interface PushMsg extends JobIdMsg {
  chunk?: { data?: Buffer } | null;
}

export interface WaitResponse {
  job_id: string;
  job_status: JobStatusWire;
  result?: JobKindResponseWire;
}

/** Which Push RPC a stream is: the data it carries. */
export type PushKind = 'input' | 'hints';
