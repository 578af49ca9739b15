/**
 * Writes that take a session's user away. Passport 0.5's logout, an app that deletes `req.session.passport`
 * (or logs out with a session it keeps) and an app that puts another user in place all write the session
 * without destroying it, so no destroy hook sees them. Each session made from a stored record remembers the
 * serialized user it was loaded with; a write through this node that no longer carries that user ends the
 * session's sockets, as a logout does.
 */
import type { SessionRecord } from "./records.js";

/** The serialized user a session object was loaded with (as JSON for an object), on the session itself. */
const LOADED_USER = Symbol("passport-socketio-bridge:loaded-user");

type Marked = SessionRecord & { [LOADED_USER]?: string | number | boolean | undefined };

/** Remembers the user `session` holds now (under Passport's `key`), as it was loaded. */
export function rememberUser(session: SessionRecord, key: string): void {
  Object.defineProperty(session, LOADED_USER, { value: serializedUser(session, key), writable: true, configurable: true });
}

/**
 * Whether writing `session` removes or replaces the user it was loaded with (a user loaded: anything but none).
 * The answer counts once: the session then remembers what it holds now.
 */
export function userTakenAway(session: SessionRecord | undefined, key: string): boolean {
  const marked = session as Marked | undefined;
  if (!marked || !Object.hasOwn(marked, LOADED_USER)) return false;
  const loaded = marked[LOADED_USER];
  const now = serializedUser(marked, key);
  if (loaded === now) return false;
  marked[LOADED_USER] = now;
  return loaded !== undefined;
}

/** Passport's serialized user in a session: undefined for nobody (Passport's own test: truthy, or 0). */
function serializedUser(session: SessionRecord, key: string): string | number | boolean | undefined {
  const user = (session[key] as { user?: unknown } | undefined)?.user;
  if (!user && user !== 0) return undefined;
  if (typeof user === "string" || typeof user === "number" || typeof user === "boolean") return user;
  try {
    return JSON.stringify(user);
  } catch {
    return String(user);
  }
}
