/**
 * Policy: decide, for each socket, whether it is admitted with its user, admitted as anonymous, or refused,
 * running the app's onAccept and onReject hooks. The expensive part, reading the session and deserializing
 * the user, is shared by the namespaces a client joins over one connection (they share `socket.request`)
 * under the rule in Handshaken. The hooks run for every socket, so they can decide per namespace.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { DeadlineList, type Deadline } from "./deadline.js";
import type { Endings, Watch } from "./endings.js";
import { RefusalError, sessionMissing, type EndCode } from "./errors.js";
import type { Handshake } from "./handshake.js";
import { roomsOf, type Identity, type SessionIdentity } from "./identity.js";
import { connectedSiblings, onCleanup, ownRequest } from "./seams.js";
import type { AnonymousPolicy, ResolvedOptions } from "./options.js";
import { Security } from "./security.js";
import type { EngineLeftovers } from "./setup-checks.js";
import { presentedToken, queryTokenRefusal, type Tokens } from "./tokens.js";
import type { AnySocket, BridgeRequest } from "./types.js";

const debug = createDebug("passport-socketio-bridge:policy");

/** Refusals that mean "nobody is logged in", which `allowAnonymous: true` turns into anonymous admissions. */
const NOBODY = new Set(["session_missing", "unauthenticated", "user_not_found"]);

type Admitted = AnySocket & { [key: symbol]: Admission | undefined };
/** A connection's request, keeping its handshake under the Gate's symbol. */
type Keeping = IncomingMessage & { [key: symbol]: Handshaken | undefined };
/** Who took a connection's own request first, on a server with namespaces left to the app. */
const BRIDGE = 1;
const APP = 2;
type Taken = IncomingMessage & { [key: symbol]: typeof BRIDGE | typeof APP | undefined };

/** The refusal a handshake gets when its identity ended while it ran: what reading the store now would say. */
const REFUSED_AS: Record<EndCode, () => RefusalError> = {
  logged_out: () => sessionMissing("unknown_session"),
  session_expired: () => sessionMissing("unknown_session"),
  user_removed: () => new RefusalError("user_not_found"),
  revoked: () => new RefusalError("rejected"),
  token_expired: () => new RefusalError("token_expired"),
};

/**
 * An admitted socket: with an identity, or anonymous (`identity` undefined). Admitted with an identity, it waits
 * for its `connection` on the Gate's lingering list: past `storeTimeoutMs` (an app middleware after the bridge
 * that is slow, or never calls `next()`) it trades its ticket for a watch on its own rooms.
 */
export class Admission implements Deadline {
  identity: Identity | undefined = undefined;
  /** Set once the ticket (or the watch) was given back. */
  finished = false;
  /** Its own rooms' endings, once it lingered (endings.ts). */
  watch: Watch | undefined = undefined;
  /** Its place in the failure limit's line, for a socket that reused its connection's handshake. */
  release: (() => void) | undefined = undefined;
  deadlineAt?: number | undefined;
  deadlinePrev?: Deadline | undefined;
  deadlineNext?: Deadline | undefined;

  constructor(
    /** The admission's ticket with the endings (endings.ts): an ending after it must still reach the socket. */
    readonly ticket: number,
    /** The connection's handshake this admission used. */
    readonly handshake: Handshaken,
    private readonly lingered: (admission: Admission) => void,
  ) {}

  expired(): void {
    this.lingered(this);
  }
}

/**
 * A connection's handshake. It serves the connection's other namespaces while it is in flight, and after it
 * only while a socket admitted with it is connected (endings reach such a socket, and forget the handshake)
 * and it is younger than `sessionCacheMs`. A connection whose sockets have all left reads the session again.
 */
export interface Handshaken {
  identity: Promise<Identity>;
  /** The request it authenticated: the connection's, or one of its own over it. */
  request: IncomingMessage;
  ticket: number;
  /** When it began (ms since the epoch). */
  startedAt: number;
  /** When the store read behind its identity began (the copy's own time, for a copy), once it has one. */
  readAt?: number | undefined;
  settled: boolean;
  /** Gives its first socket's place in the failure limit's line back (security.ts), once that socket is decided. */
  release?: (() => void) | undefined;
}

