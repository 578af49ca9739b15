/**
 * The wire protocol between the bridge and its clients: event names and the codes they carry. The server and
 * `/client` both import them from here, so neither can drift. It imports nothing, and holds only string
 * constants and types, so the client bundle gets the literals inlined and nothing more.
 */

/**
 * The events. An enum, not consts: esbuild inlines enum members across files (and drops the object), where it
 * would keep one variable per const in the client bundle (26 bytes more, gzipped).
 */
export const enum Events {
  /** Server → client, `{ code: EndCode }`, just before the bridge disconnects a socket. */
  Ended = "auth:ended",
  /** Client → server, `{ channel, auth?, data? }` with an ack that gets a channel answer. */
  Join = "auth:join",
  /** Client → server, `{ channel }` with an ack that gets a channel answer. */
  Leave = "auth:leave",
  /** Server → client, `{ channel }`: the socket was taken out of a channel (access gone, or `auth.leave`). */
  Left = "auth:left",
  /** Client → server, `{ token }` with an ack that gets a refresh answer. */
  Refresh = "auth:refresh",
  /** Server → client: the app's refreshed user (sent by the app, not the bridge; the client's default `userEvent`). */
  User = "auth:user",
  /** Server → the other members of a presence channel, `{ channel, member }`. */
  PresenceJoin = "presence:join",
  PresenceLeave = "presence:leave",
}

/** Channels whose names start with this are presence channels. */
export const PRESENCE_PREFIX = "presence:";
/** The longest channel name a client may ask for. */
export const MAX_CHANNEL_LENGTH = 200;

/** Why a handshake was refused (`err.data.code` of `connect_error`). Hooks may send codes of their own too. */
export type RefusalCode =
  | "session_missing"
  | "unauthenticated"
  | "user_not_found"
  | "deserialize_failed"
  | "store_unavailable"
  | "rejected"
  | "origin_not_allowed"
  | "csrf_mismatch"
  | "too_many_attempts"
  | "token_invalid"
  | "token_expired"
  | "server_error";

/** Which mistake a `session_missing` was (`err.data.reason`). */
export type SessionMissingReason = "no_cookie" | "cookie_requires_https" | "bad_signature" | "unknown_session" | "token_in_query";

/** Why the bridge ended a live socket (the `code` of `auth:ended`). */
export type EndCode = "logged_out" | "session_expired" | "user_removed" | "revoked" | "token_expired";

/** Why an `auth:join` or `auth:leave` was refused (the `code` of its answer). */
export type ChannelRefusalCode =
  | "channel_unknown"
  | "channel_forbidden"
  | "channel_reserved"
  | "ticket_invalid"
  | "ticket_expired"
  | "too_many_channels"
  | "cluster_unavailable"
  | "server_error";

/** Codes the client gives itself: no answer came within `ackTimeoutMs`. */
export type ClientCode = "timeout";
