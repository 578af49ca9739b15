/**
 * `bridge(io, options)`: the one object an app holds. It wires the handshake, the policy and the live
 * sessions into every namespace, watches the session store, and offers rooms, revocation, refresh,
 * session writes and presence, each reaching every node the adapter reaches.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import createDebug from "debug";
import type { Namespace, Server } from "socket.io";
import { watchReconnects } from "./adapter-watch.js";
import { Channels, type ChannelAuthorizer } from "./channels.js";
import { Cluster } from "./cluster.js";
import type { Commands } from "./commands.js";
import { CookieSessions, probeCookieSession } from "./cookie-sessions.js";
import { within } from "./deadline.js";
import { BridgeError, ConfigError, noSession, RefusalError, type EndCode } from "./errors.js";
import { Handshake } from "./handshake.js";
import { sessionRoom, toUserId, userRoom, type SessionIdentity } from "./identity.js";
import { LiveSessions } from "./live-sessions.js";
import { withSession } from "./with-session.js";
import { closeConnection, connectedSiblings, namespacesOf, ownRequest, recoveryOptionsOf, wireEveryNamespace } from "./seams.js";
import { resolveOptions, type BridgeOptions, type ResolvedOptions } from "./options.js";
import { checkNoSocketsYet, EngineLeftovers, probeSession } from "./setup-checks.js";
import { Gate, type Admission } from "./policy.js";
import {
  endLocalSockets,
  endSocket,
  joinIdentity,
  localSocketsIn,
  onlineHere,
  usersHere,
} from "./rooms.js";
import { claim, holdMissedPackets, replay, settle } from "./recovery.js";
import { csrfTokenOf } from "./security.js";
import { Ledger } from "./ledger.js";
import { isSessionStore, type SessionRecord, type SessionStore } from "./records.js";
import { observeStore } from "./store-hooks.js";
import { rememberUser, userTakenAway } from "./user-writes.js";
import { Tokens } from "./tokens.js";
import type { AnySocket, BridgeRequest, UserId } from "./types.js";

const debug = createDebug("passport-socketio-bridge:bridge");

const INSTALLED = Symbol.for("passport-socketio-bridge");


/**
 * Authenticates every Socket.IO connection of `io` with the app's express-session and Passport: the
 * handshake request gets the same `session` and `user` that HTTP requests of that session get.
 */
export function bridge<TUser = Express.User>(io: Server, options: BridgeOptions<TUser>): SocketBridge<TUser> {
  return new SocketBridge<TUser>(io, options);
}

/**
 * The bridge that `bridge()` installed on a Socket.IO server, given the server or any of its namespaces (what
 * a NestJS gateway's `@WebSocketServer()` holds). Undefined if none was installed.
 */
export function bridgeOf<TUser = Express.User>(serverOrNamespace: Server | Namespace): SocketBridge<TUser> | undefined {
  const server = "server" in serverOrNamespace ? serverOrNamespace.server : serverOrNamespace;
  return (server as (Server & { [INSTALLED]?: SocketBridge<TUser> }) | undefined)?.[INSTALLED];
}

export class SocketBridge<TUser = Express.User> {
  private readonly options: ResolvedOptions<TUser>;
  private readonly gate: Gate<TUser>;
  private readonly tokens: Tokens;
  private readonly channels: Channels<TUser>;
  private readonly live: LiveSessions;
  /** What this node believes about each session (ledger.ts). */
  private readonly ledger: Ledger;
  private readonly cluster: Cluster<Commands>;
  private store: SessionStore | undefined;
  /** Whether this bridge authenticates each namespace (the `namespaces` option), decided once per namespace. */
  private readonly ownership = new WeakMap<Namespace, boolean>();
  /** This node's namespaces the bridge authenticates: the only ones its endings, revocations and presence reach. */
  private readonly bridged = (): Namespace[] => [...namespacesOf(this.io)].filter((nsp) => this.owns(nsp));
  /** Set when the session middleware is cookie-session. */
  private readonly cookieSessions: CookieSessions | undefined;
  /** Sessions `logout()` is destroying: it asks every node itself, and waits for their answers. */
  private readonly loggingOut = new Set<string>();

