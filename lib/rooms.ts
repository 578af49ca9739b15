/**
 * Rooms and revocation: every authenticated socket joins `user:<id>` and `session:<sid>` in its namespace,
 * and ending a user or a session means finding those rooms' sockets on this node, in every namespace,
 * telling each why, and disconnecting it. (Cluster-wide reach is cluster.ts's job.)
 */
import createDebug from "debug";
import type { Server } from "socket.io";
import type { Identity } from "./handshake.js";
import { closeConnection, namespacesOf } from "./namespaces.js";
import { Events, type EndCode } from "./protocol.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:rooms");

/**
 * An id an app passes to the API (`disconnectUser(1)`), as a string. Anything but a string or a number (a user
 * object, say) would name a room nobody is in (`user:[object Object]`), silently: that is a TypeError.
 */
export function toUserId(id: unknown): string {
  if (typeof id === "string") return id;
  if (typeof id === "number" || typeof id === "bigint") return String(id);
  throw new TypeError(
    `A user id must be a string or a number, not ${id === null ? "null" : typeof id}: pass the user's id ` +
      "(what the userId option, or Passport's serialized value, gives), not the user object.",
  );
}

/** The id a user's rooms and presence go by, from the deserialized user and Passport's serialized value. */
export type UserIdOf = (user: unknown, serialized: unknown) => string;

/**
 * The app's `userId` option, or the default: the serialized value when it is a string or a number, else the
 * serialized object's `id` or `_id` (Socket.IO's own Passport example serializes the whole user). With none
 * of those, the serialized value as JSON, and one warning that names the option.
 */
export function userIdResolver(custom: ((user: any, serialized: unknown) => string | number) | undefined): UserIdOf {
  if (custom) {
    return (user, serialized) => {
      const id: unknown = custom(user, serialized);
      if ((typeof id !== "string" && typeof id !== "number") || id === "") {
        throw new TypeError(`the userId option returned ${typeof id}, not a non-empty string or number`);
      }
      return String(id);
    };
  }
  let warned = false;
  return (_user, serialized) => {
    const id = plainId(serialized) ?? plainId((serialized as { id?: unknown } | null)?.id) ?? plainId((serialized as { _id?: unknown } | null)?._id);
    if (id !== undefined) return id;
    if (!warned) {
      warned = true;
      process.emitWarning(
        "Passport's serialized user has no string or number id (nor an `id` or `_id` field), so user rooms, " +
          "disconnectUser() and isOnline() go by its JSON. Give bridge() a `userId: (user, serialized) => id` option.",
        { code: "PSB_USER_ID" },
      );
    }
    try {
      return JSON.stringify(serialized) ?? String(serialized);
    } catch {
      return String(serialized);
    }
  };
}

/** A string or number as an id; an object with its own toString (a MongoDB ObjectId) by that. */
function plainId(value: unknown): string | undefined {
  if (typeof value === "string" || typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "object" && value !== null && value.toString !== Object.prototype.toString) {
    const id = String(value);
    return id === "" ? undefined : id;
  }
  return undefined;
}

const USER_PREFIX = "user:";
const SESSION_PREFIX = "session:";
export const userRoom = (id: string | number): string => `${USER_PREFIX}${toUserId(id)}`;
export const sessionRoom = (sessionId: string): string => `${SESSION_PREFIX}${sessionId}`;

/** The rooms the bridge keeps for itself: a socket's own, and the user and session rooms revocation relies on. */
export function isReservedRoom(socket: AnySocket, room: string): boolean {
  return room === socket.id || isIdentityRoom(room);
}

/** A user's or a session's room: what names a socket's identity. */
export function isIdentityRoom(room: string): boolean {
  return room.startsWith(USER_PREFIX) || room.startsWith(SESSION_PREFIX);
}

/**
 * Marks an admitted socket with its identity: `socket.data` for remote lookups, and its two rooms. Some
 * adapters join asynchronously; the caller awaits, so a failed join refuses the socket.
 */
export function joinIdentity(socket: AnySocket, identity: Identity, rooms: readonly string[] = roomsOf(identity)): Promise<void> | void {
  const data = socket.data as BridgeSocketData;
  data.userId = identity.userId;
  if (identity.sessionId !== undefined) data.sessionId = identity.sessionId;
  return socket.join(rooms as string[]);
}

/** The rooms of an identity: its user's, and its session's (token connections have none). */
export function roomsOf(identity: Identity): string[] {
  const rooms = [userRoom(identity.userId)];
  if (identity.sessionId !== undefined) rooms.push(sessionRoom(identity.sessionId));
  return rooms;
}

/** Leaves `room` without waiting; an adapter that fails to (the sharded one can reject) is only logged. */
export function leaveQuietly(socket: AnySocket, room: string): void {
  try {
    Promise.resolve(socket.leave(room)).catch((err: unknown) => debug("leaving %s failed: %O", room, err));
  } catch (err) {
    debug("leaving %s failed: %O", room, err);
  }
}

/**
 * Tells one socket why it ends (`auth:ended` with `{ code }`), disconnects it (the client does not reconnect it by
 * itself), and closes its Engine.IO connection, which was authenticated with what ended. The app's
 * `disconnect` handlers run inside, with the user still on the socket; one that throws must not keep the
 * next socket connected, so its error is only logged.
 */
export function endSocket(socket: AnySocket, code: EndCode, told = false): void {
  if (!told) tell(socket, code);
  try {
    socket.disconnect();
  } catch (err) {
    debug("a disconnect handler of %s threw: %O", socket.id, err);
  }
  closeConnection(socket);
}

function tell(socket: AnySocket, code: EndCode): void {
  if (socket.connected) socket.emit(Events.Ended, { code });
}

/**
 * Ends this node's sockets in `room`, in every namespace, then calls `afterEnd` with each. Returns how many.
 * Every socket is told before any connection closes: a connection carries several namespaces' sockets, and
 * closing it for the first would leave the others with a bare "transport close".
 */
export function endLocalSockets(
  io: Server,
  room: string,
  code: EndCode,
  afterEnd: (socket: AnySocket) => void,
): number {
  const sockets = localSocketsIn(io, room);
  for (const socket of sockets) tell(socket, code);
  for (const socket of sockets) {
    endSocket(socket, code, true);
    afterEnd(socket);
  }
  if (sockets.length) debug("ended %d socket(s) of %s: %s", sockets.length, room, code);
  return sockets.length;
}

/** Whether user `userId` has a connected socket on this node (session or token), in any namespace. */
export function onlineHere(io: Server, userId: string): boolean {
  return localSocketsIn(io, userRoom(userId)).length > 0;
}

/** The users with a connected socket on this node: the `user:` rooms with a connected member, in every namespace. */
export function usersHere(io: Server): string[] {
  const users = new Set<string>();
  for (const nsp of namespacesOf(io)) {
    for (const [room, ids] of nsp.adapter.rooms) {
      if (!room.startsWith(USER_PREFIX)) continue;
      for (const id of ids) {
        if (nsp.sockets.has(id)) {
          users.add(room.slice(USER_PREFIX.length));
          break;
        }
      }
    }
  }
  return [...users];
}

/** This node's connected sockets in `room`, in every namespace. */
export function localSocketsIn(io: Server, room: string): AnySocket[] {
  const sockets: AnySocket[] = [];
  for (const nsp of namespacesOf(io)) {
    for (const id of nsp.adapter.rooms.get(room) ?? []) {
      const socket = nsp.sockets.get(id);
      if (socket) sockets.push(socket);
    }
  }
  return sockets;
}
