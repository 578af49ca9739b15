/**
 * Endings seen by admissions in flight. A socket's admission runs from its handshake's start to its
 * `connection` (or its refusal); a logout, expiry or revocation that this node learns about in between
 * must still refuse it, even though the socket was not yet in any room the ending reached.
 *
 * Each admission holds a ticket, numbered on one clock shared with the endings. An ending is kept exactly
 * as long as an admission that began before it is still in flight, and no longer: there is no cap and no
 * time window that a flood of endings or a wait could get past. An admission that lingers (an app middleware
 * that never calls `next()`) gives its ticket back and watches its own rooms instead: it then pins nothing.
 */
import type { EndCode } from "./errors.js";

/** A lingering admission's own rooms, and how one of them ended since it began, once one did. */
export interface Watch {
  rooms: readonly string[];
  code: EndCode | undefined;
}

export class Endings {
  private clock = 0;
  /** Tickets in flight: their number, and how many admissions share it (insertion order is clock order). */
  private readonly inFlight = new Map<number, number>();
  /** The latest ending of each room, in clock order. */
  private readonly log = new Map<string, { at: number; code: EndCode }>();

  /** A new admission's ticket. */
  begin(): number {
    const ticket = ++this.clock;
    this.inFlight.set(ticket, 1);
    return ticket;
  }

  /** Another admission shares `ticket` (a namespace joining its connection's handshake in flight). */
  share(ticket: number): number {
    const holders = this.inFlight.get(ticket);
    // A ticket no longer in flight could have missed endings: such an admission starts its own.
    if (holders === undefined) return this.begin();
    this.inFlight.set(ticket, holders + 1);
    return ticket;
  }

  /** One holder of `ticket` is done (connected or refused). Endings no admission can miss any more go. */
  finish(ticket: number): void {
    const holders = this.inFlight.get(ticket);
    if (holders === undefined) return;
    if (holders > 1) return void this.inFlight.set(ticket, holders - 1);
    this.inFlight.delete(ticket);
    if (this.log.size === 0) return;
    const oldest = this.inFlight.keys().next().value ?? Infinity;
    for (const [room, ending] of this.log) {
      if (ending.at > oldest) break;
      this.log.delete(room);
    }
  }

  /** Lingering admissions by room. */
  private readonly watching = new Map<string, Set<Watch>>();

  /**
   * An admission holding `ticket` for `rooms` gives the ticket back, and from now on hears only of its own
   * rooms' endings (what it missed so far included).
   */
  watch(ticket: number, rooms: readonly string[]): Watch {
    const watch: Watch = { rooms, code: this.endedSince(rooms, ticket) };
    for (const room of rooms) {
      let watches = this.watching.get(room);
      if (!watches) this.watching.set(room, (watches = new Set()));
      watches.add(watch);
    }
    this.finish(ticket);
    return watch;
  }

  /** The watching admission is done (connected or refused). */
  unwatch(watch: Watch): void {
    for (const room of watch.rooms) {
      const watches = this.watching.get(room);
      if (watches?.delete(watch) && watches.size === 0) this.watching.delete(room);
    }
  }

  /** `room` (a user's or a session's) ended now. */
  record(room: string, code: EndCode): void {
    if (this.watching.size !== 0) for (const watch of this.watching.get(room) ?? []) watch.code ??= code;
    if (this.inFlight.size === 0) return;
    this.log.delete(room);
    this.log.set(room, { at: ++this.clock, code });
  }

  /** How one of `rooms` ended after `ticket` began, if it did. */
  endedSince(rooms: readonly string[], ticket: number): EndCode | undefined {
    for (const room of rooms) {
      const ending = this.log.get(room);
      if (ending && ending.at > ticket) return ending.code;
    }
    return undefined;
  }

  /** How many endings are kept (for tests). */
  get size(): number {
    return this.log.size;
  }
}