  constructor(
    readonly io: Server,
    options: BridgeOptions<TUser>,
  ) {
    if (typeof io?.of !== "function" || typeof io.path !== "function") {
      throw new ConfigError("bridge(io, options) needs a Socket.IO Server as its first argument.");
    }
    if ((io as Server & { [INSTALLED]?: unknown })[INSTALLED]) {
      throw new ConfigError("bridge() was already called for this Socket.IO server; call it once and share the result.");
    }
    this.options = resolveOptions(options);
    checkNoSocketsYet(io, (nsp) => this.owns(nsp));
    authenticateRecoveredConnections(io);
    this.ledger = new Ledger(this.options);
    const { session } = this.options;
    this.cookieSessions = session && probeCookieSession(session, io.path()) ? new CookieSessions(this.options.passportKey) : undefined;
    const handshake = new Handshake(this.options as ResolvedOptions<unknown>, this.ledger, () => this.store, this.cookieSessions);
    this.tokens = new Tokens(this.options as ResolvedOptions<unknown>);
    // The command table: what one node asks of every node. Handlers run only once a command comes.
    const cluster = new Cluster<Commands>(io, {
      endSession: ({ sessionId, code }) => this.endSessionHere(sessionId, code),
      endUser: ({ userId, code }) => this.endHere(userRoom(userId), code),
      refresh: (userId) => this.live.refreshUser(userId),
      renewal: (sessionId) => this.ledger.renewalOf(sessionId) ?? null,
      online: (userId) => onlineHere(this.bridged(), userId),
      leaveChannel: ({ userId, channel }) => this.leaveHere(userRoom(userId), channel),
      users: () => usersHere(this.bridged()),
      members: (query) => this.channels.membersHere(query),
    });
    this.cluster = cluster;
    const leftovers = new EngineLeftovers(io, this.options.session, this.options.userProperty);
    this.gate = new Gate(this.options, handshake, this.tokens, this.ledger.endings, leftovers);
    this.channels = new Channels<TUser>(io, this.options, (socket) => this.gate.userOf(socket), (query) => cluster.run("members", query));
    this.live = new LiveSessions({
      options: this.options as ResolvedOptions<unknown>,
      ledger: this.ledger,
      cluster,
      channels: this.channels,
      cookieSessions: this.cookieSessions !== undefined,
    });
    // The endings other nodes sent while this node's adapter was reconnecting never came: re-read its sessions.
    watchReconnects(io, () => this.live.revalidateAll());
    if (session && !this.cookieSessions) this.useStore(probeSession(session, io.path()));
    leftovers.checkInstalled();
    Object.defineProperty(io, INSTALLED, { value: this });
    let firstHandshake = true;

    wireEveryNamespace(
      io,
      (socket, next) => {
        // Engine middlewares added after bridge() show by the first handshake.
        if (firstHandshake) {
          firstHandshake = false;
          leftovers.checkInstalled();
        }
        claim(socket);
        this.gate.admit(socket).then(
          (admission) => {
            // Whatever happens next (a later middleware refusing, the client leaving), the ticket goes back.
            this.gate.keep(socket, admission);
            let joined: Promise<void> | void;
            try {
              joined = this.admitted(socket, admission);
            } catch (err) {
              return this.unjoined(admission, next, err);
            }
            // The in-memory adapter joins at once; only an adapter that joins asynchronously is waited for.
            if (typeof (joined as PromiseLike<void> | undefined)?.then !== "function") return next();
            (joined as PromiseLike<void>).then(
              () => next(),
              (err: unknown) => this.unjoined(admission, next, err),
            );
          },
          (refusal: RefusalError) => {
            next(refusal);
            // Past its failure limit, a client loses its connection too (no more tries on it).
            if (refusal.code === "too_many_attempts") setImmediate(closeConnection, socket);
          },
        );
      },
      (socket) => this.connected(socket),
      holdMissedPackets,
      (nsp) => {
        if (this.owns(nsp)) return true;
        debug("namespace %s is left to the app (the namespaces option)", nsp.name);
        return false;
      },
      (socket, next) => {
        this.gate.leaveToApp(socket);
        next();
      },
    );
  }

  /** The room every socket of user `id` joins: `user:<id>`, `id` being Passport's serialized user. */
  userRoom(id: UserId): string {
    return userRoom(id);
  }

  /** The room every socket of session `sessionId` joins: `session:<sessionId>`. */
  sessionRoom(sessionId: string): string {
    return sessionRoom(sessionId);
  }

  /** The user of an admitted socket, typed; undefined for anonymous sockets. */
  user(socket: AnySocket): TUser | undefined {
    return this.gate.userOf(socket);
  }

  /**
   * Disconnects every socket of user `id` on every node the adapter reaches, after sending them
   * `auth:ended` with `{ code: "revoked" }`. Resolves with how many sockets were disconnected.
   */
  async disconnectUser(id: UserId): Promise<number> {
    return sum(await this.cluster.run("endUser", { userId: toUserId(id), code: "revoked" }));
  }

