/** The members of `WorkerMessage.payload` (proto/zisk_distributed_api.proto), in field-number order. */
export const WORKER_PAYLOADS = [
  'heartbeat_ack',
  'error',
  'register',
  'reconnect',
  'execute_task_response',
  'job_cancelled_ack',
  'setup_program_ack',
  'recovery_complete',
] as const;

export type WorkerPayloadName = (typeof WORKER_PAYLOADS)[number];
