/**
 * Readiness for systemd's `Type=notify` (docs/operations.md, systemd): READY=1 once serving, STOPPING=1
 * when the drain starts.
 *
 * The protocol is one datagram on the unix socket named by $NOTIFY_SOCKET. Node cannot send it: its
 * dgram module has no unix-domain sockets, and a stream socket cannot connect to a datagram one. So
 * `systemd-notify` (part of systemd, so present wherever a NOTIFY_SOCKET is) sends it, with
 * `--pid=<this process>`: as root the message is credited to this process; otherwise it comes from
 * systemd-notify's own PID, which the unit's `NotifyAccess=all` accepts. systemd-notify waits until
 * the manager has processed the message (a barrier, unless `--no-block`), so it is still alive, and
 * so still in the unit's control group, when systemd looks at who sent it. Without the wait a message
 * from a process that has already exited cannot be attributed to any unit and is dropped.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import type { Logger } from '../../shared/logging';

const NOTIFY_TIMEOUT_MS = 10_000;

export type Notify = (assignments: readonly string[]) => Promise<void>;

export class SystemdNotifier {
  private chain: Promise<void> = Promise.resolve();
  private missingReported = false;

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
  ) {}

  /** A notifier when systemd (or anything speaking its protocol) asked for notifications, else undefined. */
  static fromEnv(env: NodeJS.ProcessEnv, logger: Logger): SystemdNotifier | undefined {
    return env.NOTIFY_SOCKET ? new SystemdNotifier(env, logger) : undefined;
  }

  /** Sends `assignments` (e.g. READY=1) after every earlier message: systemd must see READY before STOPPING. */
  notify(assignments: readonly string[]): Promise<void> {
    this.chain = this.chain.then(() => this.send(assignments));
    return this.chain;
  }

  /** Resolves once every message sent so far has been delivered or given up on. */
  settled(): Promise<void> {
    return this.chain;
  }

  private send(assignments: readonly string[]): Promise<void> {
    return new Promise((resolve) => {
      execFile(
        'systemd-notify',
        [`--pid=${process.pid}`, ...assignments],
        { env: this.env, timeout: NOTIFY_TIMEOUT_MS },
        (err, _stdout, stderr) => {
          if (err) this.report(assignments, err, stderr);
          resolve();
        },
      );
    });
  }

  private report(assignments: readonly string[], err: ExecFileException, stderr: string): void {
    if (err.code === 'ENOENT') {
      if (this.missingReported) return;
      this.missingReported = true;
      this.logger.warn(
        { notify_socket: this.env.NOTIFY_SOCKET },
        'NOTIFY_SOCKET is set but systemd-notify is not on PATH: the service manager will not hear that the coordinator is ready (a Type=notify unit then times out starting)',
      );
      return;
    }
    this.logger.warn({ notify_socket: this.env.NOTIFY_SOCKET, message: assignments.join(' '), err: stderr.trim() || err.message }, 'systemd-notify failed');
  }
}