  /** Like disconnectUser, for the sockets of one session. */
  async disconnectSession(sessionId: string): Promise<number> {
    return sum(await this.cluster.run("endSession", { sessionId, code: "revoked" }));
  }

  /**
   * Re-reads the sessions of user `id` and re-runs deserializeUser for their sockets on every node, so
   * `socket.request.user` shows changes (a new role) without a reconnect. Sockets whose user is gone end
   * with `user_removed`. Resolves with how many sessions were refreshed.
   */
  async refresh(id: UserId): Promise<number> {
    return sum(await this.cluster.run("refresh", toUserId(id)));
  }

  /**
   * Reloads the socket's session, runs `fn` with it, then touches and saves it. Calls for one session run
   * one at a time on this node, so concurrent updates from several tabs are not lost. If the session is
   * gone, its sockets end with `logged_out` and the promise rejects with a BridgeError of that code.
   */
  withSession<T>(socket: AnySocket, fn: (session: IncomingMessage["session"]) => T | Promise<T>): Promise<T> {
    if (this.cookieSessions) {
      return Promise.reject(
        new ConfigError(
          "withSession() cannot write a cookie-session session: the session lives in the browser's cookie, which only " +
            "an HTTP response can set, and a socket has none. Write it over HTTP (a fetch() from the page to a route " +
            "that changes req.session), or keep the data elsewhere (your database, socket.data).",
          "cookie_session_read_only",
        ),
      );
    }
    return withSession(this.live, this.ledger, this.store, this.options.storeTimeoutMs, socket, fn);
  }

  /**
   * For cookie-session: the middleware to install right after `cookieSession({ ... })` and before
   * `passport.session()`, in place of the usual `regenerate`/`save` shim Passport 0.6+ needs. It gives each login a
   * random id (`req.sessionID`, and `socket.request.sessionID` on its sockets), and a logout (or another user's
   * login) through HTTP on any node ends that login's sockets on every node, with `logged_out`.
   */
  cookieSessionShim(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    if (!this.cookieSessions) {
      throw new ConfigError(
        "cookieSessionShim() is for cookie-session, and the `session` given to bridge() is not cookie-session's " +
          "middleware. express-session needs no shim: drop it.",
      );
    }
    return this.cookieSessions.shim({
      loggedOut: (sessionId) => this.loggedOut(sessionId),
      renewed: (sessionId, expiresAt) => this.ledger.renewed(sessionId, expiresAt),
    });
  }

  /**
   * Logs the socket's session out, as a "Log out" button in a realtime UI means: destroys the session in the
   * store, then ends every socket of it on every node with `auth:ended { code: "logged_out" }`, and resolves with
   * how many sockets ended (this one included). The browser's cookie then logs in nobody, over HTTP or Socket.IO.
   * Rejects with a ClusterError when a node stays silent (after acting on the others), with `store_unavailable`
   * when the store fails (nothing ended then), and with `no_session` for token and anonymous sockets. There is
   * no `login(socket)`: a new session id can't reach the browser's cookie over a WebSocket.
   */
  logout(socket: AnySocket): Promise<number> {
    if (this.cookieSessions) {
      return Promise.reject(
        new ConfigError(
          "logout() cannot log out a cookie-session session: the session lives in the browser's cookie, which only an " +
            "HTTP response can clear, and a socket has none. Log out over HTTP (a fetch() POST to your logout route): " +
            "cookieSessionShim() then ends that login's sockets on every node.",
          "cookie_session_read_only",
        ),
      );
    }
    const live = this.live.liveOf(socket);
    const store = this.store;
    if (!live || !store) return Promise.reject(noSession("logout"));
    // After the session's earlier withSession calls: none of them can save it back once it is gone.
    return this.live.queued(live, () => this.logoutSession(live.id, store));
  }

  private async logoutSession(sessionId: string, store: SessionStore): Promise<number> {
    // The destroy hook would tell every node without waiting (loggedOut); here they are asked, and counted.
    this.loggingOut.add(sessionId);
    try {
      await within(this.options.storeTimeoutMs, (done) => store.destroy(sessionId, (err) => done(err)));
    } catch (cause) {
      throw new BridgeError("store_unavailable", "The session store did not destroy the session; nothing was ended. Retry.", { cause });
    } finally {
      this.loggingOut.delete(sessionId);
    }
    return sum(await this.cluster.run("endSession", { sessionId, code: "logged_out" }));
  }

  /**
   * The CSRF token of an HTTP request's session, for pages that connect with `csrf: true`: render it into the
   * page and connect with `io({ auth: { csrf: token } })`. Created on first use and kept in the session.
   */
  async csrfToken(req: IncomingMessage): Promise<string> {
    return csrfTokenOf(req);
  }

