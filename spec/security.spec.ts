/**
 * Hostile input: cross-site WebSocket hijacking (the Origin check), CSRF tokens, credentials smuggled outside
 * the signed cookie, secret rotation, the failed-handshake limit, and code that fails asynchronously.
 */
import signature from "cookie-signature";
import { MemoryStore, type SessionData } from "express-session";
import { Redis } from "ioredis";
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Store } from "express-session";
import { Manager } from "socket.io-client";
import { describe, expect, it, vi } from "vitest";
import { inject } from "vitest";
import { memoryFailureLimiter, redisFailureLimiter, RefusalError, type FailureLimiter } from "../lib/index.js";
import { Security } from "../lib/security.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { harnessPerTest, nextEvent, SECRET, sessionIdOf, TRANSPORTS, USERS, type Harness, type WhoAmI } from "./helpers/harness.js";
import { monitorPerTest } from "./helpers/monitor.js";

const start = harnessPerTest();
const monitorStore = monitorPerTest();

// Nothing here may leak a rejection or an exception out of the library.
failOnLeaks();

const code = async (h: Harness, options: Parameters<Harness["refusal"]>[0]) => (await h.refusal(options)).data.code;

describe("the Origin check (cross-site WebSocket hijacking)", () => {
  const port = (h: Harness) => new URL(h.url).port;
  const hostile = (h: Harness) => [
    "https://evil.example",
    "null",
    `http://evil.127.0.0.1:${port(h)}`,
    `http://127.0.0.1:${port(h)}.evil.example`,
    `https://127.0.0.1:${port(h)}`,
    `ws://127.0.0.1:${port(h)}`,
    `http://127.0.0.1:${Number(port(h)) + 1}`,
    `http://localhost:${port(h)}`,
    `http://127.0.0.1:${port(h)}/`,
    `HTTP://127.0.0.1:${port(h)}`,
    "",
  ];

  it.each(TRANSPORTS)("refuses cross-site, null, look-alike and other-scheme origins over %s, reading nothing", async (transport) => {
    const h = await start();
    const cookie = await h.login("alice");
    const m = await monitorStore(h.prefix);
    for (const origin of hostile(h)) {
      const refused = await h.refusal({ cookie, transport, headers: { origin } });
      expect([origin, refused.data]).toEqual([origin, { code: "origin_not_allowed", reconnect: false }]);
    }
    // Decided before the store: a valid session cookie was never even read.
    expect(await m.take()).toEqual([]);
  });

  it.each(TRANSPORTS)("admits the same origin, and requests without Origin (non-browser clients), over %s", async (transport) => {
    const h = await start();
    const cookie = await h.login("alice");
    for (const headers of [{ origin: h.url }, {}] as Array<Record<string, string>>) {
      const socket = await h.connect({ cookie, transport, headers });
      expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Alice" });
    }
  });

  it("admits listed origins exactly, and nothing that merely resembles them", async () => {
    const h = await start({ bridge: { origins: ["https://app.example", "http://localhost:5173/"] } });
    const cookie = await h.login("alice");
    for (const origin of ["https://app.example", "http://localhost:5173", h.url]) await h.connect({ cookie, headers: { origin } });
    for (const origin of ["https://app.example.evil.example", "https://evil.app.example", "http://app.example", "https://app.example:8443", "null"]) {
      expect([origin, await code(h, { cookie, headers: { origin } })]).toEqual([origin, "origin_not_allowed"]);
    }
  });

  it("lets a function decide, with the request", async () => {
    const seen: string[] = [];
    const h = await start({
      bridge: {
        origins: async (origin, req) => {
          seen.push(`${origin} ${req.headers["x-tenant"]}`);
          return origin.endsWith(".tenant.example");
        },
      },
    });
    const cookie = await h.login("alice");
    await h.connect({ cookie, headers: { origin: "https://a.tenant.example", "x-tenant": "a" } });
    expect(await code(h, { cookie, headers: { origin: "https://tenant.example.evil", "x-tenant": "b" } })).toBe("origin_not_allowed");
    expect(seen).toEqual(["https://a.tenant.example a", "https://tenant.example.evil b"]);
  });

  it("refuses when the origins function does not answer within storeTimeoutMs", async () => {
    const h = await start({ bridge: { storeTimeoutMs: 200, origins: () => new Promise<boolean>(() => undefined) } });
    expect(await code(h, { cookie: await h.login("alice"), headers: { origin: "https://app.example" } })).toBe("origin_not_allowed");
  });

  it("understands IPv6 hosts, and never takes a bogus forwarded scheme for the page's own origin", async () => {
    const h = await start({ bridge: { trustProxy: true } });
    const cookie = await h.login("alice");
    const port = new URL(h.url).port;
    await h.connect({ cookie, headers: { host: `[::1]:${port}`, origin: `http://[::1]:${port}` } });
    expect(await code(h, { cookie, headers: { host: `[::1]:${port}`, origin: `http://[::2]:${port}` } })).toBe("origin_not_allowed");
    expect(await code(h, { cookie, headers: { origin: "null", "x-forwarded-proto": "foo" } })).toBe("origin_not_allowed");
  });

  it("requireOrigin refuses clients that send none; origins: false turns the check off", async () => {
    const strict = await start({ bridge: { requireOrigin: true } });
    expect(await code(strict, { cookie: await strict.login("alice") })).toBe("origin_not_allowed");
    const open = await start({ bridge: { origins: false } });
    await open.connect({ cookie: await open.login("alice"), headers: { origin: "https://evil.example" } });
  });

  it("believes the proxy's X-Forwarded-Proto and X-Forwarded-Host only with trustProxy", async () => {
    const proxied = { origin: "https://app.example", "x-forwarded-proto": "https", "x-forwarded-host": "app.example" };
    const plain = await start();
    expect(await code(plain, { cookie: await plain.login("alice"), headers: proxied })).toBe("origin_not_allowed");
    const trusting = await start({ bridge: { trustProxy: true } });
    await trusting.connect({ cookie: await trusting.login("alice"), headers: proxied });
  });
});

