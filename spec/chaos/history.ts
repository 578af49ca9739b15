/**
 * The chaos run's history (every operation, every CONNECT and what came of it, every ending a client received)
 * and the invariants of README.md ("How it works", "Live sessions") and SECURITY.md ("Session truth") checked
 * against it. All times are the runner's Date.now(): one clock for everything compared.
 */
import { ENDINGS } from "../../lib/index.js";

export interface Bounds {
  /** The nodes' sessionCacheMs. */
  cacheMs: number;
  /** The nodes' revalidateEveryMs. */
  revalidateMs: number;
  /** "Within a second": logout, destroy, regenerate and disconnectUser reach every node's sockets. */
  reachMs: number;
  /** Added to the two options' bounds: one store read, one broadcast on a loaded 2-core machine. */
  slackMs: number;
}

export type OpKind =
  | "login"
  | "logout"
  | "destroy"
  | "regenerate"
  | "write"
  | "delete"
  | "ban"
  | "kick"
  | "pause"
  | "connect"
  | "leave"
  | "close";

export interface Op {
  n: number;
  kind: OpKind;
  node: string;
  start: number;
  end?: number;
  ok?: boolean;
  detail: string;
  /** The session an operation acted on, and the user. */
  sid?: string;
  user?: string;
}

export interface Session {
  sid: string;
  cookie: string;
  user: string;
  login: Op;
  /** Logout, destroy or regenerate, once it answered. */
  ending?: Op;
  /** DEL of its key behind the bridge's back. */
  deleted?: Op;
  /** A mutation that failed: what the store holds after it is unknown, so no bound is checked after it. */
  uncertain?: Op;
  /** Writes that answered, each with the mark it set (marks grow). */
  writes: Array<{ op: Op; mark: number }>;
  /** One mutation at a time per session, as one browser tab would: concurrent writes and destroys race in express-session itself. */
  busy: boolean;
}

/** One namespace socket: a CONNECT and what came of it. */
export interface Conn {
  key: string;
  via: "client/websocket" | "client/polling" | "raw";
  node: string;
  nsp: string;
  session: Session;
  op: Op;
  /** When the CONNECT was sent (for socket.io-client: when the client was created, a little earlier). */
  requested: number;
  admitted?: number;
  /** The socket id the server gave it. */
  id?: string;
  refused?: { at: number; code: string };
  closed?: { at: number; by: "runner" | "server" };
  /** auth:ended as received. */
  ended?: { at: number; code: string };
}

export interface Admission {
  node: string;
  nsp: string;
  id: string;
  sessionID: string | undefined;
  userId: string | undefined;
  mark: number | undefined;
}

export interface History {
  ops: Op[];
  sessions: Session[];
  conns: Conn[];
  admissions: Admission[];
  /** Unhandled rejections, uncaught exceptions and exits, per node. */
  fatal: string[];
}

export interface Violation {
  rule: string;
  message: string;
  ops: Op[];
}

/** Transient refusals a live session may get while Redis is paused. */
const TRANSIENT = new Set(["store_unavailable", "deserialize_failed"]);