export class Gate<TUser> {
  /**
   * Where a connection's handshake is kept on its request. (A property, not a WeakMap: a WeakMap with an
   * entry per connection makes every young-generation GC walk its entries, which cost more than the rest of
   * the handshake together.)
   */
  private readonly kept = Symbol("passport-socketio-bridge:handshake");
  /** Who took a connection's own request first, the bridge or a namespace left to the app (`namespaces`). */
  private readonly taken = Symbol("passport-socketio-bridge:taken");

  private readonly security: Security;
  /** Where a socket's admission is kept on the socket. */
  private readonly admitted = Symbol("passport-socketio-bridge:admission");
  /** Admissions between the bridge's middleware and their `connection`. */
  private readonly lingering: DeadlineList;
  private warnedOnRejectAdmits = false;

  constructor(
    private readonly options: ResolvedOptions<TUser>,
    private readonly handshake: Handshake,
    private readonly tokens: Tokens,
    private readonly endings: Endings,
    private readonly leftovers: EngineLeftovers,
  ) {
    this.security = new Security(options.security);
    this.lingering = new DeadlineList(options.storeTimeoutMs);
  }

  /**
   * Admits or refuses `socket`. The admission holds a ticket with the endings until the caller gives it back
   * with `finish` (once the socket is connected or gone); a refusal gives it back here.
   */
  async admit(socket: AnySocket): Promise<Admission> {
    const { allowAnonymous, onAccept, onReject } = this.options;
    const { handshake, fresh } = this.handshakeOf(socket);
    const admission = new Admission(handshake.ticket, handshake, this.linger);
    let refusal: RefusalError;
    try {
      try {
        // A fresh handshake was screened; every other attempt on the connection counts against the limit too.
        if (!fresh) admission.release = await this.security.take(socket.request);
        const identity = await handshake.identity;
        this.checkNotEnded(identity, admission);
        try {
          // (CSRF protects cookie sessions; a token is a credential no other site's page holds.)
          if (identity.sessionId !== undefined) this.security.checkCsrf(socket);
          if (onAccept) await onAccept(socket, identity.user as TUser);
          admission.identity = identity;
          this.lingering.start(admission);
          return admission;
        } catch (err) {
          refusal = RefusalError.from(err);
          debug("onAccept refused %s in %s: %s", identity.userId, socket.nsp.name, refusal.code);
        }
      } catch (err) {
        refusal = queryTokenRefusal(socket, err as RefusalError);
        // A client that sent a token meant to be someone: it is told, not admitted as anonymous.
        if (allowAnonymous === true && NOBODY.has(refusal.code) && refusal.data.reason !== "token_in_query") return admission;
      }
      // Past the failure limit nothing more is tried, not even as anonymous.
      if (refusal.code !== "too_many_attempts") {
        if (typeof allowAnonymous === "function" && (await this.admitsAnonymous(allowAnonymous, socket, refusal))) return admission;
        if (onReject) {
          try {
            if ((await onReject(socket, refusal)) === true) this.warnOnRejectAdmits();
          } catch (err) {
            refusal = RefusalError.from(err);
          }
        }
      }
      debug("refused %s in %s: %s", socket.id, socket.nsp.name, refusal.code);
      this.finish(admission);
      this.security.refused(socket.request, refusal);
      throw refusal;
    } finally {
      // The attempt's place in its address's line goes back only once it is decided and a failure, if it
      // failed, is counted (after onAccept and onReject), so a burst cannot slip in between.
      (fresh ? handshake.release : admission.release)?.();
    }
  }

  /** `allowAnonymous` as a function: only `true` admits; a throw admits nobody (and the refusal stays). */
  private async admitsAnonymous(policy: AnonymousPolicy, socket: AnySocket, refusal: RefusalError): Promise<boolean> {
    try {
      return (await policy(socket, refusal)) === true;
    } catch (err) {
      debug("allowAnonymous threw for %s in %s: %O", socket.id, socket.nsp.name, err);
      return false;
    }
  }