describe("CSRF tokens (csrf: true)", () => {
  it("admits the session's own token and refuses a missing, wrong or foreign one", async () => {
    const h = await start({ bridge: { csrf: true } });
    const token = async (cookie: string) => ((await (await h.request("/csrf", { cookie })).json()) as { token: string }).token;
    const alice = await h.login("alice");
    const bob = await h.login("bob");
    const aliceToken = await token(alice);
    expect(await token(alice)).toBe(aliceToken);

    const socket = await h.connect({ cookie: alice, auth: { csrf: aliceToken } });
    expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Alice" });
    for (const auth of [undefined, { csrf: "" }, { csrf: `${aliceToken}x` }, { csrf: await token(bob) }, { csrf: 42 }]) {
      expect(await code(h, { cookie: alice, ...(auth ? { auth } : {}) })).toBe("csrf_mismatch");
    }
    // A new login is a new session, with a new token.
    const again = await h.login("alice");
    expect(await code(h, { cookie: again, auth: { csrf: aliceToken } })).toBe("csrf_mismatch");
    await h.connect({ cookie: again, auth: { csrf: await token(again) } });
  });
});

describe("credentials come only from the signed cookie", () => {
  it("never authenticates with a session id in the query, in auth, or unsigned", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const sid = sessionIdOf(cookie);
    const signed = decodeURIComponent(cookie.split("=")[1]!);
    const attempts = [
      { query: { session_id: sid } },
      // (`sid` itself is Engine.IO's own parameter: it refuses an unknown one before any namespace.)
      { query: { sessionID: sid, "connect.sid": sid } },
      { query: { "connect.sid": signed } },
      { auth: { session_id: sid, sessionId: sid, sid, token: sid } },
      { auth: { cookie, "connect.sid": signed } },
      { cookie: `connect.sid=${sid}` },
      { headers: { authorization: `Bearer ${sid}` } },
    ];
    for (const attempt of attempts) {
      const refused = await h.refusal(attempt as Parameters<Harness["refusal"]>[0]);
      expect([attempt, refused.message, refused.data?.code]).toEqual([attempt, expect.any(String), "session_missing"]);
    }
  });
});

describe("secret rotation", () => {
  it("accepts cookies signed with any secret of the array, as express-session does over HTTP", async () => {
    const before = await start({ session: { secret: "old secret" } });
    const oldCookie = await before.login("alice");
    const rotated = await start({ prefix: before.prefix, session: { secret: ["new secret", "old secret"] } });
    await rotated.connect({ cookie: oldCookie });
    await rotated.connect({ cookie: await rotated.login("bob") });
    const retired = await start({ prefix: before.prefix, session: { secret: ["newer secret"] } });
    expect(await code(retired, { cookie: oldCookie })).toBe("session_missing");
  });
});

