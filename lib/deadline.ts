/**
 * Callback-style calls into code the bridge does not control (session stores, middlewares, deserializers,
 * other nodes), turned into promises that always settle: on the first answer, on a synchronous throw, or
 * when the deadline passes. Late and repeated answers are ignored.
 */

/** The call did not answer within its deadline. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

export function within<T = void>(ms: number, start: (done: (err?: unknown, value?: T) => void) => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const done = (err?: unknown, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err === undefined || err === null) resolve(value as T);
      else reject(err);
    };
    const timer = setTimeout(() => done(new DeadlineError(`no answer within ${ms} ms`)), ms);
    try {
      // Callback APIs that are async functions underneath reject instead of calling back.
      rejectionsTo(start(done), done);
    } catch (err) {
      done(err ?? new Error("threw a falsy value"));
    }
  });
}

/** If `result` is a promise, hands its rejection to `done` instead of leaving it unhandled. */
export function rejectionsTo(result: unknown, done: (err: unknown) => void): void {
  if (typeof (result as PromiseLike<unknown> | null)?.then === "function") {
    (result as PromiseLike<unknown>).then(undefined, (err: unknown) => done(err ?? new Error("rejected with a falsy value")));
  }
}

/** The longest delay setTimeout honours (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A setTimeout delay that ends at `at` (ms since the epoch): never negative, never past MAX_TIMER_MS. */
export function delayUntil(at: number): number {
  return Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS);
}
