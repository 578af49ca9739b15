/**
 * Rooms and revocation: every authenticated socket joins `user:<id>` and `session:<sid>` in its namespace,
 * and ending a user or a session means finding those rooms' sockets on this node, in every namespace,
 * telling each why, and disconnecting it. (Cluster-wide reach is cluster.ts's job.)
 */
import createDebug from "debug";
import type { Namespace } from "socket.io";
import { roomsOf, userOfRoom, userRoom, type Identity } from "./identity.js";
import { Events, type EndCode } from "./protocol.js";
import { closeConnection } from "./seams.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:rooms");

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
export function endSocket(socket: AnySocket, code: EndCode, told = false, close: (socket: AnySocket) => void = closeConnection): void {
  if (!told) tell(socket, code);
  try {
    socket.disconnect();
  } catch (err) {
    debug("a disconnect handler of %s threw: %O", socket.id, err);
  }
  close(socket);
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
  namespaces: Iterable<Namespace>,
  room: string,
  code: EndCode,
  afterEnd: (socket: AnySocket) => void,
  close: (socket: AnySocket) => void = closeConnection,
): number {
  const sockets = localSocketsIn(namespaces, room);
  for (const socket of sockets) tell(socket, code);
  for (const socket of sockets) {
    endSocket(socket, code, true, close);
    afterEnd(socket);
  }
  if (sockets.length) debug("ended %d socket(s) of %s: %s", sockets.length, room, code);
  return sockets.length;
}

/** Whether user `userId` has a connected socket on this node (session or token), in any of `namespaces`. */
export function onlineHere(namespaces: Iterable<Namespace>, userId: string): boolean {
  return localSocketsIn(namespaces, userRoom(userId)).length > 0;
}

/** The users with a connected socket on this node: the `user:` rooms with a connected member, in `namespaces`. */
export function usersHere(namespaces: Iterable<Namespace>): string[] {
  const users = new Set<string>();
  for (const nsp of namespaces) {
    for (const [room, ids] of nsp.adapter.rooms) {
      const user = userOfRoom(room);
      if (user === undefined) continue;
      for (const id of ids) {
        if (nsp.sockets.has(id)) {
          users.add(user);
          break;
        }
      }
    }
  }
  return [...users];
}

/** This node's connected sockets in `room`, in `namespaces` (the bridge's: a namespace left to the app is not its). */
export function localSocketsIn(namespaces: Iterable<Namespace>, room: string): AnySocket[] {
  const sockets: AnySocket[] = [];
  for (const nsp of namespaces) {
    for (const id of nsp.adapter.rooms.get(room) ?? []) {
      const socket = nsp.sockets.get(id);
      if (socket) sockets.push(socket);
    }
  }
  return sockets;
}