describe("the failed-handshake limit (failureLimit)", () => {
  it("refuses an address that failed too often, without reading the store", async () => {
    const h = await start({ bridge: { failureLimit: 3 } });
    const cookie = await h.login("alice");
    for (let i = 0; i < 3; i++) expect(await code(h, {})).toBe("session_missing");
    const m = await monitorStore(h.prefix);
    const refused = await h.refusal({ cookie });
    expect(refused.data).toEqual({ code: "too_many_attempts", reconnect: true, retryAfterMs: expect.any(Number) });
    expect(await m.take()).toEqual([]);
  });

  it("counts per client address: with trustProxy, the X-Forwarded-For entry the proxy added, not the client's", async () => {
    const h = await start({ bridge: { failureLimit: 2, trustProxy: true } });
    const cookie = await h.login("alice");
    // The proxy appends the address it saw; anything to its left came from the client.
    const via = (client: string, forged = "") => ({ "x-forwarded-for": forged ? `${forged}, ${client}` : client });
    await code(h, { headers: via("203.0.113.7", "1.1.1.1") });
    await code(h, { headers: via("203.0.113.7", "2.2.2.2") });
    // Rotating the forged part does not escape the limit...
    expect(await code(h, { cookie, headers: via("203.0.113.7", "3.3.3.3") })).toBe("too_many_attempts");
    // ...and naming a victim in it does not lock the victim out.
    await code(h, { headers: via("203.0.113.9", "198.51.100.2") });
    await code(h, { headers: via("203.0.113.9", "198.51.100.2") });
    await h.connect({ cookie, headers: via("198.51.100.2") });
  });

  it("with trustProxy: n, counts the address n proxies from the right", async () => {
    const h = await start({ bridge: { failureLimit: 1, trustProxy: 2 } });
    const cookie = await h.login("alice");
    await code(h, { headers: { "x-forwarded-for": "9.9.9.9, 203.0.113.7, 10.0.0.2" } });
    expect(await code(h, { cookie, headers: { "x-forwarded-for": "8.8.8.8, 203.0.113.7, 10.0.0.2" } })).toBe("too_many_attempts");
    await h.connect({ cookie, headers: { "x-forwarded-for": "203.0.113.7, 198.51.100.2, 10.0.0.2" } });
  });

  it("does not count refused origins, so another site cannot lock its visitors out", async () => {
    const h = await start({ bridge: { failureLimit: 2 } });
    const cookie = await h.login("alice");
    for (let i = 0; i < 5; i++) await code(h, { cookie, headers: { origin: "https://evil.example" } });
    await h.connect({ cookie, headers: { origin: h.url } });
  });

  it("holds handshakes beyond the limit while others are under way, so a parallel burst cannot outrun it", async () => {
    let reads = 0;
    const store = new (class extends MemoryStore {
      override get(sid: string, cb: (err: unknown, session?: SessionData | null) => void) {
        reads++;
        setTimeout(() => super.get(sid, cb), 300);
      }
    })();
    const h = await start({ store, bridge: { failureLimit: 2 } });
    const forged = `connect.sid=${encodeURIComponent(`s:${signature.sign("nobody", SECRET)}`)}`;
    const codes = await Promise.all(Array.from({ length: 10 }, () => code(h, { cookie: forged })));
    expect(codes.filter((c) => c === "too_many_attempts")).toHaveLength(8);
    // Two were let through; being for one session, they even shared their store read.
    expect(reads).toBeLessThanOrEqual(2);
  });

  it("lets handshakes through when the limiter does not answer, within storeTimeoutMs", async () => {
    const h = await start({
      bridge: { failureLimit: { perMinute: 1, limiter: { failures: () => new Promise<number>(() => undefined), fail: () => undefined } }, storeTimeoutMs: 200 },
    });
    await h.connect({ cookie: await h.login("alice") });
  });

  it("can be shared by every node through Redis", async () => {
    const client = new Redis(inject("redisUrl"));
    try {
      const prefix = `psb:failures:${Date.now()}:`;
      const failureLimit = { perMinute: 2, limiter: redisFailureLimiter(client, { prefix }) };
      const a = await start({ bridge: { failureLimit } });
      const b = await start({ prefix: a.prefix, bridge: { failureLimit } });
      await code(a, {});
      await code(a, {});
      // Node A counts a failure in Redis after it has refused the socket: wait until both counts landed there.
      await expect.poll(async () => Number((await client.get((await client.keys(`${prefix}*`))[0] ?? "none")) ?? 0)).toBe(2);
      expect(await code(b, { cookie: await b.login("alice") })).toBe("too_many_attempts");
    } finally {
      client.disconnect();
    }
  });
});

