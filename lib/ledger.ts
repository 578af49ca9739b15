/**
 * The ledger: everything this node believes about the sessions of one bridge, in one place. Per session: the
 * copy of its record and when it was read, the store read in flight, whether it has ended, its known expiry and
 * when it was last renewed; and, for any session written through this node, the expiry written (a hint other
 * nodes ask for). Handshakes, live sessions, the store hooks, revalidation and the cluster ask it; nothing else
 * keeps session state. The endings that admissions in flight must still see, of sessions and of users alike, are
 * its record too (endings.ts keeps them by room, on a clock of tickets).
 *
 * One freshness rule: data read at `readAt` is used only if the session has not ended since the read began, and
 * a copy serves a handshake only while younger than `sessionCacheMs` and before its expiry. One name per
 * instant: `readAt`, `renewedAt`, `expiresAt` (ms on the ledger's clock, which tests may replace).
 */
import { Endings } from "./endings.js";
import { expiresOf, type SessionRecord } from "./records.js";

/** Where the ledger reads the time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A session's record as JSON (each handshake parses its own), and when it was read from or written to the store. */
export interface Copy {
  json: string;
  /** Its cookie's expiry, parsed once. */
  expiresAt: number | undefined;
  readAt: number;
}

/** A store read of one session in flight, shared by the handshakes that come while it lasts. */
export interface Read<W> {
  readAt: number;
  /** The session ended (as this node learned) after the read began: its answer may predate the ending. */
  stale: boolean;
  waiters: W[];
}

/** What a live session's keeper reads and sets of its session's expiry, through the ledger's own entry. */
export interface SessionFacts {
  /** Logged out, destroyed or expired (set by `end`): final for this id (express-session never reuses one). */
  readonly ended: boolean;
  /** The session's expiry as last known, for its live sockets. */
  expiresAt: number | undefined;
  /** How long a renewal lasts: the cookie's maxAge, or the store's TTL. */
  lifetimeMs: number | undefined;
  /** When it was last renewed, as far as this node knows (the keep-alive clock). */
  renewedAt: number;
}

/** What the ledger holds for one session. */
interface Entry extends SessionFacts {
  ended: boolean;
  /** Live sockets of the session on this node keep its entry (and so its copy). */
  live: boolean;
  copy: Copy | undefined;
  /** The signed cookie value (`s:<sid>.<signature>`) express-session verified for it: goes with the copy. */
  cookie: string | undefined;
  read: Read<unknown> | undefined;
}

/** How many written expiries this node remembers for other nodes' expiry questions. */
const RENEWALS_KEPT = 50_000;

export class Ledger {
  private readonly entries = new Map<string, Entry>();
  /** Endings of sessions and users, kept while an admission that began before them is in flight. */
  readonly endings = new Endings();
  /** The expiry written through this node, per session (any session, bounded): hints for expiry checks. */
  private readonly renewals = new Map<string, number>();

  constructor(
    private readonly options: { sessionCacheMs: number; storeTimeoutMs: number },
    readonly clock: Clock = systemClock,
  ) {}

  // Live sessions: their entries live as long as they have sockets here.

  /** The session has sockets here now: its entry stays (with its copy) until `forget`. Its facts, to keep. */
  track(sid: string): SessionFacts {
    const entry = this.entry(sid);
    entry.live = true;
    return entry;
  }

  /** The session's last socket here is gone. */
  forget(sid: string): void {
    const entry = this.entries.get(sid);
    if (!entry) return;
    entry.live = false;
    entry.copy = undefined;
    entry.cookie = undefined;
    this.drop(sid, entry);
  }

  // Copies

  /**
   * A copy of a live session for a new handshake: only while younger than `sessionCacheMs` (writes through
   * other nodes and deletions behind the bridge's back show after that), before its expiry, and never once ended.
   */
  copyFor(sid: string): Copy | undefined {
    const entry = this.entries.get(sid);
    const copy = entry?.copy;
    if (!copy || entry.ended) return undefined;
    const now = this.clock.now();
    if (now - copy.readAt >= this.options.sessionCacheMs || (copy.expiresAt ?? Infinity) <= now) return undefined;
    return copy;
  }

