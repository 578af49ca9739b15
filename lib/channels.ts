/**
 * Private channels: rooms a socket may join only after the app says so. `auth.channel("orders:{orderId}",
 * authorize)` declares them; clients ask with `auth:join` and get `{ ok }` or `{ ok: false, code, message }`.
 * Presence channels (presence.ts) tell their members who joins and leaves, across nodes. And the Pusher scheme for a realtime
 * service that cannot read the app's session: the app signs a ticket for one socket and one channel
 * (`signChannel`, `channelAuthHandler()`), and the socket presents it.
 *
 * Everything a client can trigger here answers its ack with a code and never rejects unhandled: the adapter
 * calls (join, leave, the members lookup) fail when other nodes are silent or Redis is down.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import createDebug from "debug";
import type { Server } from "socket.io";
import { compileChannelPattern, isChannelName, isReservedChannel, isReservedName, type ChannelPattern } from "./channel-patterns.js";
import { BridgeError, CHANNEL_REFUSALS, ConfigError } from "./errors.js";
import type { ResolvedOptions } from "./options.js";
import { Events, MAX_CHANNEL_LENGTH, type ChannelRefusalCode } from "./protocol.js";
import { dataOf, isPresence, Presence, viaAdapter, type Member, type MembersLookup, type MembersQuery, type MemberAt } from "./presence.js";
import { leaveQuietly } from "./rooms.js";
import { signTicket, ticketRefusal } from "./tickets.js";
import type { AnySocket, BridgeRequest } from "./types.js";

const debug = createDebug("passport-socketio-bridge:channels");

export type { Member, MemberAt, MembersQuery } from "./presence.js";

/**
 * Decides whether `user` may join the channel with these `params` (from the pattern's `{names}`). `socket` is
 * undefined when a ticket is being issued over HTTP. For a presence channel, return `{ info }` to say what
 * the other members see of this one.
 */
export type ChannelAuthorizer<TUser> = (
  user: TUser | undefined,
  params: Record<string, string>,
  socket: AnySocket | undefined,
) => boolean | { info?: unknown } | Promise<boolean | { info?: unknown }>;


export type ChannelAnswer = { ok: true; members?: Member[] } | { ok: false; code: ChannelRefusalCode; message: string };

interface Channel<TUser> {
  pattern: ChannelPattern;
  authorize: ChannelAuthorizer<TUser>;
}

const refused = (code: ChannelRefusalCode): ChannelAnswer => ({ ok: false, code, message: CHANNEL_REFUSALS[code] });

/**
 * A socket's channels on this node, kept so that a join costs the same however many it is in: how many
 * entries its `data.channels` has (counted, never recounted), and the joins under way (they count too).
 */
interface Membership {
  count: number;
  pending: Map<string, Promise<ChannelAnswer>>;
  /** `socket.rooms.size` when stale entries were last dropped (see `hasRoom`). */
  prunedAt: number;
}

export class Channels<TUser> {
  private readonly channels: Array<Channel<TUser>> = [];
  private readonly memberships = new WeakMap<AnySocket, Membership>();
  private readonly presence: Presence;

  /** `lookup` asks every node for its members of a presence channel (the bridge's `members` cluster command). */
  constructor(
    private readonly io: Server,
    private readonly options: Pick<ResolvedOptions<TUser>, "channelSecret" | "userProperty" | "maxChannelsPerSocket">,
    private readonly userOf: (socket: AnySocket) => TUser | undefined,
    lookup: MembersLookup,
  ) {
    this.presence = new Presence(io, lookup);
  }

  /** Whether sockets need the join/leave events: some channel is declared, or tickets can be checked. */
  get active(): boolean {
    return this.channels.length > 0 || this.options.channelSecret !== undefined;
  }

  define(pattern: string, authorize: ChannelAuthorizer<TUser>): void {
    if (typeof pattern !== "string" || pattern === "" || typeof authorize !== "function") {
      throw new ConfigError('channel(pattern, authorize) needs a pattern such as "orders:{orderId}" and a function.');
    }
    this.channels.push({ pattern: compileChannelPattern(pattern), authorize });
  }