/** Reads of `store` answer `ms` late (a slow store), on the real store underneath. */
function slowReads(store: Store, ms: number): { reads: number } {
  const counter = { reads: 0 };
  const get = store.get.bind(store);
  store.get = (sid, callback) => {
    counter.reads++;
    setTimeout(() => get(sid, callback), ms);
  };
  return counter;
}

/** A cookie that names a session nobody has, validly signed: a guess. */
const guess = (i: number) => `connect.sid=${encodeURIComponent(`s:${signature.sign(`guess-${i}`, SECRET)}`)}`;

describe("the failure limit counts failures only (issue 20)", () => {
  it("admits one user's 6 namespaces over one connection with a limit of 5", async () => {
    const h = await start({ bridge: { failureLimit: 5 } });
    slowReads(h.store, 20);
    const names = ["/", "/a", "/b", "/c", "/d", "/e"];
    for (const name of names) h.io.of(name);
    const manager = new Manager(h.url, { transports: ["websocket"], reconnection: false, extraHeaders: { cookie: await h.login("alice") } });
    try {
      const sockets = names.map((name) => manager.socket(name).connect());
      // Each socket's outcome: connected, or the code it was refused with.
      const outcomes = sockets.map(
        (socket) =>
          new Promise<string>((resolve) => {
            socket.once("connect", () => resolve("connected"));
            socket.once("connect_error", (err: Error & { data?: { code?: string } }) => resolve(err.data?.code ?? err.message));
          }),
      );
      expect(await Promise.all(outcomes)).toEqual(Array(6).fill("connected"));
      expect(sockets.every((socket) => socket.connected)).toBe(true);
    } finally {
      manager.engine?.close();
    }
  });

  it("admits 20 logged-in users behind one address reconnecting at once, with a 20 ms store", async () => {
    const h = await start({ bridge: { failureLimit: 5 } });
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => h.login(USERS[i % USERS.length]!.username)));
    const store = slowReads(h.store, 20);
    const outcomes = await Promise.allSettled(cookies.map((cookie) => h.connect({ cookie, reconnection: false })));
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([]);
    expect(store.reads).toBe(20);
  });

  it.each(["memory", "redis"] as const)(
    "lets no more than the limit of 20 parallel guesses reach the store and be counted (%s limiter)",
    async (kind) => {
      const client = new Redis(inject("redisUrl"));
      try {
        const shared = kind === "redis" ? redisFailureLimiter(client, { prefix: `psb:failures:${randomUUID()}:` }) : memoryFailureLimiter();
        let counted = 0;
        const failureLimiter: FailureLimiter = {
          failures: (key) => shared.failures(key),
          fail: (key) => (counted++, shared.fail(key)),
          retryAfterMs: (key) => shared.retryAfterMs!(key),
        };
        const h = await start({ bridge: { failureLimit: { perMinute: 5, limiter: failureLimiter } } });
        const store = slowReads(h.store, 20);
        const refusals = await Promise.all(Array.from({ length: 20 }, (_, i) => h.refusal({ cookie: guess(i), reconnection: false })));
        const codes = refusals.map((r) => r.data.code);
        expect(codes.filter((c) => c === "session_missing")).toHaveLength(5);
        expect(codes.filter((c) => c === "too_many_attempts")).toHaveLength(15);
        expect(store.reads).toBe(5);
        expect(counted).toBe(5);
        // Each refusal past the limit says when the window lets the address try again (at most a minute).
        for (const refusal of refusals.filter((r) => r.data.code === "too_many_attempts")) {
          expect(refusal.data).toEqual({ code: "too_many_attempts", reconnect: true, retryAfterMs: expect.any(Number) });
          expect(refusal.data.retryAfterMs).toBeGreaterThan(55_000);
          expect(refusal.data.retryAfterMs).toBeLessThanOrEqual(60_000);
        }
      } finally {
        client.disconnect();
      }
    },
  );

  it("too_many_attempts may be retried: after retryAfterMs the address is admitted again", async () => {
    const h = await start({ bridge: { failureLimit: 2 } });
    const cookie = await h.login("alice");
    await code(h, { cookie: guess(1) });
    await code(h, { cookie: guess(2) });
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const refused = await h.refusal({ cookie });
      expect(refused.data).toEqual({ code: "too_many_attempts", reconnect: true, retryAfterMs: expect.any(Number) });
      expect(refused.message).toMatch(/retryAfterMs/);
      vi.setSystemTime(Date.now() + (refused.data.retryAfterMs as number) - 1_000);
      expect(await code(h, { cookie })).toBe("too_many_attempts");
      vi.setSystemTime(Date.now() + 1_000);
      await h.connect({ cookie });
    } finally {
      vi.useRealTimers();
    }
  });

  it("a successful attempt never counts: 10 connections in a row with a limit of 1", async () => {
    const h = await start({ bridge: { failureLimit: 1 } });
    const cookie = await h.login("alice");
    for (let i = 0; i < 10; i++) (await h.connect({ cookie, reconnection: false })).disconnect();
    expect(await code(h, { cookie: guess(1) })).toBe("session_missing");
    expect(await code(h, { cookie })).toBe("too_many_attempts");
  });
});

