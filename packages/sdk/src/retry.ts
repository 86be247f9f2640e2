import { isPgBindError } from "./errors.js";

/** Bounded retry of retryable failures with full-jitter exponential backoff. */
export interface RetryOptions {
  /** Total attempts including the first, default 4. */
  readonly attempts?: number;
  /** First backoff ceiling, default 100 ms; doubles each attempt. */
  readonly baseDelayMs?: number;
  /** Backoff ceiling, default 2 s. */
  readonly maxDelayMs?: number;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `task`, retrying only `PgBindError`s marked retryable. */
export async function withRetry<T>(task: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 4);
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 2_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await task();
    } catch (error) {
      if (attempt >= attempts || !isPgBindError(error) || !error.retryable) throw error;
      await delay(Math.random() * Math.min(max, base * 2 ** (attempt - 1)));
    }
  }
}
