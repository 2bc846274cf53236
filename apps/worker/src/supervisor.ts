import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { EXIT_CODES } from '@detq/core';

export interface SupervisorOptions {
  /** CUDA devices: one worker process each. */
  devices: number[];
  /** The worker command without its device, e.g. [node, detq.js, 'worker']; `--device N` is appended. */
  command: readonly [string, ...string[]];
  /** The children's environment (DETQ_DEVICE is set per child). */
  env?: NodeJS.ProcessEnv;
  /** First restart delay after a crash; it doubles per consecutive crash of that worker, up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A worker that ran this long before crashing restarts after backoffMs again. */
  stableMs?: number;
  /** The supervisor's own lines (stderr by default). */
  log?: (line: string) => void;
}

interface Slot {
  device: number;
  child?: ChildProcess;
  crashes: number;
  restartTimer?: NodeJS.Timeout;
}

const SUPERVISOR = 'detq supervisor';

/**
 * One `detq worker --device N` per GPU. A worker that dies is restarted with exponential backoff (a
 * crash loop costs little); a stop signal is forwarded to every worker, which drain, and the
 * supervisor ends once all have exited. Every line a worker prints is prefixed with `[gpuN]`.
 */
export class WorkerSupervisor {
  private readonly slots: Slot[];
  private stopping = false;
  private signals = 0;
  private fatal: number | undefined;
  private readonly codes = new Map<number, number>();
  private resolveDone!: (code: number) => void;
  /** The supervisor's exit code: 0 when every worker drained and exited 0. */
  readonly done = new Promise<number>((resolve) => (this.resolveDone = resolve));

  constructor(private readonly options: SupervisorOptions) {
    this.slots = options.devices.map((device) => ({ device, crashes: 0 }));
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`${SUPERVISOR}: ${line}`);
  }

  start(): void {
    this.log(`running one worker on each of GPUs ${this.options.devices.join(', ')}`);
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Forwards the signal to every worker (the first drains them, a second makes them exit at once). */
  stop(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.signals++;
    this.stopping = true;
    this.log(`${signal}: ${this.signals > 1 ? 'stopping workers now' : 'draining workers'}`);
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      slot.child?.kill(signal);
    }
    this.settleIfIdle();
  }

  private spawn(slot: Slot): void {
    const [cmd, ...args] = this.options.command;
    const gpu = `gpu${slot.device}`;
    // The child must not become a supervisor itself.
    const { DETQ_GPUS: _, ...env } = this.options.env ?? process.env;
    // Each worker's health/metrics port: DETQ_WORKER_PORT + its position in the GPU list.
    const port = env.DETQ_WORKER_PORT ? { DETQ_WORKER_PORT: String(Number(env.DETQ_WORKER_PORT) + this.slots.indexOf(slot)) } : {};
    const child = spawn(cmd, [...args, '--device', String(slot.device)], {
      env: { ...env, ...port, DETQ_DEVICE: String(slot.device) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = Date.now();
    slot.child = child;
    for (const [stream, out] of [[child.stdout!, process.stdout], [child.stderr!, process.stderr]] as const)
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`[${gpu}] ${line}\n`));
    this.log(`${gpu} worker started (pid ${child.pid})`);
    child.once('error', (err) => this.log(`${gpu} worker could not start: ${err.message}`));
    child.once('close', (code, signal) => {
      slot.child = undefined;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (this.stopping) {
        // Only exits after the stop count: a worker waiting for its restart has nothing to drain, and
        // one the forwarded signal ended before its handlers were in place was still loading its model.
        this.codes.set(slot.device, signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : (code ?? 128));
        this.log(`${gpu} worker exited (${how})`);
      } else if (code === EXIT_CODES.USAGE) {
        // A usage error repeats on every restart: stop everything and say so.
        this.log(`${gpu} worker exited with a usage error; stopping`);
        this.fatal = code;
        this.stop('SIGTERM');
      } else {
        slot.crashes = Date.now() - started >= (this.options.stableMs ?? 60_000) ? 1 : slot.crashes + 1;
        const delay = Math.min((this.options.backoffMs ?? 1000) * 2 ** (slot.crashes - 1), this.options.maxBackoffMs ?? 60_000);
        this.log(`${gpu} worker exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
        slot.restartTimer = setTimeout(() => {
          slot.restartTimer = undefined;
          if (!this.stopping) this.spawn(slot);
        }, delay);
      }
      this.settleIfIdle();
    });
  }

  private settleIfIdle(): void {
    if (!this.stopping || this.slots.some((s) => s.child)) return;
    const codes = [...this.codes.values()];
    const code = this.fatal ?? (this.signals > 1 ? 130 : codes.every((c) => c === 0) ? 0 : EXIT_CODES.UNEXPECTED);
    this.log(code === 0 ? 'all workers drained' : `stopped (exit ${code})`);
    this.resolveDone(code);
  }
}

/** Runs a supervisor until SIGTERM/SIGINT (forwarded to the workers) and resolves with its exit code. */
export async function runSupervisor(options: SupervisorOptions): Promise<number> {
  const supervisor = new WorkerSupervisor(options);
  const onSignal = (signal: NodeJS.Signals) => supervisor.stop(signal);
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, onSignal);
  supervisor.start();
  try {
    return await supervisor.done;
  } finally {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.off(s, onSignal);
  }
}