  /** onReject returned `true`, which used to admit anonymously: say once where that moved. */
  private warnOnRejectAdmits(): void {
    if (this.warnedOnRejectAdmits) return;
    this.warnedOnRejectAdmits = true;
    process.emitWarning(
      "onReject returned true, which no longer admits the socket: it was refused as usual. To admit sockets as " +
        "anonymous, give bridge() `allowAnonymous: (socket, error) => boolean` instead.",
      { code: "PSB_ONREJECT_ADMITS" },
    );
  }

  /**
   * Keeps an admitted socket's admission on the socket, and gives its ticket back once the socket is gone (or
   * will never connect). (A property, not a WeakMap: a WeakMap entry per socket makes every young-generation
   * GC walk them all.)
   */
  keep(socket: AnySocket, admission: Admission): void {
    (socket as Admitted)[this.admitted] = admission;
    onCleanup(socket, this.finishOf);
  }

  /** The admission of a socket admitted with an identity (not anonymously). */
  admissionOf(socket: AnySocket): Admission | undefined {
    const admission = (socket as Admitted)[this.admitted];
    return admission?.identity ? admission : undefined;
  }

  /** The user of a socket admitted with an identity; undefined for anonymous sockets. */
  userOf<T>(socket: AnySocket): T | undefined {
    if (!this.admissionOf(socket)) return undefined;
    return (socket.request as BridgeRequest)[this.options.userProperty] as T | undefined;
  }

  /** A socket's cleanup hook (one function for all sockets). */
  private readonly finishOf = (socket: AnySocket): void => {
    const admission = (socket as Admitted)[this.admitted];
    if (admission) this.finish(admission);
  };

  /** Gives the admission's ticket (or watch) back: the socket is connected, or will never be. */
  finish(admission: Admission): void {
    if (admission.finished) return;
    admission.finished = true;
    this.lingering.stop(admission);
    if (admission.watch) this.endings.unwatch(admission.watch);
    else this.endings.finish(admission.ticket);
  }

  /** How the admission's identity ended while it was in flight, if it did. */
  endedSince(admission: Admission): EndCode | undefined {
    if (admission.watch) return admission.watch.code;
    return admission.identity && this.endedAfter(admission.identity, admission.ticket);
  }

  /** An admission still on its way to `connection` after storeTimeoutMs: it stops pinning later endings. */
  private readonly linger = (admission: Admission): void => {
    if (admission.finished || !admission.identity || admission.watch) return;
    debug("an admission of %s is still not connected: watching its rooms instead", admission.identity.userId);
    admission.watch = this.endings.watch(admission.ticket, roomsOf(admission.identity));
  };

  private endedAfter(identity: Identity, ticket: number): EndCode | undefined {
    // (No ending kept, nothing to look up: the usual case.)
    return this.endings.size === 0 ? undefined : this.endings.endedSince(roomsOf(identity), ticket);
  }

  /** A handshake whose session or user ended while it ran is refused as if it had read the store now. */
  private checkNotEnded(identity: Identity, admission: Admission): void {
    const ended = this.endedAfter(identity, admission.ticket);
    if (ended === undefined) return;
    debug("%s ended (%s) while its handshake ran", identity.userId, ended);
    throw REFUSED_AS[ended]();
  }

  /** The session, or else (with `strategies`) a token the first socket of the handshake presented. */
  private async authenticate(socket: AnySocket, req: IncomingMessage): Promise<Identity> {
    try {
      return await this.handshake.authenticate(req);
    } catch (refusal) {
      const token =
        this.tokens.enabled && (refusal as RefusalError).code === "session_missing"
          ? presentedToken(req, socket.handshake.auth)
          : undefined;
      if (!token) throw refusal;
      return this.tokens.authenticate(req, token);
    }
  }

  /** Forgets the socket's connection's handshake: the next namespace it joins reads the session again. */
  forget(socket: AnySocket): void {
    const req = socket.client.request as Keeping;
    if (req[this.kept] !== undefined) req[this.kept] = undefined;
  }

