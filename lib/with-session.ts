/**
 * `withSession`: session writes from socket events. Reload the socket's session, let the app change it, then
 * touch and save it, one call at a time per session on this node (the live session's queue), and never once
 * the session ended: a slow handler cannot bring a logged-out session back.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { DeadlineError, within } from "./deadline.js";
import { BridgeError, noSession } from "./errors.js";
import type { Ledger } from "./ledger.js";
import type { LiveSessions } from "./live-sessions.js";
import { expiresOf, type SessionRecord, type SessionStore } from "./records.js";
import type { AnySocket, BridgeRequest } from "./types.js";

const debug = createDebug("passport-socketio-bridge:live");

type Session = NonNullable<IncomingMessage["session"]>;

/**
 * Reloads the socket's session, runs `fn` on it, then touches and saves it. If the session is gone, its
 * sockets end with `logged_out` (or `session_expired`) and the promise rejects with a BridgeError of that code.
 */
export function withSession<T>(
  live: LiveSessions,
  ledger: Ledger,
  store: SessionStore | undefined,
  storeTimeoutMs: number,
  socket: AnySocket,
  fn: (session: Session) => T | Promise<T>,
): Promise<T> {
  const session = live.liveOf(socket);
  if (!session) return Promise.reject(noSession("withSession"));
  return live.queued(session, async () => {
    const req = socket.request as BridgeRequest;
    if (session.facts.ended) throw gone();
    try {
      await within(storeTimeoutMs, (done) => req.session.reload(done));
    } catch (cause) {
      if (cause instanceof DeadlineError || !/failed to load session/.test(String((cause as Error)?.message))) {
        throw new BridgeError("store_unavailable", "The session store did not answer; nothing was changed.", { cause });
      }
      live.endSoon(session, "logged_out");
      throw gone("logged_out", cause);
    }
    const fresh = req.session as Session;
    // Still in the store only because connect-redis rounds TTLs up: it has expired.
    if ((expiresOf(fresh as unknown as SessionRecord) ?? Infinity) <= ledger.clock.now()) {
      live.endSoon(session, "session_expired");
      throw gone("session_expired");
    }
    const result = await fn(fresh);
    if (session.facts.ended) throw gone();
    fresh.touch();
    await within(storeTimeoutMs, (done) => fresh.save(done));
    // Logged out while the save was on its way: take the resurrected record back out.
    if (session.facts.ended) {
      store?.destroy(session.id, (err?: unknown) => err && debug("re-destroying %s: %O", session.id, err));
      throw gone();
    }
    return result;
  });
}

function gone(code: "logged_out" | "session_expired" = "logged_out", cause?: unknown): BridgeError {
  return new BridgeError(code, "The session has ended (logged out or expired); nothing was saved.", { cause });
}
