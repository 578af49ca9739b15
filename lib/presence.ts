/**
 * Presence channels (`presence:...`): who is in one, on every node, and news of members who join and leave.
 * Members are looked up with the bridge's `members` cluster command, whose answers carry each socket's id, user
 * id and the app's `info`, and nothing else: never a handshake, headers or cookies (as `fetchSockets()` did).
 */
import createDebug from "debug";
import type { Server } from "socket.io";
import { BridgeError } from "./errors.js";
import { namespacesOf } from "./seams.js";
import { Events, PRESENCE_PREFIX } from "./protocol.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:channels");

export const isPresence = (channel: string): boolean => channel.startsWith(PRESENCE_PREFIX);

/** What presence members see of each other: the user's id (`socket.data.userId`) and the app's `info`, never more. */
export interface Member {
  userId: string | undefined;
  info?: unknown;
}
/** A member as one node reports it: which socket, so that a user's other sockets can be told apart. */
export type MemberAt = Member & { socketId: string };
/** The `members` cluster command's question: a channel of a namespace. */
export interface MembersQuery {
  nsp: string;
  channel: string;
}
/** Asks every node for its members of a channel (the bridge's `members` command); a node's `null` is none. */
export type MembersLookup = (query: MembersQuery) => Promise<Array<MemberAt[] | null>>;

/** What a socket's `data` carries about its channels (it travels with recovered connections). */
export type ChannelData = BridgeSocketData & {
  /** Presence channels: what the other members see of this socket. */
  presence?: Record<string, unknown>;
  /** Channels joined with `auth:join`, and the user (null: anonymous) they were joined as. */
  channels?: Record<string, string | null>;
};
export const dataOf = (socket: { data: unknown }): ChannelData => socket.data as ChannelData;

/** What the members see of a socket in `channel`: only its user's id and the app's info. */
export function memberOf(data: ChannelData, channel: string): Member {
  return { userId: typeof data.userId === "string" ? data.userId : undefined, info: data.presence?.[channel] };
}

export class Presence {
  /** Shared by every socket in a presence channel: called with the socket as `this`. */
  private readonly onDisconnecting: (this: AnySocket, reason: string) => void;
  /** Leave announcements under way, by socket id: a recovered socket is announced again only after them. */
  private readonly departures = new Map<string, Promise<unknown>>();

  constructor(
    private readonly io: Server,
    private readonly lookup: MembersLookup,
  ) {
    const departing = (socket: AnySocket) => {
      const rooms = [...socket.rooms].filter(isPresence);
      if (!rooms.length) return;
      // Its info stays in `socket.data`: a recovered connection comes back with it.
      const done = Promise.all(
        rooms.map((room) => this.departed(socket, room, memberOf(dataOf(socket), room), true).catch((err: unknown) => debug("presence leave: %O", err))),
      ).finally(() => {
        if (this.departures.get(socket.id) === done) this.departures.delete(socket.id);
      });
      this.departures.set(socket.id, done);
    };
    this.onDisconnecting = function (this: AnySocket, reason: string) {
      // Not while the server shuts down: the app closes its adapter's Redis next, and the adapter would turn
      // the broadcast on a closed connection into an unhandled rejection. (A crashed node says nothing either.)
      if (reason !== "server shutting down") departing(this);
    };
  }

  /** This node's members of a channel: the answer to the `members` cluster command. */
  here(query: MembersQuery): MemberAt[] {
    const { nsp: name, channel } = (query ?? {}) as Partial<MembersQuery>;
    // Found, never created: `io.of(name)` would make a namespace for any name another node sends.
    const nsp = [...namespacesOf(this.io)].find((candidate) => candidate.name === name);
    const members: MemberAt[] = [];
    if (!nsp || typeof channel !== "string") return members;
    for (const id of nsp.adapter.rooms.get(channel) ?? []) {
      const socket = nsp.sockets.get(id);
      if (socket) members.push({ socketId: id, ...memberOf(dataOf(socket), channel) });
    }
    return members;
  }

