/**
 * Transport wiring: put the bridge's middleware first in every namespace, present and future, so the app's
 * own `use()` middlewares and `connection` handlers always see the user; and notice a socket's incoming
 * events. Socket.IO's private members this relies on (`_nsps`, `_fns`, `onevent`, `packet`, `pid`, stable across
 * 4.6-4.8) are touched here only.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Namespace, Server } from "socket.io";
import type { AnySocket } from "./types.js";

type Middleware = (socket: AnySocket, next: (err?: Error) => void) => void;

/** Every namespace this node knows, static and dynamic children alike. */
export function namespacesOf(io: Server): Iterable<Namespace> {
  return (io as unknown as { _nsps: Map<string, Namespace> })._nsps.values();
}

/**
 * In every namespace, including those created later: calls `onNamespace` with it, runs `middleware` before any
 * other, and calls `onConnection` for each socket that connects.
 */
export function wireEveryNamespace(
  io: Server,
  middleware: Middleware,
  onConnection: (socket: AnySocket) => void,
  onNamespace: (nsp: Namespace) => void,
): void {
  const wire = (nsp: Namespace) => {
    onNamespace(nsp);
    prepend(nsp, middleware);
    nsp.on("connection", onConnection);
  };
  for (const nsp of namespacesOf(io)) wire(nsp);
  // Emitted by io.of() and by dynamic parent namespaces, before the app can call use() on the new one.
  io.on("new_namespace", wire);
}

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

/** The connected sockets of `socket`'s client connection, in every namespace (socket.io's `client.sockets`). */
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
 * connection closed before it connected, or disconnected (socket.io's `_cleanup` runs in each case). Give a
 * function shared by all sockets (not a closure per socket): then hooking a socket allocates nothing.
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

/** Sends `data` (an event's name and arguments) to the socket as Socket.IO sends a missed packet on recovery. */
export function sendEvent(socket: AnySocket, data: unknown): void {
  // PacketType.EVENT; `packet` is how Socket.IO's own recovery writes missed packets.
  (socket as unknown as { packet(packet: { type: number; data: unknown }): void }).packet({ type: 2, data });
}

/**
 * Gives a socket that may not resume its old state a new private session id (what socket.io sends in CONNECT
 * as `pid`): the client then knows it did not recover, and the old id resumes nothing through this socket.
 */
export function renewRecoveryId(socket: AnySocket): void {
  // Socket.IO's own ids: 15 random bytes, base64url (20 characters).
  Object.defineProperty(socket, "pid", { value: randomBytes(15).toString("base64url"), writable: true, configurable: true });
}