  /** This node's members of a presence channel: the answer to the `members` cluster command. */
  membersHere(query: MembersQuery): MemberAt[] {
    return this.presence.here(query);
  }

  /**
   * Listens for a socket's join and leave requests; each answers its ack, whatever fails. The ack is the last
   * argument: sent with no payload (`emit("auth:join", ack)`), it comes first, and is answered all the same.
   */
  watch(socket: AnySocket): void {
    socket.on(Events.Join, (...args: unknown[]) => {
      const [payload, ack] = request(args);
      answer("join", this.join(socket, payload), ack);
    });
    socket.on(Events.Leave, (...args: unknown[]) => {
      const [payload, ack] = request(args);
      answer("leave", this.requestLeave(socket, payload), ack);
    });
  }

  /**
   * A ticket for `socketId` to join `channel` (and, for presence, with `data`): HMAC-SHA256 with
   * `channelSecret` over every field, framed and versioned, as hex; `<expiresAtMs>.<hex>` with `expiresInMs`.
   */
  sign(socketId: string, channel: string, data?: string, options?: { expiresInMs?: number }): string {
    if (!this.options.channelSecret) throw new ConfigError("Set the `channelSecret` option to sign channel tickets.");
    if (!isChannelName(channel)) {
      throw new ConfigError(`A channel name is a non-empty string of at most ${MAX_CHANNEL_LENGTH} characters; no client could join this one.`);
    }
    if (isReservedName(channel)) throw new ConfigError(`"${channel}" is reserved: ${CHANNEL_REFUSALS.channel_reserved}`);
    return signTicket(this.options.channelSecret, socketId, channel, data, options?.expiresInMs);
  }

  async join(socket: AnySocket, payload: unknown): Promise<ChannelAnswer> {
    const { channel, auth: ticket, data } = (payload ?? {}) as { channel?: unknown; auth?: unknown; data?: unknown };
    if (!isChannelName(channel)) return refused("channel_unknown");
    // Before any pattern: however broad, none may put a socket in another's own room, or a user's or session's.
    if (isReservedChannel(this.io, socket, channel)) return refused("channel_reserved");
    const membership = this.membership(socket);
    // The same channel asked again while its first join runs: one authorize, one announcement, one answer.
    const pending = membership.pending.get(channel);
    if (pending) return pending;
    // Already in: nothing to check or announce, and nothing asked of other nodes (the members came with the
    // first join, and every change since with presence:join and presence:leave).
    if (this.isJoined(socket, channel)) return { ok: true };
    if (!this.hasRoom(socket, membership)) return refused("too_many_channels");
    const joining = this.admit(socket, channel, ticket, data).finally(() => membership.pending.delete(channel));
    membership.pending.set(channel, joining);
    return joining;
  }

  /** Takes a socket out of a channel (telling it with `auth:left`), and tells the presence members if it was the user's last. */
  async leave(socket: AnySocket, channel: string): Promise<void> {
    await viaAdapter("leave", () => socket.leave(channel));
    this.forget(socket, channel);
    socket.emit(Events.Left, { channel });
    if (isPresence(channel)) await this.presence.departed(socket, channel, this.presence.forget(socket, channel));
  }

  /** Re-runs `authorize` for each declared channel the socket is in; leaves those it may no longer join. */
  async recheck(socket: AnySocket): Promise<void> {
    for (const room of [...socket.rooms]) {
      // However broad a pattern, the rooms revocation relies on are never taken away.
      if (isReservedChannel(this.io, socket, room)) continue;
      const match = this.match(room);
      if (!match) continue;
      let allowed: unknown;
      try {
        allowed = await match.channel.authorize(this.userOf(socket), match.params, socket);
      } catch (err) {
        debug("recheck of %s failed: %O", room, err);
      }
      // One channel the adapter could not leave (or announce) does not keep the socket in the others.
      if (!allowed && socket.connected) await this.leave(socket, room).catch((err: unknown) => debug("leaving %s: %O", room, err));
    }
  }

  /**
   * A socket recovered as the same identity (recovery.ts starts any other afresh), now connected: its declared
   * channels checked again, and the presence channels it is still in told that it is back (they heard it leave
   * when its transport closed).
   */
  async recovered(socket: AnySocket): Promise<void> {
    await this.recheck(socket);
    await this.presence.recovered(socket);
  }

