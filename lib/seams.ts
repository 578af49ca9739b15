/**
 * The seam: every access to a private or undocumented member of Socket.IO, Engine.IO, Passport and
 * express-session lives here, and nowhere else in lib/. Each names the versions it was checked on; each has a
 * case in spec/versions.spec.ts, which runs on the oldest and newest supported versions (socket.io 4.5.2-4.8,
 * engine.io 6.2-6.6, passport 0.5.1-0.7, express-session 1.15-1.19). When a dependency changes one, this file
 * and that spec are the only places to look.
 *
 * Socket.IO: putting the bridge's middleware first in every namespace, present and future, so the app's own
 * `use()` middlewares and `connection` handlers always see the user; noticing a socket's incoming events;
 * its connection's other sockets; its cleanup; its recovery id; writing a packet as recovery does. The
 * adapters (Redis, PostgreSQL): when their subscription comes back.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import * as nodeUrl from "node:url";
import type { Namespace, Server } from "socket.io";
import { rejectionsTo } from "./deadline.js";
import type { AnySocket, BridgeRequest, PassportLike, SessionMiddleware } from "./types.js";

type Middleware = (socket: AnySocket, next: (err?: Error) => void) => void;

/** Every namespace this node knows, static and dynamic children alike (`io._nsps`, Socket.IO 4.5.2-4.8). */
export function namespacesOf(io: Server): Iterable<Namespace> {
  return (io as unknown as { _nsps: Map<string, Namespace> })._nsps.values();
}

/**
 * In every namespace `owns` accepts, including those created later (a dynamic namespace's children each by
 * their own name): calls `onNamespace` with it, runs `middleware` before any other, and calls `onConnection`
 * for each socket that connects. In the others, runs only `leftOut` (when given) before any other middleware.
 */
export function wireEveryNamespace(
  io: Server,
  middleware: Middleware,
  onConnection: (socket: AnySocket) => void,
  onNamespace: (nsp: Namespace) => void,
  owns: (nsp: Namespace) => boolean = () => true,
  leftOut?: Middleware,
): void {
  const wire = (nsp: Namespace) => {
    if (!owns(nsp)) {
      if (leftOut) prepend(nsp, leftOut);
      return;
    }
    onNamespace(nsp);
    prepend(nsp, middleware);
    nsp.on("connection", onConnection);
  };
  for (const nsp of namespacesOf(io)) wire(nsp);
  // Emitted by io.of() and by dynamic parent namespaces, before the app can call use() on the new one.
  io.on("new_namespace", wire);
}

/** Puts `middleware` before the app's own (`nsp._fns`, Socket.IO 4.5.2-4.8; `use()` where it is missing). */
function prepend(nsp: Namespace, middleware: Middleware): void {
  const fns = (nsp as unknown as { _fns?: Middleware[] })._fns;
  if (!Array.isArray(fns)) {
    nsp.use(middleware);
  } else if (!fns.includes(middleware)) {
    fns.unshift(middleware);
  }
}

/**
 * A hook that calls `listener(socket)` before each event the socket receives (not acknowledgements, not
 * engine pings). `onAny()` would do, but allocates a listener array per socket; this shares one function
 * among all sockets, as an own `onevent` that calls Socket.prototype's.
 */
export function eventHook(listener: (socket: AnySocket) => void): (socket: AnySocket) => void {
  const wrappers = new WeakMap<object, (this: AnySocket, packet: unknown) => unknown>();
  return (socket) => {
    const proto = Object.getPrototypeOf(socket) as { onevent?: (this: AnySocket, packet: unknown) => unknown };
    let wrapped = wrappers.get(proto);
    if (!wrapped) {
      const original = proto.onevent;
      if (typeof original !== "function") return void socket.onAny(() => listener(socket));
      wrapped = function (this: AnySocket, packet: unknown) {
        listener(this);
        return original.call(this, packet);
      };
      wrappers.set(proto, wrapped);
    }
    (socket as unknown as { onevent: typeof wrapped }).onevent = wrapped;
  };
}

/** The connected sockets of `socket`'s client connection, in every namespace (`client.sockets`, Socket.IO 4.5.2-4.8). */
export function connectedSiblings(socket: AnySocket): Iterable<AnySocket> {
  return (socket.client as unknown as { sockets: Map<string, AnySocket> }).sockets.values();
}

