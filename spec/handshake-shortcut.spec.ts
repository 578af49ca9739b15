/**
 * The handshake's shortcut (lib/handshake.ts `fromCopy`): a live session's later handshakes skip express-session
 * when their cookie is exactly one express-session verified for it, and take the ledger's copy. Each test attacks
 * the shortcut: it must answer what express-session would have answered. In process (a fake Engine.IO
 * connection, MemoryStore); the real-server flows run through it in the other specs.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { sign } from "cookie-signature";
import session from "express-session";
import { Passport } from "passport";
import { Server } from "socket.io";
import { afterEach, describe, expect, it } from "vitest";
import { bridge } from "../lib/index.js";
import { FakeConnection, handshakeRequest, openConnection } from "./helpers/fake-engine.js";

const SECRET = "shortcut secret";
const servers: Server[] = [];
afterEach(() => {
  for (const io of servers.splice(0)) io.close();
});

async function setup() {
  const store = new session.MemoryStore();
  const middleware = session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } });
  let runs = 0;
  const counted: typeof middleware = (req, res, next) => {
    runs++;
    return middleware(req, res, next);
  };
  const passport = new Passport();
  passport.deserializeUser((id: string, done) => done(null, { id }));
  const io = new Server(createServer());
  servers.push(io);
  const auth = bridge(io, { session: counted, passport });
  const sid = randomBytes(18).toString("base64url");
  const record = { cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000).toISOString(), httpOnly: true, path: "/" }, passport: { user: "alice" } };
  await new Promise<void>((resolve) => store.set(sid, record as never, () => resolve()));
  const signed = `s:${sign(sid, SECRET)}`;
  const handshake = async (cookie: string) => {
    const conn = new FakeConnection(handshakeRequest({ host: "localhost:3000", origin: "http://localhost:3000", cookie }));
    const ok = await new Promise<boolean>((resolve) => {
      conn.answered = resolve;
      openConnection(io, conn);
    });
    return { ok, conn, refusal: conn.refusal?.data };
  };
  /** Two handshakes with the real cookie: the second verifies it for the live session; the next ones may skip. */
  const live = async () => {
    for (let i = 0; i < 2; i++) expect((await handshake(`connect.sid=${encodeURIComponent(signed)}`)).ok).toBe(true);
    const before = runs;
    expect((await handshake(`connect.sid=${encodeURIComponent(signed)}`)).ok).toBe(true);
    expect(runs - before, "the shortcut is taken").toBe(0);
  };
  return { io, auth, store, sid, signed, handshake, live, runs: () => runs };
}

describe("the handshake shortcut answers what express-session would", () => {
  it("refuses a cookie with the live session's id and another signature (bad_signature), in constant time", async () => {
    const s = await setup();
    await s.live();
    const forged = `${s.signed.slice(0, -4)}${s.signed.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
    const { ok, refusal } = await s.handshake(`connect.sid=${encodeURIComponent(forged)}`);
    expect(ok).toBe(false);
    expect(refusal?.reason).toBe("bad_signature");
    // Signed with another secret: the same answer.
    const other = await s.handshake(`connect.sid=${encodeURIComponent(`s:${sign(s.sid, "another secret")}`)}`);
    expect(other.refusal?.reason).toBe("bad_signature");
  });

  it("reads the first cookie of the session's name, as express-session does", async () => {
    const s = await setup();
    await s.live();
    // A forged cookie first, the real one second: express-session reads the first, which fails.
    const forged = `s:${s.sid}.${"x".repeat(43)}`;
    const { ok, refusal } = await s.handshake(`connect.sid=${encodeURIComponent(forged)}; connect.sid=${encodeURIComponent(s.signed)}`);
    expect(ok).toBe(false);
    expect(refusal?.reason).toBe("bad_signature");
    // Another cookie's name carrying the real value changes nothing either: no session cookie, no session.
    const renamed = await s.handshake(`other.sid=${encodeURIComponent(s.signed)}`);
    expect(renamed.ok).toBe(false);
  });

  it("takes no shortcut where parsers differ: bytes outside printable ASCII, or the cookie's name twice", async () => {
    const s = await setup();
    await s.live();
    // express-session's parser keeps U+00A0 (only spaces and tabs are stripped): the signature fails for it.
    const nbsp = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}\u00a0`);
    expect(nbsp.ok).toBe(false);
    expect(nbsp.refusal?.reason).toBe("bad_signature");
    // A name express-session reads as another cookie must not get an unchecked value recorded as verified.
    const forged = `s:${s.sid}.${"y".repeat(43)}`;
    const mixed = await s.handshake(`connect.sid\u00a0=${encodeURIComponent(forged)}; connect.sid=${encodeURIComponent(s.signed)}`);
    expect(mixed.ok).toBe(true);
    const alone = await s.handshake(`connect.sid=${encodeURIComponent(forged)}`);
    expect(alone.ok).toBe(false);
    expect(alone.refusal?.reason).toBe("bad_signature");
  });

  it("falls back to express-session when the store cannot make a session from the copy", async () => {
    const s = await setup();
    await s.live();
    const createSession = s.store.createSession.bind(s.store);
    let failures = 1;
    s.store.createSession = (req, record) => {
      if (failures-- > 0) throw new Error("a store that cannot load this record");
      return createSession(req, record);
    };
    const before = s.runs();
    const again = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`);
    expect(again.ok).toBe(true);
    expect(s.runs() - before, "express-session ran instead").toBe(1);
    expect((again.conn.request as unknown as { session: { passport: { user: string } } }).session.passport.user).toBe("alice");
  });

  it("refuses store_unavailable while the store reports `disconnect`, as express-session skips the request", async () => {
    const s = await setup();
    await s.live();
    s.store.emit("disconnect");
    const down = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`);
    expect(down.ok).toBe(false);
    expect(down.refusal?.code).toBe("store_unavailable");
    s.store.emit("connect");
    expect((await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`)).ok).toBe(true);
  });

  it("refuses the cookie once the session is destroyed (a logout), copy or not", async () => {
    const s = await setup();
    await s.live();
    await new Promise<void>((resolve) => s.store.destroy(s.sid, () => resolve()));
    const { ok, refusal } = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`);
    expect(ok).toBe(false);
    expect(refusal?.reason).toBe("unknown_session");
  });

  it("gives each handshake a Session of its own, with express-session's methods and the stored data", async () => {
    const s = await setup();
    await s.live();
    const a = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`);
    const b = await s.handshake(`connect.sid=${encodeURIComponent(s.signed)}`);
    const sessionOf = (conn: FakeConnection) => (conn.request as unknown as { session: session.Session & { passport: { user: string } } }).session;
    const [first, second] = [sessionOf(a.conn), sessionOf(b.conn)];
    expect(first).not.toBe(second);
    expect(first.passport.user).toBe("alice");
    expect(first.id).toBe(s.sid);
    expect(typeof first.save).toBe("function");
    expect(first.cookie.expires).toBeInstanceOf(Date);
    expect((a.conn.request as unknown as { sessionStore: unknown }).sessionStore).toBe(s.store);
  });
});
