import { setTimeout as sleep } from "node:timers/promises";
import signature from "cookie-signature";
import { MemoryStore, type SessionData } from "express-session";
import { describe, expect, it } from "vitest";
import { REFUSALS, RefusalError, SESSION_MISSING_REASONS, type RefusalCode, type SessionMissingReason } from "../lib/index.js";
import {
  SECRET,
  TRANSPORTS,
  nextEvent,
  harnessPerTest,
  sessionIdOf,
  type Harness,
  type Refusal,
  type WhoAmI,
} from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { captureWarnings } from "./helpers/warnings.js";

const start = harnessPerTest();

// Nothing here may leak a rejection or an exception out of the library.
failOnLeaks();

/** The refusal `code`, with its sentence; `session_missing` also says why (`reason`, default no_cookie). */
function expectRefusal(refusal: Refusal, code: RefusalCode, reason: SessionMissingReason = "no_cookie") {
  if (code === "session_missing") {
    expect(refusal.data).toEqual({ code, reconnect: false, reason });
    expect(refusal.message).toBe(SESSION_MISSING_REASONS[reason]);
  } else {
    expect(refusal.data).toEqual({ code, reconnect: REFUSALS[code].reconnect });
    expect(refusal.message).toBe(REFUSALS[code].message);
  }
  // An io.use-level refusal: the client stops; it does not retry on its own.
  expect(refusal.socket.active).toBe(false);
}

const sign = (sid: string, secret = SECRET) => `connect.sid=${encodeURIComponent(`s:${signature.sign(sid, secret)}`)}`;

type CookieCase = [name: string, code: RefusalCode, cookie: (h: Harness) => Promise<string | undefined>, reason?: SessionMissingReason];
const COOKIE_CASES: CookieCase[] = [
  ["no cookie", "session_missing", async () => undefined, "no_cookie"],
  ["cookies, but not the session's", "session_missing", async () => "theme=dark; lang=en", "no_cookie"],
  ["a malformed Cookie header", "session_missing", async () => ';;; =; connect.sid; ="; connect.sid=s%3A; a=%E0%A4%A; b=\u00e9\u00ff; connect.sid=s%3A.', "bad_signature"],
  ["the session id unsigned", "session_missing", async (h) => `connect.sid=${sessionIdOf(await h.login("alice"))}`, "no_cookie"],
  ["a forged signature", "session_missing", async (h) => `connect.sid=s%3A${sessionIdOf(await h.login("alice"))}.AAAAAAAAAAAA`, "bad_signature"],
  ["a signature made with another secret", "session_missing", async (h) => sign(sessionIdOf(await h.login("alice")), "another secret"), "bad_signature"],
  ["a signed id the store does not know", "session_missing", async () => sign("0123456789abcdefghijklmnopqrstuv"), "unknown_session"],
  [
    "a destroyed session",
    "session_missing",
    async (h) => {
      const cookie = await h.login("alice");
      await h.request("/destroy", { method: "POST", cookie });
      return cookie;
    },
    "unknown_session",
  ],
  [
    "a session where nobody is logged in",
    "unauthenticated",
    async (h) => {
      const res = await h.request("/visit", { method: "POST" });
      return res.headers.getSetCookie()[0]!.split(";")[0];
    },
  ],
  [
    "a session whose user was removed",
    "user_not_found",
    async (h) => {
      const cookie = await h.login("alice");
      h.users.delete("1");
      return cookie;
    },
  ],
];

describe.each(TRANSPORTS)("refusals over %s", (transport) => {
  it.each(COOKIE_CASES)("%s → %s", async (_name, code, makeCookie, reason) => {
    const harness = await start();
    const cookie = await makeCookie(harness);
    expectRefusal(await harness.refusal({ cookie, transport }), code, reason);
  });
});

describe("expiry", () => {
  it.each(["redis", "memory"] as const)("an expired session (%s store) → session_missing", async (store) => {
    const { login, refusal, connect } = await start({ store, session: { cookie: { maxAge: 1000 } } });
    const cookie = await login("alice");
    await connect({ cookie });
    await sleep(1300);
    expectRefusal(await refusal({ cookie }), "session_missing", "unknown_session");
  });
});