  /**
   * The connection's handshake: the one in flight or still held (see Handshaken), else a new one. A socket
   * that shares one shares its ticket while it is in flight; a held one has seen no ending (an ending would
   * have ended its sockets and forgotten it), so a socket reusing it takes a new ticket.
   */
  private handshakeOf(socket: AnySocket): { handshake: Handshaken; fresh: boolean } {
    const req = socket.client.request;
    const kept = (req as Keeping)[this.kept];
    if (!kept) this.leftovers.check(req);
    if (kept && !kept.settled) return { handshake: { ...kept, ticket: this.endings.share(kept.ticket) }, fresh: false };
    if (kept && this.held(socket, kept)) return { handshake: { ...kept, ticket: this.endings.begin() }, fresh: false };
    // A connection with sockets on it is authenticated again on a request of its own, leaving theirs alone; so is
    // one whose request a namespace left to the app took first.
    const own = (kept && !isEmpty(connectedSiblings(socket))) || (this.options.namespaces !== undefined && !this.takesRequest(req));
    const target = own ? (Object.create(req) as IncomingMessage) : req;
    const handshake: Handshaken = {
      identity: undefined as unknown as Promise<Identity>,
      request: target,
      ticket: this.endings.begin(),
      startedAt: Date.now(),
      readAt: undefined,
      settled: false,
    };
    handshake.identity = this.start(socket, req, handshake);
    (req as Keeping)[this.kept] = handshake;
    return { handshake, fresh: true };
  }

  /**
   * Runs a new handshake: the screening of the request, then the session (or a token). Without an origins
   * function, a failure limit or token strategies, nothing in it waits but the middlewares themselves.
   */
  private start(socket: AnySocket, req: IncomingMessage, handshake: Handshaken): Promise<Identity> {
    // Origin and failure limits are decided from the request alone, before the store is read.
    let screened: Promise<() => void> | undefined;
    try {
      screened = this.security.screenNow(req);
    } catch (refusal) {
      handshake.settled = true;
      return Promise.reject(refusal as RefusalError);
    }
    if (!screened && !this.tokens.enabled) return this.handshake.authenticate(handshake.request, handshake);
    const identity = screened
      ? screened.then((release) => {
          handshake.release = release;
          return this.authenticate(socket, handshake.request);
        })
      : this.authenticate(socket, handshake.request);
    identity.then(
      (found) => {
        handshake.settled = true;
        handshake.readAt = (found as Partial<SessionIdentity>).readAt;
      },
      () => {
        handshake.settled = true;
      },
    );
    return identity;
  }

  /**
   * A socket of a namespace left to the app (the `namespaces` option), before the app's own middlewares: it must
   * never see the bridge's session or user. If the bridge authenticated on the connection's request, the socket
   * gets a request of its own without them; otherwise the request is the app's from now on, and the bridge
   * authenticates the connection's namespaces on requests of their own. (A request over the connection's costs
   * a few KB per connection: only connections that carry both pay it.)
   */
  leaveToApp(socket: AnySocket): void {
    const req = socket.client.request as Taken;
    if (req[this.taken] !== BRIDGE) {
      req[this.taken] = APP;
      return;
    }
    ownRequest(socket, Object.create(req) as IncomingMessage, {
      [this.options.userProperty]: undefined,
      session: undefined,
      sessionID: undefined,
    });
  }

  /** With namespaces left to the app: whether the bridge may authenticate on the connection's own request. */
  private takesRequest(req: IncomingMessage): boolean {
    const taken = req as Taken;
    if (taken[this.taken] === APP) return false;
    taken[this.taken] = BRIDGE;
    return true;
  }

  /** Whether a settled handshake may still serve a new namespace of its connection. */
  private held(socket: AnySocket, handshake: Handshaken): boolean {
    // As old as the session data it holds: a copy's own time, for a handshake served from a copy.
    if (Date.now() - (handshake.readAt ?? handshake.startedAt) >= this.options.sessionCacheMs) return false;
    for (const sibling of connectedSiblings(socket)) {
      if (this.admissionOf(sibling)?.handshake.identity === handshake.identity) return true;
    }
    return false;
  }
}

function isEmpty(items: Iterable<unknown>): boolean {
  for (const _ of items) return false;
  return true;
}
