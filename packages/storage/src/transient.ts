import { isServerError, isThrottlingError, isTransientError } from '@smithy/core/retry';

/**
 * THE place detq decides whether a storage failure may pass (refused, reset, timeouts, 5xx, throttling)
 * or will not (404, 403, a missing file, a bad URI). It defers to the AWS SDK's own classification,
 * which also walks `cause` chains, so fetch() network errors and filesystem errors are judged alike.
 * Images, manifests, chunk results and models all go through it.
 */
export function isTransientStorageError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Parameters<typeof isTransientError>[0];
  if (e.name === 'AbortError') return false;
  return isTransientError(e) || isThrottlingError(e) || isServerError(e);
}

/** An HTTP failure in the SDK's error shape, so isTransientStorageError judges it by its status. */
export function httpStatusError(status: number, message: string): Error {
  return Object.assign(new Error(message), { $metadata: { httpStatusCode: status } });
}

export interface OutageBudget {
  /** Total time transient failures are retried for, from the first failure. */
  budgetMs: number;
  /** First pause between attempts; doubles up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Stops waiting (cancel, lost lock, shutdown): the pending attempt's error or the abort reason is thrown. */
  signal?: AbortSignal;
  onRetry?: (err: unknown, waitedMs: number) => void;
}

/**
 * Runs `attempt` until it succeeds, fails permanently, or transient failures have lasted longer than
 * the budget: an outage of a few minutes is waited out instead of being counted in attempts.
 * Pauses grow exponentially (with jitter) up to a cap, so recovery is noticed within the cap.
 */
export async function retryTransient<T>(attempt: (signal?: AbortSignal) => Promise<T>, budget: OutageBudget): Promise<T> {
  const base = budget.baseDelayMs ?? 250;
  const cap = budget.maxDelayMs ?? 5_000;
  let firstFailure: number | undefined;
  for (let n = 0; ; n++) {
    budget.signal?.throwIfAborted();
    try {
      return await attempt(budget.signal);
    } catch (err) {
      if (budget.signal?.aborted) throw budget.signal.reason;
      if (!isTransientStorageError(err)) throw err;
      firstFailure ??= Date.now();
      const waited = Date.now() - firstFailure;
      if (waited >= budget.budgetMs) throw err;
      budget.onRetry?.(err, waited);
      const delay = Math.min(cap, base * 2 ** Math.min(n, 20)) * (0.5 + Math.random() / 2);
      await sleep(Math.min(delay, budget.budgetMs - waited), budget.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      signal?.removeEventListener('abort', abort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', abort, { once: true });
  });
}
