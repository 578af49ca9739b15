/**
 * The session store as the bridge sees it: the part of an express-session Store it uses, a stored record, and
 * when a record expires. A leaf.
 */

type Callback = (err?: unknown, ...rest: unknown[]) => void;

/** The part of an express-session Store the bridge uses. */
export interface SessionStore {
  get(sid: string, callback: (err: unknown, session?: SessionRecord | null) => void): void;
  destroy(sid: string, callback?: Callback): void;
  set(sid: string, session: SessionRecord, callback?: Callback): void;
  touch?(sid: string, session: SessionRecord, callback?: Callback): void;
  createSession?(req: unknown, session: SessionRecord): unknown;
}

/** A session as stores keep it. */
export interface SessionRecord {
  cookie?: { expires?: Date | string | null; originalMaxAge?: number | null } | null;
  [key: string]: unknown;
}

/** When a session record expires, in ms since the epoch; undefined for browser-session cookies. */
export function expiresOf(session: SessionRecord | null | undefined): number | undefined {
  const expires = session?.cookie?.expires;
  if (expires === null || expires === undefined) return undefined;
  // (express-session's Cookie holds a Date already; a stored record, its JSON string.)
  const ms = expires instanceof Date ? expires.getTime() : new Date(expires).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

export function isSessionStore(value: unknown): value is SessionStore {
  const store = value as Partial<SessionStore> | null;
  return typeof store?.get === "function" && typeof store.destroy === "function" && typeof store.set === "function";
}
