/** Session stores that misbehave on purpose, on top of express-session's MemoryStore. */
import session from "express-session";

/** A MemoryStore whose reads fail while `failing` is set (a store outage that tests switch on and off). */
export class FlakyStore extends session.MemoryStore {
  failing = false;
  override get(sid: string, callback: (err: unknown, session?: session.SessionData | null) => void): void {
    if (this.failing) return void setImmediate(callback, new Error("the store is down"));
    super.get(sid, callback);
  }
}
