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
export function delayUntil(at: number, now = Date.now()): number {
  return Math.min(Math.max(0, at - now), MAX_TIMER_MS);
}

/** A call waiting in a DeadlineList: linked in place, so that waiting allocates nothing. */
export interface Deadline {
  /** Called once, when the call has waited the list's `ms` without being stopped. */
  expired(): void;
  deadlineAt?: number | undefined;
  deadlinePrev?: Deadline | undefined;
  deadlineNext?: Deadline | undefined;
}

/**
 * Deadlines of one length that share one timer, instead of a timer per call: calls join in the order they
 * start, so they expire in that order, and the timer is set for the oldest only. A handshake then costs no
 * timer of its own: the timer is set again at most once per `ms`. While no call waits it is unref'd, so it
 * never keeps a process alive by itself.
 */
export class DeadlineList {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {}

  /** `item` starts waiting (again, if it waited before: its deadline starts over). */
  start(item: Deadline): void {
    this.stop(item);
    // A monotonic clock: deadlines stay in start order whatever the wall clock does.
    item.deadlineAt = performance.now() + this.ms;
    item.deadlinePrev = this.tail;
    if (this.tail) this.tail.deadlineNext = item;
    else this.head = item;
    this.tail = item;
    // A timer set for an earlier call fires no later than this one's deadline, and sets itself again then.
    if (!this.timer) this.arm(this.ms);
    else if (this.head === item) this.timer.ref();
  }

  /** `item` answered (or gave up): it no longer waits. Idempotent. */
  stop(item: Deadline): void {
    if (item.deadlineAt === undefined) return;
    const { deadlinePrev: prev, deadlineNext: next } = item;
    if (prev) prev.deadlineNext = next;
    else this.head = next;
    if (next) next.deadlinePrev = prev;
    else this.tail = prev;
    item.deadlineAt = item.deadlinePrev = item.deadlineNext = undefined;
    if (!this.head) this.timer?.unref();
  }

  private arm(delay: number): void {
    this.timer = setTimeout(this.fire, Math.min(Math.max(0, Math.ceil(delay)), MAX_TIMER_MS));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    let head = this.head;
    while (head && head.deadlineAt! <= now) {
      this.stop(head);
      try {
        head.expired();
      } catch {
        // (expired() settles a promise; it must not stop the others.)
      }
      head = this.head;
    }
    if (head && !this.timer) this.arm(head.deadlineAt! - now);
  };
}