  /**
   * The copy of live session `sid` for a handshake whose session cookie is `signed`, if express-session verified
   * exactly that value for it before (see `verified`). An HMAC of the same value under the same secrets says the
   * same, so the handshake may skip the session middleware; compared in constant time, as express-session does.
   */
  copyForCookie(sid: string, signed: string): Copy | undefined {
    const known = this.entries.get(sid)?.cookie;
    if (known === undefined || !sameInConstantTime(known, signed)) return undefined;
    return this.copyFor(sid);
  }

  /** express-session verified the signed cookie value `signed` for live session `sid`. */
  verified(sid: string, signed: string): void {
    const entry = this.entries.get(sid);
    if (entry?.live && !entry.ended && entry.cookie === undefined) entry.cookie = signed;
  }

  /**
   * The one way a copy changes: to `record`, read from (or written to) the store at `readAt`, if that is newer
   * than the copy kept, and never once the session ended. Kept for live sessions only.
   */
  keep(sid: string, record: unknown, readAt: number): void {
    const entry = this.entries.get(sid);
    if (!entry?.live || entry.ended || (entry.copy && entry.copy.readAt >= readAt)) return;
    entry.copy = copyOf(record, readAt) ?? entry.copy;
  }

  // Reads in flight

  /** The read of `sid` in flight that a new handshake may join: not stale, and younger than the read deadline. */
  readInFlight<W>(sid: string): Read<W> | undefined {
    const read = this.entries.get(sid)?.read as Read<W> | undefined;
    if (!read || read.stale || this.clock.now() - read.readAt >= this.options.storeTimeoutMs) return undefined;
    return read;
  }

  /** A new store read of `sid` begins (replacing one that may no longer be joined). */
  beginRead<W>(sid: string, waiter: W): Read<W> {
    const read: Read<W> = { readAt: this.clock.now(), stale: false, waiters: [waiter] };
    this.entry(sid).read = read as Read<unknown>;
    return read;
  }

  /** `read` answered: it is no longer in flight. */
  endRead(sid: string, read: Read<unknown>): void {
    const entry = this.entries.get(sid);
    if (entry?.read !== read) return;
    entry.read = undefined;
    this.drop(sid, entry);
  }

  // Endings

  /**
   * Session `sid` was logged out, destroyed or expired: no copy serves it, nothing may write it again, and no
   * handshake may use a read of it that is in flight now.
   */
  end(sid: string): void {
    const entry = this.entries.get(sid);
    if (!entry) return;
    if (entry.read) {
      entry.read.stale = true;
      entry.read = undefined;
    }
    entry.copy = undefined;
    entry.cookie = undefined;
    if (entry.live) entry.ended = true;
    this.drop(sid, entry);
  }

  /** Whether live session `sid` ended (as this node learned). */
  hasEnded(sid: string): boolean {
    return this.entries.get(sid)?.ended === true;
  }

  // Renewals

  /** This node wrote (or touched) `sid` with expiry `expiresAt`: remembered for other nodes' questions. */
  renewed(sid: string, expiresAt: number): void {
    this.renewals.delete(sid);
    this.renewals.set(sid, expiresAt);
    if (this.renewals.size > RENEWALS_KEPT) this.renewals.delete(this.renewals.keys().next().value!);
  }

  /** The latest expiry this node wrote for `sid`, if it remembers one. */
  renewalOf(sid: string): number | undefined {
    return this.renewals.get(sid);
  }

  private entry(sid: string): Entry {
    let entry = this.entries.get(sid);
    if (!entry) {
      entry = {
        live: false,
        copy: undefined,
        cookie: undefined,
        read: undefined,
        ended: false,
        expiresAt: undefined,
        lifetimeMs: undefined,
        renewedAt: this.clock.now(),
      };
      this.entries.set(sid, entry);
    }
    return entry;
  }

  /** An entry with nothing left to hold goes. */
  private drop(sid: string, entry: Entry): void {
    if (!entry.live && !entry.read) this.entries.delete(sid);
  }
}

/**
 * Whether `a` and `b` are the same string, in a time that depends only on their lengths (as crypto's
 * timingSafeEqual, without a Buffer of each per handshake, nor the code to make them).
 */
function sameInConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function copyOf(record: unknown, readAt: number): Copy | undefined {
  if (!record || typeof record !== "object") return undefined;
  try {
    return { json: JSON.stringify(record), expiresAt: expiresOf(record as SessionRecord), readAt };
  } catch {
    return undefined;
  }
}
