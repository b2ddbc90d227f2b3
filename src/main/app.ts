import type { LoadedConfig } from '../shared/config/load';

/** Starts the coordinator with an already validated configuration; resolves when it has stopped. */
export async function runCoordinator(_loaded: LoadedConfig): Promise<number> {
  throw new Error('not implemented yet');
}
