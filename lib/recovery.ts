/**
 * Connection-state recovery, authenticated. Socket.IO restores a socket's id, rooms and `data`, and writes the
 * packets it missed, before any middleware runs. The bridge holds those packets back until the socket is
 * admitted, and a socket that comes back as anyone but exactly who it was (another user, another session,
 * anonymous now) keeps nothing: it leaves every room but its own id, its `data` is emptied, and it connects
 * as a fresh socket (`recovered` false, a new private id), so the app's fresh-connection path runs.
 */
import type { Namespace } from "socket.io";
import { isIdentityRoom, roomsOf, type Identity } from "./identity.js";
import { leaveQuietly } from "./rooms.js";
import { recoveryIdOf, renewRecoveryId, sendEvent } from "./seams.js";
import type { AnySocket } from "./types.js";

type Restored = { pid?: unknown; missedPackets?: unknown[] } | null | undefined;
type Restore = (pid: string, offset: string) => Promise<Restored> | Restored;

/** An adapter whose restoreSession holds missed packets back (set once per adapter instance). */
const HOLDING = Symbol("passport-socketio-bridge:holding");
/** Where a recovered socket keeps its held packets until it is admitted (a property: nothing per socket elsewhere). */
const HELD = Symbol("passport-socketio-bridge:held");

type Holder = { restoreSession?: Restore; [HOLDING]?: Map<string, unknown[]> };
type Holding = AnySocket & { [HELD]?: unknown[] | undefined };

/**
 * Makes the namespace's adapter hand restored sessions over without their missed packets, which it keeps by
 * private id for `claim()`. Called for each namespace, and again per recovered socket (an adapter set with
 * `io.adapter()` later replaces the namespaces' adapters).
 */
export function holdMissedPackets(nsp: Namespace): void {
  const adapter = nsp.adapter as unknown as Holder;
  const restore = adapter.restoreSession;
  if (typeof restore !== "function" || adapter[HOLDING]) return;
  const held = new Map<string, unknown[]>();
  Object.defineProperty(adapter, HOLDING, { value: held });
  adapter.restoreSession = async function (this: unknown, pid: string, offset: string) {
    const session = await restore.call(this, pid, offset);
    if (!session || !Array.isArray(session.missedPackets) || session.missedPackets.length === 0) return session;
    // Read back (and deleted) by the bridge's middleware, the next thing to run for this socket.
    held.set(pid, session.missedPackets);
    return { ...session, missedPackets: [] };
  };
}

/**
 * The first thing the bridge does with a socket: a recovered one takes its held packets with it. (Sockets that
 * did not recover cost one property read.)
 */
export function claim(socket: AnySocket): void {
  if (!socket.recovered) return;
  const held = (socket.nsp.adapter as unknown as Holder)[HOLDING];
  const pid = recoveryIdOf(socket);
  if (held && typeof pid === "string") {
    (socket as Holding)[HELD] = held.get(pid);
    held.delete(pid);
  }
  holdMissedPackets(socket.nsp);
}

/**
 * A recovered socket, admitted as `identity` (undefined: anonymous): keeps what it had only if that was exactly
 * this identity, judged by the bridge's own rooms it was restored with. Otherwise starts it afresh.
 */
export function settle(socket: AnySocket, identity: Identity | undefined): void {
  if (!socket.recovered) return;
  if (wasExactly(socket, identity)) return;
  (socket as Holding)[HELD] = undefined;
  for (const room of socket.rooms) if (room !== socket.id) leaveQuietly(socket, room);
  socket.data = {};
  (socket as { recovered: boolean }).recovered = false;
  renewRecoveryId(socket);
}

/** A connected, recovered socket gets the packets it missed, once. */
export function replay(socket: AnySocket): void {
  const packets = (socket as Holding)[HELD];
  if (!packets) return;
  (socket as Holding)[HELD] = undefined;
  if (!socket.recovered || !socket.connected) return;
  for (const data of packets) sendEvent(socket, data);
}

function wasExactly(socket: AnySocket, identity: Identity | undefined): boolean {
  const had = [...socket.rooms].filter(isIdentityRoom).sort();
  const has = identity ? [...roomsOf(identity)].sort() : [];
  return had.length === has.length && had.every((room, i) => room === has[i]);
}
