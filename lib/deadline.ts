/**
 * Callback-style calls into code the bridge does not control (session stores, middlewares, deserializers,
 * other nodes), turned into promises that always settle: on the first answer, on a synchronous throw, or
 * when the deadline passes. Late and repeated answers are ignored.
 */

/** The call did not answer within its deadline. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

export function within<T = void>(ms: number, start: (done: (err?: unknown, value?: T) => void) => void): Promise<T> {
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
      start(done);
    } catch (err) {
      done(err ?? new Error("threw a falsy value"));
    }
  });
}
