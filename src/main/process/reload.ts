/**
 * What SIGHUP does to logging (docs/operations.md, Reloading: SIGHUP): the log file is reopened at
 * its path (logrotate renames it first), and the configuration is read again, as at start (same
 * files, environment and flags, so a level given by a flag or a variable still wins), for its log
 * level. Everything else in it takes effect at the next start, and the reload says which keys
 * changed. A configuration that no longer loads changes nothing.
 */
import { ConfigError, type LoadedConfig } from '../../shared/config/load';
import type { Config, LogLevel } from '../../shared/config/types';
import { reopenLogFiles, type Logger } from '../../shared/logging';

/** Keys a reload applies; every other changed key waits for a restart. Other reload hooks add theirs. */
export const RELOADABLE_KEYS: Set<string> = new Set(['logging.level']);

export interface LoggingReload {
  logger: Logger;
  /** The configuration as it was loaded at start (what runs). */
  running: Config;
  /** Reads the configuration again; throws ConfigError when it no longer loads. */
  reread: (() => LoadedConfig) | undefined;
  /** Applies a level to every thread that logs. */
  applyLevel(level: LogLevel): void;
}

export function reloadLogging(r: LoggingReload): void {
  const { logger } = r;
  try {
    const paths = reopenLogFiles(logger);
    if (paths.length > 0) logger.info({ paths }, `reopened log file ${paths.join(', ')}`);
  } catch (err) {
    logger.error({ err: (err as Error).message }, `${(err as Error).message}; still writing to the previous file`);
  }
  if (!r.reread) return;
  let loaded: LoadedConfig;
  try {
    loaded = r.reread();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logger.error({ problems: err.problems }, `configuration not re-read (${err.problems.join('; ')}): nothing changed, log level stays ${logger.level}`);
    return;
  }
  const level = loaded.config.logging.level;
  const previous = logger.level;
  if (level !== previous) {
    r.applyLevel(level);
    logger.info({ from: previous, to: level }, `log level ${previous} -> ${level}`);
  } else {
    logger.info({ log_level: level }, `configuration re-read: log level stays ${level}`);
  }
  const pending = changedKeys(r.running, loaded.config).filter((k) => !RELOADABLE_KEYS.has(k));
  if (pending.length > 0) {
    logger.warn({ keys: pending }, `changed in the configuration, applied at the next start only: ${pending.join(', ')}`);
  }
}

/** `section.key` of every value that differs between two configurations. */
export function changedKeys(a: Config, b: Config): string[] {
  const out: string[] = [];
  const sa = a as unknown as Record<string, Record<string, unknown>>;
  const sb = b as unknown as Record<string, Record<string, unknown>>;
  for (const section of new Set([...Object.keys(sa), ...Object.keys(sb)])) {
    const ka = sa[section] ?? {};
    const kb = sb[section] ?? {};
    for (const key of new Set([...Object.keys(ka), ...Object.keys(kb)])) {
      if (JSON.stringify(ka[key]) !== JSON.stringify(kb[key])) out.push(`${section}.${key}`);
    }
  }
  return out;
}