/** A MemoryStore whose `get` misbehaves as told. */
class FaultyStore extends MemoryStore {
  fault: "error" | "throw" | "hang" | "none" = "none";
  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    if (this.fault === "error") return void setImmediate(() => callback(new Error("connection refused")));
    if (this.fault === "throw") throw new Error("store exploded");
    if (this.fault === "hang") return;
    super.get(sid, callback);
  }
}

describe("faults", () => {
  it.each(["error", "throw", "hang"] as const)("a store read that fails (%s) → store_unavailable, reconnect: true", async (fault) => {
    const store = new FaultyStore();
    const { login, refusal } = await start({ store, bridge: { storeTimeoutMs: 300 } });
    const cookie = await login("alice");
    store.fault = fault;
    const started = Date.now();
    expectRefusal(await refusal({ cookie }), "store_unavailable");
    if (fault === "hang") expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("a read that never answers holds no later handshake of its session past the deadline", async () => {
    const store = new FaultyStore();
    const { login, refusal, connect } = await start({ store, bridge: { storeTimeoutMs: 300 } });
    const cookie = await login("alice");
    store.fault = "hang";
    expectRefusal(await refusal({ cookie }), "store_unavailable");
    store.fault = "none";
    expect(((await connect({ cookie })).connected)).toBe(true);
  });

  it("a failure a retry could fix is not remembered: the next namespace on the same connection reads again", async () => {
    const store = new FaultyStore();
    const { login, client, io } = await start({
      store,
      bridge: { storeTimeoutMs: 300, allowAnonymous: (_socket, error) => error.code === "store_unavailable" },
    });
    io.of("/other");
    const cookie = await login("alice");
    store.fault = "error";
    // Admitted as anonymous during the outage; its connection stays open.
    const main = client({ cookie });
    await nextEvent(main, "connect");
    expect(((await main.emitWithAck("whoami")) as WhoAmI).user).toBeNull();
    store.fault = "none";
    const other = main.io.socket("/other");
    await nextEvent(other, "connect");
    expect(io.of("/other").sockets.get(other.id!)?.request.user).toMatchObject({ name: "Alice" });
  });

  it("a store that reports `disconnect` → store_unavailable", async () => {
    const store = new FaultyStore();
    const { login, refusal, connect } = await start({ store });
    const cookie = await login("alice");
    store.emit("disconnect");
    expectRefusal(await refusal({ cookie }), "store_unavailable");
    store.emit("connect");
    await connect({ cookie });
  });

  const deserializers = {
    "calls back with an error": (_id: string, done: (err: unknown) => void) => setImmediate(() => done(new Error("db down"))),
    throws: () => {
      throw new Error("bug in deserializeUser");
    },
    "never answers": () => undefined,
  };
  it.each(Object.keys(deserializers) as Array<keyof typeof deserializers>)(
    "a deserializer that %s → deserialize_failed, reconnect: true",
    async (kind) => {
      const { login, refusal } = await start({
        replaceDeserializer: true,
        bridge: { storeTimeoutMs: 300 },
        passport: (passport) => passport.deserializeUser(deserializers[kind] as never),
      });
      const cookie = await login("alice").catch(() => undefined);
      // Login itself does not deserialize; the session holds alice's id.
      expect(cookie).toBeTruthy();
      expectRefusal(await refusal({ cookie }), "deserialize_failed");
    },
  );
});

describe("a deserializer that answers after the deadline", () => {
  it("cannot put a user on a socket that was admitted as anonymous meanwhile", async () => {
    const { login, connect } = await start({
      replaceDeserializer: true,
      bridge: { storeTimeoutMs: 100, allowAnonymous: (_socket, error) => error.code === "deserialize_failed" },
      passport: (passport, users) =>
        passport.deserializeUser((id: string, done) => setTimeout(() => done(null, users.get(id)), 300)),
    });
    const socket = await connect({ cookie: await login("alice") });
    expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toBeNull();
    await sleep(400);
    expect(await socket.emitWithAck("whoami")).toMatchObject({ user: null, isAuthenticated: false, rooms: [] });
  });
});

describe("onAccept", () => {
  it("runs for every socket, with its namespace, while the store is read once per connection", async () => {
    const calls: Array<[string, string]> = [];
    let reads = 0;
    const { login, client, io } = await start({
      bridge: {
        onAccept: async (socket, user) => {
          calls.push([socket.nsp.name, user.name]);
          await sleep(10);
        },
      },
      replaceDeserializer: true,
      passport: (passport, users) =>
        passport.deserializeUser((id: string, done) => {
          reads++;
          done(null, users.get(id));
        }),
    });
    io.of("/other");
    const cookie = await login("alice");
    const main = client({ cookie });
    const other = main.io.socket("/other");
    await Promise.all([nextEvent(main, "connect"), nextEvent(other, "connect")]);
    expect(calls.sort()).toEqual([
      ["/", "Alice"],
      ["/other", "Alice"],
    ]);
    expect(reads).toBe(1);
  });

  it("can refuse one namespace of a connection and admit another", async () => {
    const { login, client, io } = await start({
      bridge: {
        onAccept: (socket, user) => {
          if (socket.nsp.name === "/admin" && user.role !== "admin") throw new Error("Admins only.");
        },
      },
    });
    io.of("/admin");
    const main = client({ cookie: await login("alice") });
    await nextEvent(main, "connect");
    const admin = main.io.socket("/admin");
    const refused = await nextEvent<Error & { data: unknown }>(admin, "connect_error");
    expect(refused.message).toBe("Admins only.");
    expect(main.connected).toBe(true);
  });

  it.each([
    ["an Error", () => new Error("You are banned."), "You are banned.", { code: "rejected", reconnect: false }],
    [
      "an Error with data",
      () => Object.assign(new Error("Come back tomorrow."), { data: { code: "banned", until: 42 } }),
      "Come back tomorrow.",
      { code: "banned", until: 42, reconnect: false },
    ],
    [
      "an Error with data that asks for retries",
      () => Object.assign(new Error("Busy."), { data: { reconnect: true } }),
      "Busy.",
      { code: "rejected", reconnect: true },
    ],
    ["a string", () => "nope", REFUSALS.rejected.message, { code: "rejected", reconnect: false }],
  ])("refuses when it throws %s, sending its message and data", async (_kind, make, message, data) => {
    for (const async of [false, true]) {
      const { login, refusal } = await start({
        bridge: {
          onAccept: async
            ? async () => {
                await sleep(1);
                throw make();
              }
            : () => {
                throw make();
              },
        },
      });
      const refused = await refusal({ cookie: await login("alice") });
      expect(refused.message).toBe(message);
      expect(refused.data).toEqual(data);
    }
  });

  it("sends a hook's data only as far as it survives JSON: circular or BigInt data cannot crash the process", async () => {
    const circular: Record<string, unknown> = { code: "banned" };
    circular.self = circular;
    for (const data of [circular, { code: "banned", big: 10n }]) {
      const { login, refusal } = await start({
        bridge: {
          onAccept: () => {
            throw Object.assign(new Error("Banned."), { data });
          },
        },
      });
      const refused = await refusal({ cookie: await login("alice") });
      expect(refused).toMatchObject({ message: "Banned.", data: { code: "rejected", reconnect: false } });
    }
  });

  it("is not called for anonymous sockets", async () => {
    let calls = 0;
    const { connect } = await start({ bridge: { allowAnonymous: true, onAccept: () => void calls++ } });
    await connect();
    expect(calls).toBe(0);
  });
});

describe("onReject", () => {
  const warnings = captureWarnings();

  it("runs for every refusal with the RefusalError about to be sent", async () => {
    const seen: Array<[string, boolean]> = [];
    const { login, refusal, users } = await start({
      bridge: { onReject: (_socket, error) => void seen.push([error.code, error instanceof RefusalError]) },
    });
    await refusal();
    const cookie = await login("bob");
    users.delete("2");
    await refusal({ cookie });
    expect(seen).toEqual([
      ["session_missing", true],
      ["user_not_found", true],
    ]);
  });

  it("returning true admits nothing: the socket is refused, with one PSB_ONREJECT_ADMITS warning naming allowAnonymous", async () => {
    const { refusal } = await start({ bridge: { onReject: async () => true } });
    expectRefusal(await refusal(), "session_missing");
    expectRefusal(await refusal(), "session_missing");
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([["PSB_ONREJECT_ADMITS", expect.stringMatching(/no longer admits.*`allowAnonymous: \(socket, error\) => boolean`/)]]);
  });

  it("replaces the error when it throws, and refuses unless it returns exactly true", async () => {
    const { refusal } = await start({
      bridge: {
        onReject: (_socket, error) => {
          if (error.code === "session_missing") throw Object.assign(new Error("Please log in at /login."), { data: { code: "login_required" } });
          return "yes";
        },
      },
    });
    const refused = await refusal();
    expect(refused.message).toBe("Please log in at /login.");
    expect(refused.data).toEqual({ code: "login_required", reconnect: false });
  });

  it("truthy but not true is still a refusal", async () => {
    const { refusal } = await start({ bridge: { onReject: () => "yes" } });
    expectRefusal(await refusal(), "session_missing");
  });
});

describe("allowAnonymous", () => {
  it("admits sockets with nobody logged in, with no user, no rooms and no identity in socket.data", async () => {
    const { connect, request, login, users } = await start({ bridge: { allowAnonymous: true } });
    const visit = (await request("/visit", { method: "POST" })).headers.getSetCookie()[0]!.split(";")[0]!;
    const removed = await login("bob");
    users.delete("2");
    for (const cookie of [undefined, visit, removed]) {
      const me = (await (await connect({ cookie })).emitWithAck("whoami")) as WhoAmI;
      expect(me).toMatchObject({ user: null, isAuthenticated: false, data: {}, rooms: [] });
    }
    const alice = (await (await connect({ cookie: await login("alice") })).emitWithAck("whoami")) as WhoAmI;
    expect(alice.user).toMatchObject({ name: "Alice" });
  });

  it("still refuses when the store fails: an outage never downgrades users to anonymous", async () => {
    const store = new FaultyStore();
    const { login, refusal } = await start({ store, bridge: { allowAnonymous: true, storeTimeoutMs: 200 } });
    const cookie = await login("alice");
    store.fault = "error";
    expectRefusal(await refusal({ cookie }), "store_unavailable");
  });

  it("as a function, decides each refusal: only exactly true admits, and onReject runs only for the refused", async () => {
    const asked: string[] = [];
    const rejected: string[] = [];
    const { connect, refusal, login } = await start({
      bridge: {
        allowAnonymous: (socket, error) => {
          asked.push(error.code);
          return (socket.handshake.auth as { guest?: unknown }).guest === true;
        },
        onReject: (_socket, error) => void rejected.push(error.code),
      },
    });
    const guest = (await (await connect({ auth: { guest: true } })).emitWithAck("whoami")) as WhoAmI;
    expect(guest).toMatchObject({ user: null, isAuthenticated: false, data: {}, rooms: [] });
    expectRefusal(await refusal({ auth: { guest: "yes" } }), "session_missing");
    expect((await (await connect({ cookie: await login("alice") })).emitWithAck("whoami")) as WhoAmI).toMatchObject({ user: { name: "Alice" } });
    expect(asked).toEqual(["session_missing", "session_missing"]);
    expect(rejected).toEqual(["session_missing"]);
  });

  it("as a function, may admit after onAccept refused a known user, and hides that user", async () => {
    const { login, connect } = await start({
      bridge: {
        onAccept: () => {
          throw new Error("not today");
        },
        allowAnonymous: (_socket, error) => error.code === "rejected",
      },
    });
    const socket = await connect({ cookie: await login("alice") });
    const me = (await socket.emitWithAck("whoami")) as WhoAmI;
    expect(me).toMatchObject({ user: null, isAuthenticated: false, data: {}, rooms: [] });
  });

  it("as a function that throws or rejects, admits nobody: the refusal goes out as it was", async () => {
    for (const allowAnonymous of [
      () => {
        throw new Error("bug");
      },
      async () => Promise.reject(new Error("bug")),
    ]) {
      const { refusal } = await start({ bridge: { allowAnonymous } });
      expectRefusal(await refusal(), "session_missing");
    }
  });

  it("as a function, is never asked past the failure limit", async () => {
    const asked: string[] = [];
    const { refusal } = await start({
      bridge: { failureLimit: 1, allowAnonymous: (_socket, error) => (asked.push(error.code), error.code === "too_many_attempts") },
    });
    expectRefusal(await refusal(), "session_missing");
    expect((await refusal()).data.code).toBe("too_many_attempts");
    expect(asked).toEqual(["session_missing"]);
  });
});
