/**
 * Who a socket belongs to, and what names it: identity types, the user-id policy, and the user and session
 * room names. A leaf: it imports nothing of the bridge but its types.
 */
import type { AnySocket } from "./types.js";

/** An identity that came from a session (not a token). */
export type SessionIdentity = Identity & {
  sessionId: string;
  /** When the store read behind it began (the copy's own time, for a handshake served from a copy). */
  readAt: number;
  /** A cookie session's lifetime (cookie-session's `maxAge`), which `expires` counts from the handshake. */
  lifetimeMs?: number | undefined;
};

/** Who an admitted socket belongs to. */
export interface Identity {
  /** What Passport's deserializeUser produced: the object now at `socket.request[userProperty]`. */
  user: unknown;
  /** The user's id (the `userId` option; by default Passport's serialized user): `user:<userId>` is its room. */
  userId: string;
  /** The express-session id (`session:<sessionId>` is the session's room); undefined for token connections. */
  sessionId: string | undefined;
  /** When a token connection's token expires, or a cookie session's cookie at the latest (ms since the epoch). */
  expires?: number | undefined;
}

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

/** The user id a `user:` room names, or undefined for any other room. */
export function userOfRoom(room: string): string | undefined {
  return room.startsWith(USER_PREFIX) ? room.slice(USER_PREFIX.length) : undefined;
}
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

/** The rooms of an identity: its user's, and its session's (token connections have none). */
export function roomsOf(identity: Identity): string[] {
  const rooms = [userRoom(identity.userId)];
  if (identity.sessionId !== undefined) rooms.push(sessionRoom(identity.sessionId));
  return rooms;
}
