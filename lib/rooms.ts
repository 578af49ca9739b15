/**
 * Rooms and revocation: every authenticated socket joins `user:<id>` and `session:<sid>` in its namespace,
 * and ending a user or a session means finding those rooms' sockets on this node, in every namespace,
 * telling each why, and disconnecting it. (Cluster-wide reach is cluster.ts's job.)
 */
import createDebug from "debug";
import type { Server } from "socket.io";
import type { EndCode } from "./errors.js";
import type { Identity } from "./handshake.js";
import { namespacesOf } from "./namespaces.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:rooms");

/**
 * Passport's serialized user as a room-safe string: strings as they are, numbers and other primitives via
 * String(), objects (apps that serialize the whole user) as JSON.
 */
export function toUserId(serialized: unknown): string {
  if (typeof serialized === "string") return serialized;
  if (typeof serialized === "object" && serialized !== null) {
    try {
      return JSON.stringify(serialized);
    } catch {
      // circular or BigInt-bearing: fall through
    }
  }
  return String(serialized);
}

const USER_PREFIX = "user:";
const SESSION_PREFIX = "session:";
export const userRoom = (id: unknown): string => `${USER_PREFIX}${toUserId(id)}`;
export const sessionRoom = (sessionId: string): string => `${SESSION_PREFIX}${sessionId}`;

/** The rooms the bridge keeps for itself: a socket's own, and the user and session rooms revocation relies on. */
export function isReservedRoom(socket: AnySocket, room: string): boolean {
  return room === socket.id || room.startsWith(USER_PREFIX) || room.startsWith(SESSION_PREFIX);
}

/**
 * Marks an admitted socket with its identity: `socket.data` for remote lookups, and its two rooms. Some
 * adapters join asynchronously; the caller awaits, so a failed join refuses the socket.
 */
export function joinIdentity(socket: AnySocket, identity: Identity): Promise<void> | void {
  const data = socket.data as BridgeSocketData;
  data.userId = identity.userId;
  if (identity.sessionId !== undefined) data.sessionId = identity.sessionId;
  return socket.join(roomsOf(identity));
}

/** The rooms of an identity: its user's, and its session's (token connections have none). */
export function roomsOf(identity: Identity): string[] {
  const rooms = [userRoom(identity.userId)];
  if (identity.sessionId !== undefined) rooms.push(sessionRoom(identity.sessionId));
  return rooms;
}

/** Takes back what joinIdentity gave: the identity in `socket.data` and the user and session rooms. */
export function forgetIdentity(socket: AnySocket): void {
  const data = socket.data as BridgeSocketData;
  delete data.userId;
  delete data.sessionId;
  for (const room of socket.rooms) {
    if (room !== socket.id && isReservedRoom(socket, room)) void socket.leave(room);
  }
}

/**
 * Tells one socket why it ends (`event` with `{ code }`), then disconnects it; the client does not reconnect
 * by itself. The app's `disconnect` handlers run inside, with the user still on the socket; one that
 * throws must not keep the next socket connected, so its error is only logged.
 */
export function endSocket(socket: AnySocket, ending: { code: EndCode; event: string }): void {
  try {
    socket.emit(ending.event, { code: ending.code });
    socket.disconnect();
  } catch (err) {
    debug("a disconnect handler of %s threw: %O", socket.id, err);
  }
}

/** Ends this node's sockets in `room`, in every namespace, then calls `afterEnd` with each. Returns how many. */
export function endLocalSockets(
  io: Server,
  room: string,
  ending: { code: EndCode; event: string },
  afterEnd: (socket: AnySocket) => void,
): number {
  const sockets = localSocketsIn(io, room);
  for (const socket of sockets) {
    endSocket(socket, ending);
    afterEnd(socket);
  }
  if (sockets.length) debug("ended %d socket(s) of %s: %s", sockets.length, room, ending.code);
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
