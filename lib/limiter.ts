/**
 * The failed-handshake limit: per client address, how many refusals a minute (counted by a FailureLimiter, in
 * memory or shared through Redis), and a line for the attempts under way, so that only failures count and a
 * parallel burst cannot have more than the limit counted.
 */
import createDebug from "debug";
import { within } from "./deadline.js";
import { RefusalError } from "./errors.js";

const debug = createDebug("passport-socketio-bridge:security");

const WINDOW_MS = 60_000;
const MEMORY_LIMITER_KEYS = 100_000;
/** Attempts of one address that may wait for their turn at once; more are refused at once. */
const MAX_WAITING_PER_ADDRESS = 1_000;

/**
 * Counts refused handshakes per client address over a minute. The bridge asks `failures(key)` before reading
 * the store, and calls `fail(key)` after each counted refusal. Either may be async (a shared Redis counter).
 */
export interface FailureLimiter {
  failures(key: string): number | Promise<number>;
  fail(key: string): unknown;
  /** Optional: in how many ms the address's window ends (sent as `retryAfterMs`); a whole minute without it. */
  retryAfterMs?(key: string): number | undefined | Promise<number | undefined>;
}

/** An attempt's place in its address's line; `wake` is set while it waits. */
interface Place {
  wake?: (() => void) | undefined;
}

/** The attempts of one address (see FailureLimit.take). */
interface Turns {
  /** Attempts between take() and their decision, waiting or not. */
  attempts: number;
  /** Attempts let through and not decided yet. */
  running: number;
  /** Attempts waiting for their turn, oldest first; only the first may take room that frees. */
  line: Place[];
  /** Failures given to an async limiter that it has not confirmed yet. */
  unconfirmed: number;
  /** Failures reported while this entry lived (to count those a limiter's answer may predate). */
  reported: number;
}

export class FailureLimit {
  /** The attempts under way per address: an entry lives only while one is (so as many as connections). */
  private readonly turns = new Map<string, Turns>();

  constructor(
    private readonly perMinute: number,
    private readonly limiter: FailureLimiter,
    /** How long an attempt may wait for its turn, and the limiter for its answer (the bridge's storeTimeoutMs). */
    private readonly timeoutMs: number,
  ) {}

  /**
   * Lets a client's attempt run once its address has room for it, counted per address across its connections
   * and namespaces; returns the function to call once the attempt is decided. Only failures count: an address
   * may have `failureLimit - failures` attempts under way, and the others wait (up to `timeoutMs`) for
   * earlier ones to be decided. So a burst of honest attempts is admitted, a little later, while a burst of
   * parallel guesses cannot have more failures counted than the limit. Refuses with `too_many_attempts` (and
   * `retryAfterMs`) an address at its limit, or one whose attempts waited `timeoutMs` for their turn.
   */
  async take(key: string): Promise<() => void> {
    const max = this.perMinute;
    const turns = this.turnsOf(key);
    turns.attempts++;
    const deadline = Date.now() + this.timeoutMs;
    const place: Place = {};
    try {
      if (turns.line.length >= MAX_WAITING_PER_ADDRESS) throw await this.tooMany(key, false, deadline);
      // In the order the attempts came: a connection's handshake goes before its other namespaces, which wait
      // for it (taken out of order, they could fill the room and wait for it forever).
      turns.line.push(place);
      while (turns.line[0] !== place) if (!(await waitTurn(place, deadline))) throw await this.tooMany(key, false, deadline);
      for (;;) {
        const failures = await this.failuresOf(key, turns, deadline);
        if (failures >= max) throw await this.tooMany(key, true, deadline);
        if (turns.running < max - failures) {
          turns.running++;
          return once(() => {
            turns.running--;
            this.leave(key, turns);
            // Later, so that a refusal decided in the same turn is counted before the next in line reads the count.
            setImmediate(wakeFirst, turns);
          });
        }
        if (!(await waitTurn(place, deadline))) throw await this.tooMany(key, false, deadline);
      }
    } catch (refusal) {
      this.leave(key, turns);
      throw refusal;
    } finally {
      // Out of the line; the next one goes on at once (it learns the same refusal now, not at its deadline).
      const at = turns.line.indexOf(place);
      if (at >= 0) turns.line.splice(at, 1);
      if (at === 0) wakeFirst(turns);
    }
  }

  /** Counts a failure of the address `key`. */
  failed(key: string): void {
    const turns = this.turns.get(key);
    if (turns) turns.reported++;
    let counting: unknown;
    try {
      counting = this.limiter.fail(key);
    } catch (err) {
      debug("failure limiter: %O", err);
      return;
    }
    if (typeof (counting as PromiseLike<unknown> | null)?.then !== "function") return;
    // Until a shared limiter has counted it, this node counts it itself (see failuresOf).
    const pending = turns ?? this.turnsOf(key);
    pending.unconfirmed++;
    within(this.timeoutMs, (done) => Promise.resolve(counting).then(() => done(), done))
      .catch((err: unknown) => debug("failure limiter: %O", err))
      .finally(() => {
        pending.unconfirmed--;
        this.leave(key, pending, false);
      });
  }