  /** The Express handler that issues tickets for the logged-in user, shaped like Pusher's `{ auth }`. */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    if (!this.options.channelSecret) throw new ConfigError("Set the `channelSecret` option to issue channel tickets.");
    return (req, res) => {
      this.issue(req).then(
        ([status, body]) => send(res, status, body),
        (err: unknown) => {
          debug("ticket failed: %O", err);
          send(res, 500, { error: "server_error" });
        },
      );
    };
  }

  private async issue(req: IncomingMessage): Promise<[number, Record<string, unknown>]> {
    const fields = { ...(req as { query?: object }).query, ...(req as { body?: object }).body } as Record<string, unknown>;
    const socketId = fields.socket_id;
    const channel = fields.channel_name;
    const user = (req as BridgeRequest)[this.options.userProperty] as TUser | undefined;
    if (!user) return [401, { error: "unauthenticated" }];
    // Checked before any matching: no client could join a longer name anyway.
    if (typeof socketId !== "string" || !/^[\w-]{1,64}$/.test(socketId) || !isChannelName(channel)) {
      return [400, { error: `Send socket_id and channel_name (at most ${MAX_CHANNEL_LENGTH} characters).` }];
    }
    if (isReservedName(channel)) return [403, { error: "channel_reserved" }];
    const match = this.match(channel);
    if (!match) return [404, { error: "channel_unknown" }];
    const verdict = await match.channel.authorize(user, match.params, undefined);
    if (!verdict) return [403, { error: "channel_forbidden" }];
    if (!isPresence(channel)) return [200, { auth: this.sign(socketId, channel) }];
    const channelData = JSON.stringify({ info: typeof verdict === "object" ? verdict.info : undefined });
    return [200, { auth: this.sign(socketId, channel, channelData), channel_data: channelData }];
  }

  /** A client's `auth:leave`: out of a channel it is in, never out of a reserved room. */
  private async requestLeave(socket: AnySocket, payload: unknown): Promise<ChannelAnswer> {
    const channel = (payload as { channel?: unknown } | undefined)?.channel;
    if (!isChannelName(channel)) return refused("channel_unknown");
    if (socket.rooms.has(channel) && this.isChannel(socket, channel)) await this.leave(socket, channel);
    return { ok: true };
  }

  /** A join the socket may make: checked (ticket or authorize), then into the room, and for presence, announced. */
  private async admit(socket: AnySocket, channel: string, ticket: unknown, data: unknown): Promise<ChannelAnswer> {
    let info: unknown;
    if (ticket !== undefined) {
      // A presented ticket is always checked, whatever the channel's authorize would say.
      if (typeof ticket !== "string" || (data !== undefined && typeof data !== "string")) return refused("ticket_invalid");
      const refusal = ticketRefusal(this.options.channelSecret, ticket, socket.id, channel, data);
      if (refusal) return refused(refusal);
      info = data === undefined ? undefined : parseInfo(data);
    } else {
      const match = this.match(channel);
      if (!match) return refused("channel_unknown");
      let verdict: Awaited<ReturnType<ChannelAuthorizer<TUser>>>;
      try {
        verdict = await match.channel.authorize(this.userOf(socket), match.params, socket);
      } catch (err) {
        debug("authorize of %s threw: %O", channel, err);
        return refused("channel_forbidden");
      }
      if (!verdict) return refused("channel_forbidden");
      info = typeof verdict === "object" ? verdict.info : undefined;
    }
    if (!socket.connected) return refused("channel_forbidden");
    try {
      await viaAdapter("join", () => socket.join(channel));
      if (!isPresence(channel)) {
        this.record(socket, channel);
        return { ok: true };
      }
      const members = await this.presence.arrive(socket, channel, info);
      if (members) {
        this.record(socket, channel);
        return { ok: true, members };
      }
      // Disconnected or taken out meanwhile: it is not in, and nobody was told.
      this.unadmit(socket, channel);
      return refused("channel_forbidden");
    } catch (err) {
      this.unadmit(socket, channel);
      throw err;
    }
  }

  /** Not half in: out of the room again, and nothing for the members to see. */
  private unadmit(socket: AnySocket, channel: string): void {
    this.forget(socket, channel);
    this.presence.forget(socket, channel);
    leaveQuietly(socket, channel);
  }

  private match(channel: string): { channel: Channel<TUser>; params: Record<string, string> } | undefined {
    for (const declared of this.channels) {
      const params = declared.pattern.match(channel);
      if (params) return { channel: declared, params };
    }
    return undefined;
  }

  /** Whether a client may leave `room` with `auth:leave`: a channel it joined, or a declared one; never a reserved room. */
  private isChannel(socket: AnySocket, room: string): boolean {
    if (isReservedChannel(this.io, socket, room)) return false;
    return Object.hasOwn(dataOf(socket).channels ?? {}, room) || this.match(room) !== undefined || isPresence(room);
  }

  private membership(socket: AnySocket): Membership {
    let membership = this.memberships.get(socket);
    if (!membership) {
      // Counted once per socket: a recovered connection comes back with its channels.
      membership = { count: Object.keys(dataOf(socket).channels ?? {}).length, pending: new Map(), prunedAt: -1 };
      this.memberships.set(socket, membership);
    }
    return membership;
  }

  /** Whether the socket joined `channel` with `auth:join` and is still in it (an entry it is not in is dropped). */
  private isJoined(socket: AnySocket, channel: string): boolean {
    if (!Object.hasOwn(dataOf(socket).channels ?? {}, channel)) return false;
    if (socket.rooms.has(channel)) return true;
    this.forget(socket, channel);
    return false;
  }

  /**
   * Whether the socket may join one more channel under `maxChannelsPerSocket`. At the limit, entries of
   * channels the app took it out of by hand (`socket.leave`, `socketsLeave`) are dropped first; that walk is
   * repeated only once its rooms changed, so a client asking again and again at the limit costs nothing more.
   */
  private hasRoom(socket: AnySocket, membership: Membership): boolean {
    const max = this.options.maxChannelsPerSocket;
    if (membership.count + membership.pending.size < max) return true;
    const rooms = socket.rooms;
    if (rooms.size !== membership.prunedAt) {
      for (const channel of Object.keys(dataOf(socket).channels ?? {})) if (!rooms.has(channel)) this.forget(socket, channel);
      membership.prunedAt = rooms.size;
    }
    return membership.count + membership.pending.size < max;
  }

  /** Notes a joined channel in the socket's data, in place (a copy per join made joins slower with each channel). */
  private record(socket: AnySocket, channel: string): void {
    const data = dataOf(socket);
    const channels = (data.channels ??= {});
    if (!Object.hasOwn(channels, channel)) this.membership(socket).count++;
    channels[channel] = data.userId ?? null;
  }

  private forget(socket: AnySocket, channel: string): void {
    const { channels } = dataOf(socket);
    if (!channels || !Object.hasOwn(channels, channel)) return;
    delete channels[channel];
    const membership = this.memberships.get(socket);
    if (membership) membership.count--;
  }
}

type Ack = (answer: ChannelAnswer) => void;

/** A client request's payload and ack: the ack is the last argument, and the payload (if any) the first before it. */
function request(args: unknown[]): [payload: unknown, ack: Ack | undefined] {
  const last = args[args.length - 1];
  if (typeof last !== "function") return [args[0], undefined];
  return [args.length > 1 ? args[0] : undefined, last as Ack];
}

/** Answers a client's request through its ack (if it sent one); a failure becomes a code and a debug line, never a rejection. */
function answer(what: string, answering: Promise<ChannelAnswer>, ack: Ack | undefined): void {
  answering
    .catch((err: unknown): ChannelAnswer => {
      debug("%s failed: %O", what, err);
      return refused(err instanceof BridgeError && Object.hasOwn(CHANNEL_REFUSALS, err.code) ? (err.code as ChannelRefusalCode) : "server_error");
    })
    .then((result) => ack?.(result))
    .catch((err: unknown) => debug("answering %s failed: %O", what, err));
}

function parseInfo(data: string): unknown {
  try {
    return (JSON.parse(data) as { info?: unknown }).info;
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("cache-control", "no-store");
  res.end(JSON.stringify(body));
}