/**
 * Gives `socket` a `request` of its own: `view`, a request whose prototype is the connection's (so the
 * session and everything else read through), with `own` properties on it. A namespace's identity then stays
 * its own when another namespace of the same connection admits someone else, or authenticates again.
 */
export function ownRequest(socket: AnySocket, view: IncomingMessage, own: Record<string, unknown> = {}): void {
  for (const [key, value] of Object.entries(own)) {
    Object.defineProperty(view, key, { value, writable: true, configurable: true, enumerable: true });
  }
  Object.defineProperty(socket, "request", { value: view, configurable: true });
}

type Cleanable = AnySocket & { _cleanup?: (this: AnySocket) => unknown };

/** For each hook given to onCleanup, the one `_cleanup` that runs it: shared by every socket, nothing per socket. */
const hooked = new WeakMap<(socket: AnySocket) => void, (this: Cleanable) => unknown>();

/**
 * Calls `fn(socket)` once `socket` will never connect or is gone: refused by a later middleware, its
 * connection closed before it connected, or disconnected (`_cleanup` runs in each case, Socket.IO 4.5.2-4.8; older
 * releases have none, hence the peer range's floor). Give a function shared by all sockets (not a closure per
 * socket): then hooking a socket allocates nothing.
 */
export function onCleanup(socket: AnySocket, fn: (socket: AnySocket) => void): void {
  const target = socket as Cleanable;
  const cleanup = target._cleanup;
  if (typeof cleanup !== "function") return;
  if (!Object.hasOwn(target, "_cleanup")) {
    let shared = hooked.get(fn);
    if (!shared) {
      shared = function (this: Cleanable) {
        fn(this);
        return (Object.getPrototypeOf(this) as Cleanable)._cleanup!.call(this);
      };
      hooked.set(fn, shared);
    }
    target._cleanup = shared;
    return;
  }
  // Already hooked (or wrapped by someone else): wrap what is there.
  target._cleanup = function (this: AnySocket) {
    fn(this);
    return cleanup.call(this);
  };
}

/**
 * Closes the socket's Engine.IO connection once what was sent to it is flushed (engine.io waits for its
 * buffer to drain). The client's other namespaces see "transport close" and reconnect with a new handshake.
 */
export function closeConnection(socket: AnySocket): void {
  socket.conn.close();
}

/** Sends `data` (an event's name and arguments) to the socket as Socket.IO 4.6-4.8 sends a missed packet on recovery. */
export function sendEvent(socket: AnySocket, data: unknown): void {
  // PacketType.EVENT; `packet` is how Socket.IO's own recovery writes missed packets.
  (socket as unknown as { packet(packet: { type: number; data: unknown }): void }).packet({ type: 2, data });
}

/**
 * Gives a socket that may not resume its old state a new private session id (what socket.io sends in CONNECT
 * as `pid`; Socket.IO 4.6-4.8): the client then knows it did not recover, and the old id resumes nothing through this socket.
 */
export function renewRecoveryId(socket: AnySocket): void {
  // Socket.IO's own ids: 15 random bytes, base64url (20 characters).
  Object.defineProperty(socket, "pid", { value: randomBytes(15).toString("base64url"), writable: true, configurable: true });
}

/** The private id a recovered socket came back with (what it presented as `auth.pid`). Socket.IO 4.6-4.8. */
export function recoveryIdOf(socket: AnySocket): unknown {
  return (socket as unknown as { pid?: unknown }).pid;
}

/**
 * The server's connection-state recovery options, to turn `skipMiddlewares` off: a recovery must be
 * authenticated like any connection. (`io.opts`, Socket.IO 4.6-4.8.)
 */
export function recoveryOptionsOf(io: Server): { skipMiddlewares?: boolean } | undefined {
  return (io as unknown as { opts?: { connectionStateRecovery?: { skipMiddlewares?: boolean } } }).opts?.connectionStateRecovery;
}

/** How long the adapter waits for other nodes' answers (`requestsTimeout`: the Redis and Postgres adapters). */
export function requestsTimeoutOf(io: Server): number | undefined {
  const ms = (io.of("/").adapter as unknown as { requestsTimeout?: unknown }).requestsTimeout;
  return typeof ms === "number" ? ms : undefined;
}