  /**
   * The address's failures in the window: the limiter's count, plus the failures it may not have seen yet
   * (still being counted, or reported while it answered). A limiter that cannot answer counts none: it must
   * not lock every client out.
   */
  private async failuresOf(key: string, turns: Turns, deadline: number): Promise<number> {
    const unconfirmed = turns.unconfirmed;
    const reported = turns.reported;
    let counted = 0;
    try {
      counted = await within<number>(Math.max(1, deadline - Date.now()), (done) =>
        Promise.resolve(this.limiter.failures(key)).then((n) => done(null, n), done),
      );
    } catch (err) {
      debug("failure limiter: %O", err);
    }
    counted = Number(counted);
    if (!Number.isFinite(counted)) counted = 0;
    return counted + unconfirmed + (turns.reported - reported);
  }

  /** `too_many_attempts`, saying when the address may try again: when its window ends, or after one deadline. */
  private async tooMany(key: string, overLimit: boolean, deadline: number): Promise<RefusalError> {
    let retryAfterMs: number | undefined = overLimit ? undefined : this.timeoutMs;
    const { retryAfterMs: resetIn } = this.limiter;
    if (overLimit && resetIn) {
      try {
        retryAfterMs = await within<number | undefined>(Math.max(1, deadline - Date.now()), (done) =>
          Promise.resolve(resetIn.call(this.limiter, key)).then((ms) => done(null, ms), done),
        );
      } catch (err) {
        debug("failure limiter: %O", err);
      }
    }
    // Unknown (a limiter that cannot say): a whole window.
    if (typeof retryAfterMs !== "number" || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) retryAfterMs = WINDOW_MS;
    return new RefusalError("too_many_attempts", { data: { retryAfterMs: Math.ceil(retryAfterMs) } });
  }

  private turnsOf(key: string): Turns {
    let turns = this.turns.get(key);
    if (!turns) this.turns.set(key, (turns = { attempts: 0, running: 0, line: [], unconfirmed: 0, reported: 0 }));
    return turns;
  }

  /** One attempt (or one count) of the address is over; its entry goes once nothing of it is left. */
  private leave(key: string, turns: Turns, attempt = true): void {
    if (attempt) turns.attempts--;
    if (turns.attempts === 0 && turns.unconfirmed === 0 && this.turns.get(key) === turns) this.turns.delete(key);
  }
}

/** Waits until `place` is woken (true: it may be its turn), or until `deadline` (false). */
function waitTurn(place: Place, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      place.wake = undefined;
      resolve(false);
    }, Math.max(0, deadline - Date.now()));
    place.wake = () => {
      clearTimeout(timer);
      place.wake = undefined;
      resolve(true);
    };
  });
}

/** Wakes the first in line, if it waits (one that is reading the count sees the room when it is back). */
function wakeFirst(turns: Turns): void {
  turns.line[0]?.wake?.();
}

/** `fn`, callable once; later calls do nothing. */
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}

/** An in-memory FailureLimiter: a count per address per minute. The default. */
export function memoryFailureLimiter(): FailureLimiter {
  const counts = new Map<string, { count: number; until: number }>();
  const current = (key: string) => {
    const entry = counts.get(key);
    return entry && entry.until > Date.now() ? entry : undefined;
  };
  return {
    failures: (key) => current(key)?.count ?? 0,
    retryAfterMs(key) {
      const entry = current(key);
      return entry && entry.until - Date.now();
    },
    fail(key) {
      const now = Date.now();
      const entry = current(key) ?? { count: 0, until: now + WINDOW_MS };
      entry.count++;
      counts.delete(key);
      counts.set(key, entry);
      // Bounded: drop expired entries, then the oldest, down to 90% of the cap (so this runs rarely).
      if (counts.size > MEMORY_LIMITER_KEYS) {
        for (const [k, e] of counts) if (e.until <= now) counts.delete(k);
        for (const k of counts.keys()) {
          if (counts.size <= MEMORY_LIMITER_KEYS * 0.9) break;
          counts.delete(k);
        }
      }
    },
  };
}

/** The commands of a Redis client that redisFailureLimiter uses, as ioredis spells them. */
export interface RedisCounterClient {
  get(key: string): Promise<string | null>;
  incr(key: string): Promise<number>;
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<unknown>;
  /** Optional: lets a refusal say when the window ends (`retryAfterMs`); without it, a whole minute. */
  pttl?(key: string): Promise<number>;
}

/**
 * A FailureLimiter shared by every node through Redis: one counter per address. The key is created with its
 * one-minute expiry before it is incremented, so no failure can leave a counter that never expires.
 */
export function redisFailureLimiter(
  client: RedisCounterClient,
  { prefix = "psb:failures:" }: { prefix?: string } = {},
): FailureLimiter {
  return {
    async failures(key) {
      return Number((await client.get(prefix + key)) ?? 0);
    },
    async fail(key) {
      await client.set(prefix + key, "0", "PX", WINDOW_MS, "NX");
      await client.incr(prefix + key);
    },
    async retryAfterMs(key) {
      // (PTTL is -2 for no key and -1 for no expiry: neither says when the window ends.)
      const ms = client.pttl ? await client.pttl(prefix + key) : -1;
      return ms >= 0 ? ms : undefined;
    },
  };
}