export function check(h: History, b: Bounds): { violations: Violation[]; latencies: Record<string, number> } {
  const violations: Violation[] = [];
  const latencies: Record<string, number> = {};
  const note = (what: string, ms: number) => (latencies[what] = Math.max(latencies[what] ?? 0, ms));
  const bans = new Map<string, Op>();
  for (const op of h.ops) if (op.kind === "ban" && op.ok && op.user && !bans.has(op.user)) bans.set(op.user, op);
  const byId = new Map(h.admissions.map((a) => [`${a.nsp}#${a.id}`, a]));
  const userOps = (user: string) => h.ops.filter((op) => (op.kind === "ban" || op.kind === "kick") && op.user === user);
  /** What may have ended (or refused) a CONNECT by time t: its session's endings, its user's ban, a disconnectUser under way. */
  const causes = (c: Conn, t: number) =>
    [...sessionOps(c.session), ...userOps(c.session.user)].filter(
      (op) => op.start <= t && (op.kind !== "kick" || c.requested < (op.end ?? Infinity)),
    );
  const sessionOps = (s: Session) => [s.ending, s.deleted, s.uncertain].filter((op): op is Op => op !== undefined);
  const certainAt = (s: Session, t: number) => !s.uncertain || s.uncertain.start > t;

  for (const fatal of h.fatal) violations.push({ rule: "no crash, no unhandled rejection", message: fatal, ops: [] });

  for (const c of h.conns) {
    const s = c.session;
    // The operations named, and the other operations on its session or user in the seconds around its CONNECT.
    const involved = (...ops: Array<Op | undefined>) => {
      const near = h.ops.filter((op) => (op.sid === s.sid || op.user === s.user) && Math.abs(op.start - c.requested) < 3000);
      const named = [s.login, c.op, ...ops, ...near].filter((op): op is Op => op !== undefined);
      return [...new Set(named)].sort((x, y) => x.n - y.n);
    };
    if (c.admitted !== undefined) {
      const record = c.id === undefined ? undefined : byId.get(`${c.nsp}#${c.id}`);
      // Admitted as exactly the session and user its cookie carries.
      if (!record) {
        violations.push({ rule: "admitted as the cookie's session", message: `${c.key}: no node reported admitting socket ${c.id}`, ops: involved() });
      } else if (record.sessionID !== s.sid || record.userId !== s.user) {
        violations.push({
          rule: "admitted as the cookie's session",
          message: `${c.key}: admitted as session ${record.sessionID} user ${record.userId}, its cookie is session ${s.sid} of ${s.user}`,
          ops: involved(),
        });
      }
      if (s.ending?.end !== undefined && c.requested > s.ending.end && certainAt(s, c.requested)) {
        violations.push({
          rule: "no admission after an ending",
          message: `${c.key}: CONNECT sent ${c.requested - s.ending.end} ms after ${s.ending.kind} #${s.ending.n} answered, admitted`,
          ops: involved(s.ending),
        });
      }
      if (s.deleted?.end !== undefined && c.requested > s.deleted.end + b.cacheMs + b.slackMs && certainAt(s, c.requested)) {
        violations.push({
          rule: "deletions seen by new handshakes within sessionCacheMs",
          message: `${c.key}: CONNECT sent ${c.requested - s.deleted.end} ms after the DEL (#${s.deleted.n}), admitted (bound ${b.cacheMs} + ${b.slackMs} ms)`,
          ops: involved(s.deleted),
        });
      }
      const ban = bans.get(s.user);
      if (ban?.end !== undefined && c.requested > ban.end) {
        violations.push({
          rule: "a banned user is never admitted after the ban",
          message: `${c.key}: CONNECT sent ${c.requested - ban.end} ms after the ban of ${s.user} answered, admitted`,
          ops: involved(ban),
        });
      }
      // The newest write that had sessionCacheMs (+ slack) to spread must be what the handshake saw.
      const due = s.writes.filter((w) => w.op.end !== undefined && w.op.end + b.cacheMs + b.slackMs < c.requested);
      const expected = Math.max(0, ...due.map((w) => w.mark));
      const seen = record?.mark ?? 0;
      if (record && seen < expected && certainAt(s, c.requested) && !s.ending && !s.deleted) {
        const write = due.find((w) => w.mark === expected)!;
        violations.push({
          rule: "writes seen by new handshakes within sessionCacheMs",
          message: `${c.key}: admitted with mark ${seen}, ${c.requested - write.op.end!} ms after the write of mark ${expected} answered`,
          ops: involved(write.op),
        });
      }
      // Endings reach every socket of the session (or user), on every node, within their bound.
      const reaches: Array<{ op: Op; bound: number; what: string }> = [];
      // A session ending reaches every socket of the session; disconnectUser those whose CONNECT it found sent.
      for (const op of [s.ending, ...userOps(s.user)]) {
        const affects = op?.kind === "ban" || op?.kind === "kick" ? c.requested < op.start : op !== undefined;
        if (op?.ok && op.end !== undefined && affects) reaches.push({ op, bound: b.reachMs, what: `${op.kind} (within ${b.reachMs} ms)` });
      }
      if (s.deleted?.ok && s.deleted.end !== undefined) {
        reaches.push({ op: s.deleted, bound: b.revalidateMs + b.slackMs, what: `a DEL behind the bridge's back (within revalidateEveryMs ${b.revalidateMs} + ${b.slackMs} ms)` });
      }
      for (const { op, bound, what } of reaches) {
        const from = Math.max(op.end!, c.admitted);
        const deadline = from + bound;
        if (c.closed && c.closed.by === "runner" && c.closed.at <= deadline) continue;
        if (!c.closed || c.closed.at > deadline) {
          violations.push({
            rule: op.kind === "delete" ? "live sockets of a deleted session end within revalidateEveryMs" : "endings reach every node's sockets within 1 s",
            message: `${c.key} on ${c.node}: still connected ${c.closed ? `${c.closed.at - from} ms` : "at the end of the run"} after ${what}`,
            ops: involved(op),
          });
        } else {
          note(op.kind === "delete" ? "deleted session's live socket ended after" : `${op.kind} reached a socket after`, c.closed.at - from);
        }
      }
      // An ending no operation explains (nothing ended the session or its user before it) is a bug too.
      if (c.closed?.by === "server") {
        if (causes(c, c.closed.at).length === 0) {
          violations.push({
            rule: "no ending without a cause",
            message: `${c.key} on ${c.node} was disconnected${c.ended ? ` with auth:ended ${c.ended.code}` : ""}, but nothing ended its session or user`,
            ops: involved(),
          });
        }
      }
      if (c.ended && !(c.ended.code in ENDINGS)) {
        violations.push({ rule: "endings carry a known code", message: `${c.key}: auth:ended with code ${c.ended.code}`, ops: involved() });
      }
    } else if (c.refused && !TRANSIENT.has(c.refused.code)) {
      // A live session (nothing ended it, its user, or began to, before the answer) is admitted.
      if (causes(c, c.refused.at).length === 0) {
        violations.push({ rule: "a live session is admitted", message: `${c.key} on ${c.node}: refused ${c.refused.code}`, ops: involved() });
      }
    } else if (!c.refused && !c.closed) {
      violations.push({ rule: "every CONNECT is answered", message: `${c.key} on ${c.node}: no answer`, ops: involved() });
    }
  }
  return { violations, latencies };
}

export function describeOp(op: Op, t0: number): string {
  const time = `${op.start - t0} ms${op.end !== undefined ? ` -> ${op.end - t0} ms` : " (no answer)"}`;
  const status = op.ok === undefined ? "" : op.ok ? " ok" : " FAILED";
  return `#${op.n} ${op.kind} on ${op.node} at ${time}${status}${op.user ? ` user ${op.user}` : ""}${op.sid ? ` session ${op.sid.slice(0, 8)}` : ""}: ${op.detail}`;
}
