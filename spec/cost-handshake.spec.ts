/**
 * What a handshake costs the server beyond Socket.IO itself, counted (never timed): handshakes driven in
 * process through Socket.IO's own namespace flow (a fake Engine.IO connection carrying a real IncomingMessage
 * with the session cookie, then a CONNECT packet), once with the bridge and once without, same sessions. The
 * bridge runs the app's real express-session and passport.session(); everything else it adds must stay small:
 * no timer per handshake (only its session's expiry and revalidation, per session), a few promises, and bounded
 * bytes. (bench/handshake.ts measures the same way, with CPU time and a stage-by-stage breakdown.)
 */
import { createHook } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import v8 from "node:v8";
import { sign } from "cookie-signature";
import session from "express-session";
import { Passport } from "passport";
import { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import { bridge } from "../lib/index.js";
import { FakeConnection, handshakeRequest, openConnection } from "./helpers/fake-engine.js";

const SECRET = "cost secret";
const SESSIONS = 10;
const HANDSHAKES = 400;

/** A Socket.IO server that never listens, the app's session and Passport, and SESSIONS logged-in sessions. */
async function setup(withBridge: boolean) {
  const store = new session.MemoryStore();
  const middleware = session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } });
  const passport = new Passport();
  passport.deserializeUser((id: string, done) => done(null, { id }));
  const io = new Server(createServer());
  /** How many times express-session's middleware ran. */
  const runs = { session: 0 };
  const counted: typeof middleware = (req, res, next) => {
    runs.session++;
    return middleware(req, res, next);
  };
  if (withBridge) bridge(io, { session: counted, passport });
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  const cookies: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const sid = randomBytes(18).toString("base64url");
    const record = { cookie: { originalMaxAge: 3_600_000, expires, httpOnly: true, path: "/" }, passport: { user: `user-${i}` } };
    await new Promise<void>((resolve) => store.set(sid, record as never, () => resolve()));
    cookies.push(`connect.sid=${encodeURIComponent(`s:${sign(sid, SECRET)}`)}`);
  }
  const handshake = (i: number) => {
    const conn = new FakeConnection(handshakeRequest({ host: "localhost:3000", origin: "http://localhost:3000", cookie: cookies[i % SESSIONS]! }));
    return new Promise<FakeConnection>((resolve, reject) => {
      conn.answered = (ok) => (ok ? resolve(conn) : reject(new Error("refused")));
      openConnection(io, conn);
    });
  };
  /** `total` handshakes, 20 at a time; the sockets stay connected. */
  const connect = async (total: number) => {
    const conns: FakeConnection[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < total) conns.push(await handshake(next++));
    }));
    return conns;
  };
  const close = async (conns: FakeConnection[]) => {
    for (const conn of conns) conn.end();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { io, connect, close, runs, store };
}

/** What `work` creates, by async resource type (Timeout, Immediate, PROMISE, ...). */
async function created(work: () => Promise<unknown>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const hook = createHook({
    init(_id, type) {
      counts[type] = (counts[type] ?? 0) + 1;
    },
  });
  hook.enable();
  try {
    await work();
  } finally {
    hook.disable();
  }
  return counts;
}

/** Bytes allocated by `work`: the heap's growth plus what each GC meanwhile freed. */
async function allocated(work: () => Promise<unknown>): Promise<number> {
  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics().used_heap_size;
  await work();
  const after = v8.getHeapStatistics().used_heap_size;
  const { statistics } = profiler.stop() as { statistics: Array<{ beforeGC: { heapStatistics: { usedHeapSize: number } }; afterGC: { heapStatistics: { usedHeapSize: number } } }> };
  return after - before + statistics.reduce((sum, gc) => sum + gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize, 0);
}

/** The same measurement with and without the bridge, after a warm-up; `measure` gets a fresh window each. */
async function compare<T>(measure: (s: Awaited<ReturnType<typeof setup>>) => Promise<T>): Promise<{ plain: T; bridged: T }> {
  const results: T[] = [];
  for (const withBridge of [false, true]) {
    const s = await setup(withBridge);
    try {
      await s.close(await s.connect(200));
      results.push(await measure(s));
    } finally {
      s.io.close();
    }
  }
  return { plain: results[0]!, bridged: results[1]! };
}

describe("a handshake's own cost, beyond Socket.IO's", () => {
  it(`creates no timer per handshake: ${HANDSHAKES} handshakes of ${SESSIONS} sessions, at most two per session and one more`, async () => {
    const { plain, bridged } = await compare(async (s) => {
      let conns: FakeConnection[] = [];
      const counts = await created(async () => (conns = await s.connect(HANDSHAKES)));
      await s.close(conns);
      return counts.Timeout ?? 0;
    });
    // Each live session: one expiry timer and one revalidation timer. The handshakes' deadlines share one.
    expect(bridged - plain).toBeLessThanOrEqual(2 * SESSIONS + 1);
  });

  it("creates at most 5 promises per handshake", async () => {
    const { plain, bridged } = await compare(async (s) => {
      let conns: FakeConnection[] = [];
      const counts = await created(async () => (conns = await s.connect(HANDSHAKES)));
      await s.close(conns);
      return counts.PROMISE ?? 0;
    });
    expect((bridged - plain) / HANDSHAKES).toBeLessThanOrEqual(5);
  });

  it(`runs express-session once per session, not per handshake, while the session has sockets: ${HANDSHAKES} more handshakes of ${SESSIONS} sessions`, async () => {
    const s = await setup(true);
    try {
      const first = await s.connect(200);
      const before = s.runs.session;
      const more = await s.connect(HANDSHAKES);
      // A cookie express-session verified for a session with sockets here is served from the ledger's copy:
      // only one handshake per session (the one that verifies its cookie) runs the middleware.
      expect(s.runs.session - before).toBeLessThanOrEqual(SESSIONS);
      expect(more).toHaveLength(HANDSHAKES);
      await s.close([...first, ...more]);
    } finally {
      s.io.close();
    }
  });

  it("allocates at most 12 KB per handshake, express-session and Passport included", async () => {
    const { plain, bridged } = await compare(async (s) => {
      let conns: FakeConnection[] = [];
      const bytes = await allocated(async () => (conns = await s.connect(1000)));
      await s.close(conns);
      return bytes / 1000;
    });
    expect((bridged - plain) / 1024).toBeLessThanOrEqual(12);
  });
});