  /**
   * Into a presence channel (already in its room) with `info`: who is in it, on every node, and news of this
   * member for the others. Undefined if the socket disconnected or was taken out meanwhile (nobody was told).
   */
  async arrive(socket: AnySocket, channel: string, info: unknown): Promise<Member[] | undefined> {
    (dataOf(socket).presence ??= {})[channel] = info;
    // Before the members are fetched: if it disconnects meanwhile, those who saw it hear that it left.
    this.watch(socket);
    return this.announce(socket, channel);
  }

  /**
   * A connection recovered with the same identity: its presence channels heard that it left when its
   * transport closed, so they hear it join again, with the info it had (kept in `socket.data`).
   */
  async recovered(socket: AnySocket): Promise<void> {
    const channels = Object.keys(dataOf(socket).channels ?? {}).filter((channel) => isPresence(channel) && socket.rooms.has(channel));
    if (!channels.length) return;
    this.watch(socket);
    await this.departures.get(socket.id);
    await Promise.all(channels.map((channel) => this.announce(socket, channel).catch((err: unknown) => debug("presence join of %s: %O", channel, err))));
  }

  /** Who the socket was in a presence channel it is leaving (and it is no longer). */
  forget(socket: AnySocket, channel: string): Member {
    const data = dataOf(socket);
    const me = memberOf(data, channel);
    if (data.presence) delete data.presence[channel];
    return me;
  }

  /** After a socket left a presence channel as `me`: if that user has no other socket there, the members hear of it. */
  async departed(socket: AnySocket, channel: string, me: Member, leaving = false): Promise<void> {
    // While disconnecting, the socket is still in the room: wait until it is gone.
    if (leaving) await new Promise((resolve) => setImmediate(resolve));
    const remaining = await this.members(socket, channel);
    if (me.userId !== undefined && remaining.some((m) => m.userId === me.userId && m.socketId !== socket.id)) return;
    // Not to the socket itself: replayed to it after a recovery, it would hear itself leave.
    this.io.of(socket.nsp.name).to(channel).except(socket.id).emit(Events.PresenceLeave, { channel, member: me });
  }

  private watch(socket: AnySocket): void {
    if (!socket.listeners("disconnecting").includes(this.onDisconnecting)) socket.on("disconnecting", this.onDisconnecting);
  }

  /** The members, and news of this socket for the others unless its user is there already on another socket. */
  private async announce(socket: AnySocket, channel: string): Promise<Member[] | undefined> {
    const members = await this.members(socket, channel);
    if (!socket.connected || !socket.rooms.has(channel)) return undefined;
    const me = memberOf(dataOf(socket), channel);
    if (me.userId === undefined || !members.some((m) => m.userId === me.userId && m.socketId !== socket.id)) {
      socket.to(channel).emit(Events.PresenceJoin, { channel, member: me });
    }
    return unique(members);
  }

  private async members(socket: AnySocket, channel: string): Promise<MemberAt[]> {
    const answers = await viaAdapter("members", () => this.lookup({ nsp: socket.nsp.name, channel }));
    return answers.flatMap((answer) => (Array.isArray(answer) ? answer : []));
  }
}

/**
 * An adapter call, whose failure (another node silent past `requestsTimeout`, Redis down; a synchronous
 * throw too) becomes `cluster_unavailable`.
 */
export async function viaAdapter<T>(what: string, call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    throw new BridgeError("cluster_unavailable", `The Socket.IO adapter failed (${what}): other nodes did not answer.`, { cause });
  }
}

/** One entry per user (anonymous members each count). */
function unique(members: MemberAt[]): Member[] {
  const seen = new Set<string>();
  const result: Member[] = [];
  for (const { socketId, ...member } of members) {
    const key = member.userId ?? `socket:${socketId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    result.push(member);
  }
  return result;
}
