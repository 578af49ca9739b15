/**
 * `bridge(io, options)`: the one object an app holds. It wires the handshake and the policy into every
 * namespace, and offers the rooms and the cluster-wide disconnects.
 */
import type { IncomingMessage } from "node:http";
import type { Server } from "socket.io";
import { Cluster } from "./cluster.js";
import { ConfigError, RefusalError, type EndCode } from "./errors.js";
import { Handshake } from "./handshake.js";
import { useFirstEverywhere } from "./namespaces.js";
import { resolveOptions, type BridgeOptions, type ResolvedOptions } from "./options.js";
import { Gate } from "./policy.js";
import { endLocalSockets, joinIdentity, sessionRoom, userRoom } from "./rooms.js";
import type { AnySocket, UserId } from "./types.js";

const INSTALLED = Symbol.for("passport-socketio-bridge");
const ENDED_EVENT = "auth:ended";

/**
 * Authenticates every Socket.IO connection of `io` with the app's express-session and Passport: the
 * handshake request gets the same `session` and `user` that HTTP requests of that session get.
 */
export function bridge<TUser = Express.User>(io: Server, options: BridgeOptions<TUser>): SocketBridge<TUser> {
  return new SocketBridge<TUser>(io, options);
}

export class SocketBridge<TUser = Express.User> {
  private readonly options: ResolvedOptions<TUser>;
  private readonly gate: Gate<TUser>;
  private readonly cluster: Cluster<{ end: (payload: { room: string; code: EndCode }) => number }>;

  constructor(
    readonly io: Server,
    options: BridgeOptions<TUser>,
  ) {
    if (typeof io?.of !== "function" || typeof io.path !== "function") {
      throw new ConfigError("bridge(io, options) needs a Socket.IO Server as its first argument.");
    }
    if ((io as unknown as Record<symbol, unknown>)[INSTALLED]) {
      throw new ConfigError("bridge() was already called for this Socket.IO server; call it once and share the result.");
    }
    this.options = resolveOptions(options);
    const handshake = new Handshake(this.options as ResolvedOptions<unknown>);
    handshake.probe(io.path());
    this.gate = new Gate(this.options, handshake);
    this.cluster = new Cluster(io, {
      end: ({ room, code }) =>
        endLocalSockets(io, room, { code, event: ENDED_EVENT }, (socket) => this.gate.forget(socket.request)),
    });
    Object.defineProperty(io, INSTALLED, { value: this });

    useFirstEverywhere(io, (socket, next) => {
      this.gate
        .admit(socket)
        .then(({ identity }) => (identity ? joinIdentity(socket, identity) : undefined))
        .then(
          () => next(),
          (err: unknown) => next(err instanceof RefusalError ? err : unregistered(err)),
        );
    });
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
    return (socket.request as IncomingMessage & Record<string, unknown>)[this.options.userProperty] as
      | TUser
      | undefined;
  }

  /**
   * Disconnects every socket of user `id` on every node the adapter reaches, after sending them
   * `auth:ended` with `{ code: "revoked" }`. Resolves with how many sockets were disconnected.
   */
  disconnectUser(id: UserId): Promise<number> {
    return this.end(userRoom(id), "revoked");
  }

  /** Like disconnectUser, for the sockets of one session. */
  disconnectSession(sessionId: string): Promise<number> {
    return this.end(sessionRoom(sessionId), "revoked");
  }

  private async end(room: string, code: EndCode): Promise<number> {
    const counts = await this.cluster.run("end", { room, code });
    return counts.reduce<number>((sum, n) => sum + (typeof n === "number" ? n : 0), 0);
  }
}

/** The adapter failed to put an admitted socket in its rooms: a transient server fault. */
function unregistered(cause: unknown): RefusalError {
  return new RefusalError("rejected", {
    cause,
    message: "The server could not register this connection. Retry in a moment.",
    data: { reconnect: true },
  });
}