  /** Whether user `id` has a socket on any node. */
  async isOnline(id: UserId): Promise<boolean> {
    return (await this.cluster.run("online", toUserId(id))).some(Boolean);
  }

  /** The ids of the users with a socket on any node. */
  async onlineUsers(): Promise<string[]> {
    return [...new Set((await this.cluster.run("users", undefined)).flat())].sort();
  }

  /**
   * Declares private channels: rooms named by `pattern` (e.g. `"orders:{orderId}"`) that a socket joins only
   * when `authorize(user, params, socket)` says so (asked with `auth:join`). Names starting with `presence:`
   * are presence channels.
   */
  channel(pattern: string, authorize: ChannelAuthorizer<TUser>): this {
    this.channels.define(pattern, authorize);
    return this;
  }

  /**
   * Takes a socket, or every socket of user `id` on every node, out of `channel`, telling each with
   * `auth:left`. Resolves with how many sockets left.
   */
  async leave(target: AnySocket | UserId, channel: string): Promise<number> {
    if (typeof target === "object" && target !== null && "rooms" in target) {
      if (!target.rooms.has(channel)) return 0;
      await this.channels.leave(target, channel);
      return 1;
    }
    return sum(await this.cluster.run("leaveChannel", { userId: toUserId(target), channel }));
  }

  /**
   * A ticket for socket `socketId` to join `channel` (HMAC-SHA256 with `channelSecret` over framed, versioned
   * fields), valid for `expiresInMs` when given.
   */
  signChannel(socketId: string, channel: string, data?: string, options?: { expiresInMs?: number }): string {
    return this.channels.sign(socketId, channel, data, options);
  }

  /**
   * An Express handler that issues channel tickets to the logged-in user after the channel's authorize check:
   * POST `socket_id` and `channel_name`, get `{ auth }` (and `channel_data` for presence channels).
   */
  channelAuthHandler(): (req: IncomingMessage, res: ServerResponse) => void {
    return this.channels.handler();
  }

  /** An admitted socket, before the app sees it: its identity, its rooms, and the user on its request. */
  private admitted(socket: AnySocket, admission: Admission): Promise<void> | void {
    const { identity, handshake } = admission;
    // A recovered connection comes back with its old rooms and data, restored before any middleware ran.
    settle(socket, identity);
    if (!identity) {
      // An anonymous socket never shows a user, whatever another namespace of its connection admits. No
      // ending concerns it, so its ticket goes back now (held, it would keep every later ending in memory).
      ownRequest(socket, Object.create(handshake.request) as IncomingMessage, { [this.options.userProperty]: undefined });
      this.gate.finish(admission);
      return;
    }
    if (handshake.request !== socket.request) ownRequest(socket, handshake.request);
    (socket.request as BridgeRequest)[this.options.userProperty] = identity.user;
    this.useStore((socket.request as BridgeRequest).sessionStore);
    // A session with sockets here already: the room names they joined (one copy of each name per session).
    const rooms = identity.sessionId === undefined ? undefined : this.live.roomsOf(identity as SessionIdentity);
    return joinIdentity(socket, identity, rooms);
  }

  /** A socket the app now sees: track its session, unless it was ended while its admission ran. */
  private connected(socket: AnySocket): void {
    replay(socket);
    if (this.channels.active && socket.connected) {
      this.channels.watch(socket);
      if (socket.recovered) this.channels.recovered(socket).catch((err: unknown) => debug("channels of a recovered socket: %O", err));
    }
    const admission = this.gate.admissionOf(socket);
    const identity = admission?.identity;
    if (!admission || !identity) return;
    const ended = this.gate.endedSince(admission);
    this.gate.finish(admission);
    // (An app `connection` listener that ran first may have disconnected it already.)
    if (!socket.connected) return;
    if (ended) {
      this.gate.forget(socket);
      return endSocket(socket, ended, false, this.close);
    }
    if (identity.sessionId !== undefined) {
      return this.live.add(socket, identity as SessionIdentity);
    }
    this.tokens.watch(socket, identity, (ended) => {
      this.gate.forget(ended);
      endSocket(ended, "token_expired", false, this.close);
    });
  }

  /** The adapter failed to put an admitted socket in its rooms: refused, its ticket given back. */
  private unjoined(admission: Admission, next: (err?: Error) => void, err: unknown): void {
    this.gate.finish(admission);
    next(unregistered(err));
  }