// Socket.IO adapters

/**
 * Calls `fn` once the adapter listens again after a reconnection; names the adapter, or undefined when it is
 * none this knows.
 */
export function onResubscribed(adapter: object, fn: () => void): string | undefined {
  // @socket.io/redis-adapter 8.3.0, createAdapter and createShardedAdapter: `subClient` is public. Checked on
  // ioredis 5.11.1: "ready" comes (on the next tick) after each reconnection has re-sent its SUBSCRIBE and
  // PSUBSCRIBE (autoResubscribe). On node-redis 5.12.1: "ready" comes once the resubscription is acknowledged.
  // Both also emit it on the first connection, when catching up finds few sessions or none.
  const sub = (adapter as { subClient?: { on?: unknown } }).subClient;
  if (sub && typeof sub.on === "function") {
    sub.on("ready", fn);
    return "Redis";
  }
  // @socket.io/postgres-adapter 0.5.0: `client` (private) is its PubSubClient. When its LISTEN connection ends,
  // it calls its `initClient()` (private) again 1 to 3 s later, which never rejects, and sets its own `client`
  // (private) only once every LISTEN has succeeded. The first call, from its constructor, is not wrapped.
  const pubsub = (adapter as { client?: { initClient?: unknown; client?: unknown } }).client;
  const init = pubsub?.initClient;
  if (pubsub && typeof init === "function") {
    pubsub.initClient = async function (this: typeof pubsub, ...args: unknown[]) {
      const result: unknown = await init.apply(this, args);
      if (this.client) fn();
      return result;
    };
    return "PostgreSQL";
  }
  return undefined;
}

// Engine.IO

/** The middlewares installed with `io.engine.use()` (`engine.middlewares`, engine.io 6.4-6.6; none before socket.io 4.6). */
export function engineMiddlewares(io: Server): Array<((...args: any[]) => unknown) & { name: string }> {
  const middlewares = (io.engine as unknown as { middlewares?: unknown } | undefined)?.middlewares;
  return Array.isArray(middlewares) ? middlewares : [];
}

// Passport (0.5.1-0.7)

/** Passport's user property on a request (`req._userProperty`), read by its `isAuthenticated()`. */
export function setUserProperty(request: IncomingMessage, userProperty: string): void {
  (request as BridgeRequest)._userProperty = userProperty;
}

/** Whether a strategy is registered under `name` (`_strategy`); undefined when Passport cannot tell. */
export function hasStrategy(passport: PassportLike, name: string): boolean | undefined {
  const registered = (passport as { _strategy?: (name: string) => unknown })._strategy;
  return typeof registered === "function" ? Boolean(registered.call(passport, name)) : undefined;
}

/** Where Passport keeps its data in the session (`req.session.passport` unless the Authenticator says otherwise). */
export function passportKeyOf(passport: PassportLike): string {
  const key: unknown = (passport as { _key?: unknown })._key; // Authenticator#_key
  return typeof key === "string" && key !== "" ? key : "passport";
}

/**
 * Passport's `isAuthenticated()` and `isUnauthenticated()`, for a request that passport.session() did not
 * run on (a service without sessions): the same test, a user at `req[userProperty]`.
 */
export function giveIsAuthenticated(request: IncomingMessage, userProperty: string): void {
  const req = request as BridgeRequest;
  setUserProperty(request, userProperty);
  if (typeof req.isAuthenticated !== "function") {
    req.isAuthenticated = function (this: BridgeRequest): boolean {
      return Boolean(this[this._userProperty ?? "user"]);
    } as IncomingMessage["isAuthenticated"];
  }
  if (typeof req.isUnauthenticated !== "function") {
    req.isUnauthenticated = function (this: BridgeRequest): boolean {
      return !this.isAuthenticated();
    };
  }
}

/** Whether `passport` has a deserializer yet (apps may register theirs after calling bridge()). */
export function hasDeserializer(passport: PassportLike): boolean {
  const stack = (passport as { _deserializers?: unknown })._deserializers;
  return !Array.isArray(stack) || stack.length > 0;
}

const GUARDED = Symbol.for("passport-socketio-bridge:guarded");