describe("Security.take (the failure limit), on its own", () => {
  const request = (address: string) => ({ headers: {}, socket: { remoteAddress: address } }) as unknown as IncomingMessage;
  const security = (perMinute: number, timeoutMs = 1_000) =>
    new Security({ origins: false, requireOrigin: false, trustProxy: false, csrf: false, failureLimit: { perMinute, limiter: memoryFailureLimiter() }, timeoutMs });
  const settled = async (promise: Promise<unknown>) => {
    let done = false;
    void promise.then(() => (done = true), () => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    return done;
  };

  it("holds an attempt past the room left until an earlier one is decided, and counts none of them", async () => {
    const s = security(2);
    const first = await s.take(request("192.0.2.1"));
    await s.take(request("192.0.2.1"));
    const third = s.take(request("192.0.2.1"));
    expect(await settled(third)).toBe(false);
    // Another address is not held by this one.
    await s.take(request("192.0.2.2"));
    first();
    expect(await settled(third)).toBe(true);
  });

  it("refuses an attempt that waited the deadline for its turn, with retryAfterMs, and forgets the address after", async () => {
    const s = security(1, 50);
    const first = await s.take(request("192.0.2.1"));
    await expect(s.take(request("192.0.2.1"))).rejects.toMatchObject({ code: "too_many_attempts", data: { reconnect: true, retryAfterMs: 50 } });
    first();
    (await s.take(request("192.0.2.1")))();
    expect((s as unknown as { limit: { turns: Map<string, unknown> } }).limit.turns.size).toBe(0);
  });

  it("a failure reported while an attempt waits counts for it: one failure with a limit of 1 refuses the waiting one", async () => {
    const s = security(1);
    const req = request("192.0.2.1");
    const first = await s.take(req);
    const second = s.take(req);
    first();
    s.refused(req, new RefusalError("unauthenticated"));
    await expect(second).rejects.toMatchObject({ code: "too_many_attempts" });
  });
});

describe("faults stay contained", () => {
  it("an async deserializer that rejects → deserialize_failed, and no unhandled rejection, over HTTP too", async () => {
    const h = await start({
      replaceDeserializer: true,
      passport: (passport) =>
        passport.deserializeUser(async () => {
          throw new Error("async bug");
        }),
    });
    // Over HTTP first, before any handshake: an error for Express, not a crash.
    expect((await h.request("/me", { cookie: await h.login("bob") })).status).toBe(500);
    const refused = await h.refusal({ cookie: await h.login("alice") });
    expect(refused.data).toEqual({ code: "deserialize_failed", reconnect: true });
  });

  it("a store whose async get rejects → store_unavailable, and no unhandled rejection", async () => {
    const store = new (class extends MemoryStore {
      broken = false;
      // An async method that throws instead of calling back, as hand-written stores sometimes do.
      override get = (async (sid: string, cb: (err: unknown, session?: SessionData | null) => void) => {
        if (this.broken) throw new Error("async store bug");
        MemoryStore.prototype.get.call(this, sid, cb);
      }) as unknown as MemoryStore["get"];
    })();
    const h = await start({ store });
    const cookie = await h.login("alice");
    store.broken = true;
    expect((await h.refusal({ cookie })).data).toEqual({ code: "store_unavailable", reconnect: true });
  });

  it("an async hook or origins function that rejects is a refusal, not a crash", async () => {
    const h = await start({
      bridge: {
        origins: async () => {
          throw new Error("origins bug");
        },
        onReject: async () => {
          throw new Error("onReject bug");
        },
      },
    });
    const refused = await h.refusal({ cookie: await h.login("alice"), headers: { origin: "https://elsewhere.example" } });
    expect(refused).toMatchObject({ message: "onReject bug", data: { code: "rejected" } });
  });
});