  /** Starts watching the session store, once it is known. */
  private useStore(store: unknown): void {
    if (this.store || !isSessionStore(store)) return;
    this.store = store;
    this.live.useStore(store);
    observeStore(store, {
      // (The cluster runs this node's endSession at once, inside the call: the ledger ends the session before
      // any read in flight can answer.)
      destroyed: (sessionId) => this.loggedOut(sessionId),
      renewed: (sessionId, session, written) => {
        this.live.renewed(sessionId, session, written);
        if (written) this.written(sessionId, session);
      },
      loaded: (session) => rememberUser(session, this.options.passportKey),
    });
  }

  /**
   * This node wrote a session: its connections' held handshakes believe the old data, so the next namespace
   * reads again (from the fresh copy). A write that took the user away is a logout, on every node.
   */
  private written(sessionId: string, session: SessionRecord | undefined): void {
    for (const socket of localSocketsIn(this.bridged(), sessionRoom(sessionId))) this.gate.forget(socket);
    if (!userTakenAway(session, this.options.passportKey)) return;
    debug("session %s was written without its user: a logout", sessionId);
    this.loggedOut(sessionId);
  }

  /** Session `sessionId` was logged out through this node: its sockets end on every node. */
  private loggedOut(sessionId: string): void {
    // logout() asks every node itself, and counts; this node's ledger still ends the session now, as the store answers.
    if (this.loggingOut.has(sessionId)) return this.ledger.end(sessionId);
    this.cluster
      .tell("endSession", { sessionId, code: "logged_out" })
      .catch((err: unknown) => debug("logout of %s: %O", sessionId, err));
  }

  /**
   * Ends this node's sockets of a session; once logged out or expired, the session may not be written again,
   * and no handshake may use a read of it that is in flight.
   */
  private endSessionHere(sessionId: string, code: EndCode): number {
    if (code === "logged_out" || code === "session_expired") this.ledger.end(sessionId);
    return this.endHere(sessionRoom(sessionId), code);
  }

  private async leaveHere(room: string, channel: string): Promise<number> {
    const sockets = localSocketsIn(this.bridged(), room).filter((socket) => socket.rooms.has(channel));
    await Promise.all(sockets.map((socket) => this.channels.leave(socket, channel)));
    return sockets.length;
  }

  private endHere(room: string, code: EndCode): number {
    this.ledger.endings.record(room, code);
    return endLocalSockets(this.bridged(), room, code, (socket) => this.gate.forget(socket), this.close);
  }

  /**
   * Closes an ended socket's Engine.IO connection, unless the connection still carries a socket of a namespace
   * the bridge leaves to the app: that one is not the bridge's to end. (The connection's held handshake is
   * forgotten either way, so its next CONNECT to a bridged namespace reads the session again.)
   */
  private readonly close = (socket: AnySocket): void => {
    if (this.options.namespaces) {
      for (const sibling of connectedSiblings(socket)) if (!this.owns(sibling.nsp)) return;
    }
    closeConnection(socket);
  };

  private owns(nsp: Namespace): boolean {
    let owned = this.ownership.get(nsp);
    if (owned === undefined) this.ownership.set(nsp, (owned = ownsNamespace(this.options.namespaces, nsp.name)));
    return owned;
  }
}

function sum(counts: Array<number | null | undefined>): number {
  return counts.reduce<number>((total, n) => total + (n ?? 0), 0);
}

/**
 * Whether the bridge authenticates the namespace `name`: every one without the `namespaces` option; with it,
 * all but those it leaves out. A function leaves one out only by returning `false`: a mistake in it (a throw,
 * a missing return) keeps the namespace authenticated, with a warning for a throw.
 */
function ownsNamespace(namespaces: ((name: string) => boolean) | undefined, name: string): boolean {
  if (!namespaces) return true;
  try {
    return namespaces(name) !== false;
  } catch (err) {
    process.emitWarning(
      `The \`namespaces\` function threw for "${name}", so the bridge authenticates that namespace. Fix the ` +
        `function (it must return true or false for every name): ${(err as Error)?.message ?? String(err)}`,
      { code: "PSB_NAMESPACES_THREW" },
    );
    return true;
  }
}

/** The adapter failed to put an admitted socket in its rooms: a transient server fault. */
function unregistered(cause: unknown): RefusalError {
  return new RefusalError("server_error", { cause });
}

/**
 * Connection-state recovery skips middlewares by default, which would restore a socket's rooms and data
 * without asking whether its session still holds. The bridge needs its middleware to run on recovery too.
 */
function authenticateRecoveredConnections(io: Server): void {
  const recovery = recoveryOptionsOf(io);
  if (recovery && recovery.skipMiddlewares !== false) {
    recovery.skipMiddlewares = false;
    debug("connectionStateRecovery.skipMiddlewares set to false: recovered connections are authenticated again");
  }
}