/**
 * Passport calls deserializers as callbacks and drops what they return, so an `async` deserializer that
 * throws becomes an unhandled rejection (a crash on Node 15+), over HTTP as well as here. Each registered
 * deserializer is wrapped, once, keeping its arity (Passport passes `req` to three-parameter ones), so that a
 * rejection reaches Passport's callback as an error instead.
 */
export function guardDeserializers(passport: PassportLike): void {
  const stack = (passport as { _deserializers?: unknown })._deserializers;
  if (!Array.isArray(stack)) return;
  for (let i = 0; i < stack.length; i++) {
    const fn = stack[i] as ((...args: any[]) => unknown) & { [GUARDED]?: true };
    if (typeof fn !== "function" || fn[GUARDED]) continue;
    const guarded: typeof fn =
      fn.length === 3
        ? function (this: unknown, req: unknown, id: unknown, done: (err: unknown) => void) {
            rejectionsTo(fn.call(this, req, id, done), done);
          }
        : function (this: unknown, id: unknown, done: (err: unknown) => void) {
            rejectionsTo(fn.call(this, id, done), done);
          };
    guarded[GUARDED] = true;
    stack[i] = guarded;
  }
}


// express-session (1.15-1.19)

/** Puts Session.prototype's reload and save back in place of express-session's per-request wrappers. */
export function unwrapSession(session: object): void {
  const proto = Object.getPrototypeOf(session) as Record<"reload" | "save", unknown>;
  // Assigned over (not deleted), which keeps the object's fast shape.
  if (Object.hasOwn(session, "reload") && !Reflect.set(session, "reload", proto.reload)) {
    Object.defineProperty(session, "reload", { value: proto.reload });
  }
  if (Object.hasOwn(session, "save") && !Reflect.set(session, "save", proto.save)) {
    Object.defineProperty(session, "save", { value: proto.save });
  }
}


/** Drops express-session's parsed-URL cache (parseurl's `_parsedUrl`, `_parsedOriginalUrl`) from a request. */
export function forgetParsedUrl(request: IncomingMessage): void {
  const req = request as unknown as { _parsedUrl?: unknown; _parsedOriginalUrl?: unknown };
  // (Only where express-session cached one: a new property would only grow the request.)
  if (req._parsedOriginalUrl !== undefined) req._parsedOriginalUrl = undefined;
  if (req._parsedUrl !== undefined) req._parsedUrl = undefined;
}

/**
 * The cookie path express-session compares each request's path with. It is read by handing the middleware
 * a parsed URL whose pathname records what it is compared with, and answers "no match", so nothing else
 * happens. Undefined when the middleware never compared (its store is disconnected, or it is not
 * express-session).
 */
export function cookiePathOf(session: SessionMiddleware): string | undefined {
  let seen: string | undefined;
  const pathname = {
    indexOf(path: unknown) {
      if (typeof path === "string") seen ??= path;
      return -1;
    },
    toString: () => "/",
  };
  // parseurl reuses a parsed URL of its own type whose `_raw` matches the request's originalUrl.
  const LegacyUrl = (nodeUrl as unknown as { Url: { prototype: object } }).Url;
  const parsed = Object.assign(Object.create(LegacyUrl.prototype) as object, { _raw: "/", href: "/", path: "/", pathname });
  const req = { url: "/", originalUrl: "/", _parsedOriginalUrl: parsed, method: "GET", headers: {} };
  try {
    session(req, detachedResponse(), () => undefined);
  } catch {
    return undefined;
  }
  return seen;
}

/**
 * A response that is never sent. express-session wraps its `writeHead` and `end` to save the session and set
 * the cookie; since nobody calls them, it does neither. A fresh one per handshake (its two middlewares share
 * it), as those wrappers hold `req`; its methods are the class's, so it is one small object.
 */
class DetachedResponse {
  statusCode = 200;
  headersSent = false;
  writeHead(): this {
    return this;
  }
  setHeader(): void {}
  getHeader(): undefined {
    return undefined;
  }
  removeHeader(): void {}
  write(): boolean {
    return true;
  }
  end(): this {
    return this;
  }
}

export function detachedResponse(): DetachedResponse {
  return new DetachedResponse();
}
