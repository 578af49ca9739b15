/**
 * passport-socketio-bridge/client against the real server: refusals reported once and never retried unless a
 * retry can help (handshakes counted on the server), endings that stay ended, CSRF on every connect, JWTs
 * renewed before they expire without a reconnect, channels joined again after a server restart, presence,
 * and the bundle's size.
 */
import { spawn } from "node:child_process";
import { gzipSync } from "node:zlib";
import { setTimeout as sleep } from "node:timers/promises";
import { build } from "esbuild";
import jwt from "jsonwebtoken";
import { ExtractJwt, Strategy as JwtStrategy } from "passport-jwt";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it, vi, type TestContext } from "vitest";
import { ChannelError, withAuth, type EndedInfo, type PresenceMember, type RefusalInfo, type SocketAuth } from "../lib/client.js";
import { harnessesOf, harnessPerTest, nextEvent, type Harness, type HarnessOptions, type User } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { FlakyStore } from "./helpers/stores.js";
import type { Server } from "socket.io";

const start = harnessPerTest();
failOnLeaks();
const KEY = "a jwt signing key of 32 bytes or more!";

const sockets: ClientSocket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
});

/** A socket.io-client socket as an app creates it for the helper: not connected yet. */
function clientSocket(url: string, headers: Record<string, string> = {}, namespace = "/"): ClientSocket {
  const socket = ioClient(url + namespace, {
    autoConnect: false,
    forceNew: true,
    transports: ["websocket"],
    extraHeaders: headers,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  sockets.push(socket);
  return socket;
}

/** clientSocket for an it.concurrent test: disconnected when that test finishes (the afterEach above would end a neighbour's). */
function clientSocketOf(context: Pick<TestContext, "onTestFinished">, url: string): ClientSocket {
  const socket = clientSocket(url);
  sockets.splice(sockets.indexOf(socket), 1);
  context.onTestFinished(() => void socket.disconnect());
  return socket;
}

/** Counts each client's handshakes on the server (refused or admitted), by its `x-client` header. */
function countHandshakes(): { counts: Map<string, number>; options: HarnessOptions["bridge"] } {
  const counts = new Map<string, number>();
  const count = (socket: { handshake: { headers: Record<string, unknown> } }) => {
    const name = String(socket.handshake.headers["x-client"]);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  };
  return {
    counts,
    options: {
      onReject: (socket) => void count(socket),
      // (A refusal by onAccept is counted by onReject.)
      onAccept: (socket) => {
        if (socket.handshake.headers["x-client"] === "rejected") throw new Error("not today");
        count(socket);
      },
    },
  };
}

/** Counts the `auth:refresh` requests that reach the server, from any client. */
function countRefreshes(io: Server): { count: number } {
  const seen = { count: 0 };
  io.on("connection", (socket) =>
    socket.use(([event], next) => {
      if (event === "auth:refresh") seen.count++;
      next();
    }),
  );
  return seen;
}

/** The client bundle as the package ships it (minified ESM, socket.io-client left out). */
async function clientBundle(): Promise<Uint8Array> {
  const result = await build({
    entryPoints: ["lib/client.ts"],
    bundle: true,
    minify: true,
    format: "esm",
    external: ["socket.io-client"],
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.contents;
}

const withJwt: HarnessOptions["passport"] = (passport, users) => {
  passport.use(
    "jwt",
    new JwtStrategy(
      { secretOrKey: KEY, jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(), algorithms: ["HS256"] },
      (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) => done(null, users.get(payload.sub) ?? false),
    ),
  );
};

describe("refusals", () => {
  it("each code is reported once; reconnect: false stops every retry, too_many_attempts waits its retryAfterMs (none reach the server in the next second)", { timeout: 30_000 }, async () => {
    const { counts, options } = countHandshakes();
    const plain = await start({ bridge: options });
    const csrf = await start({ bridge: { ...options, csrf: true } });
    const limited = await start({ bridge: { ...options, failureLimit: 1 } });
    const tokens = await start({ bridge: { ...options, strategies: ["jwt"] }, passport: withJwt });
    const alice = await plain.login("alice");
    const visit = (await plain.request("/visit", { method: "POST" })).headers.getSetCookie()[0]!.split(";")[0]!;
    const bob = await plain.login("bob");
    plain.users.delete("2");
    // One failure spends the limit: the next attempt from this address is too_many_attempts.
    await limited.refusal({ reconnection: false });
    const cases: Array<[code: string, h: Harness, headers: Record<string, string>, token?: string]> = [
      ["session_missing", plain, {}],
      ["unauthenticated", plain, { cookie: visit }],
      ["user_not_found", plain, { cookie: bob }],
      ["rejected", plain, { cookie: alice }],
      ["origin_not_allowed", plain, { cookie: alice, origin: "https://evil.example" }],
      ["csrf_mismatch", csrf, { cookie: await csrf.login("alice") }],
      ["too_many_attempts", limited, {}],
      ["token_invalid", tokens, {}, "not a token"],
      ["token_expired", tokens, {}, jwt.sign({ sub: "1", exp: Math.floor(Date.now() / 1000) - 10 }, KEY)],
    ];
    const seen = new Map<string, RefusalInfo[]>();
    const auths = cases.map(([code, h, headers, token]) => {
      const auth = withAuth(clientSocket(h.url, { ...headers, "x-client": code }), {
        ...(token ? { token: () => token } : {}),
        retry: { minDelayMs: 50, maxDelayMs: 100 },
      });
      seen.set(code, []);
      auth.on("refused", (refusal) => seen.get(code)!.push(refusal));
      return auth.connect();
    });
    // Every refusal reported; then a second in which a retry (50-100 ms apart) would show many times over.
    await vi.waitFor(() => expect([...seen.values()].every((refusals) => refusals.length > 0)).toBe(true), { timeout: 10_000, interval: 50 });
    await sleep(1000);
    for (const [i, [code]] of cases.entries()) {
      if (code === "too_many_attempts") {
        // Retryable, but only after the window (about a minute): nothing more within this second.
        expect(seen.get(code)!.map((r) => [r.code, r.reconnect])).toEqual([[code, true]]);
        expect(seen.get(code)![0]!.retryAfterMs).toBeGreaterThan(5000);
        continue;
      }
      expect(seen.get(code)!.map((r) => [r.code, r.reconnect])).toEqual([[code, false]]);
      expect(auths[i]!.state).toBe("refused");
      expect(auths[i]!.socket.active).toBe(false);
      // (too_many_attempts is refused before any hook runs.)
      if (code !== "too_many_attempts" && code !== "origin_not_allowed") expect(counts.get(code)).toBe(1);
    }
    expect(seen.get("session_missing")![0]).toMatchObject({ reason: "no_cookie", message: expect.stringMatching(/withCredentials/) });
  });

  it("a refusal from another middleware (a plain Error, no code) is reported as rejected, and stops", async () => {
    const h = await start();
    h.io.use((_socket, next) => next(new Error("maintenance")));
    const auth = withAuth(clientSocket(h.url, { cookie: await h.login("alice") }));
    const refused = new Promise<RefusalInfo>((resolve) => auth.on("refused", resolve));
    auth.connect();
    expect(await refused).toEqual({ code: "rejected", message: "maintenance", reconnect: false });
    expect(auth.state).toBe("refused");
  });

  it("store_unavailable is retried with backoff, csrf and token fetched before each try, until it connects", async () => {
    const store = new FlakyStore();
    const h = await start({ store });
    const cookie = await h.login("alice");
    store.failing = true;
    let fetches = 0;
    const auth = withAuth(clientSocket(h.url, { cookie }), {
      csrf: () => String(++fetches),
      retry: { minDelayMs: 100, maxDelayMs: 200 },
    });
    const refusals: RefusalInfo[] = [];
    auth.on("refused", (r) => refusals.push(r));
    auth.connect();
    while (refusals.length < 3) await sleep(20);
    store.failing = false;
    await nextEvent(auth.socket, "connect");
    expect(auth.state).toBe("connected");
    expect(refusals.every((r) => r.code === "store_unavailable" && r.reconnect)).toBe(true);
    expect(fetches).toBeGreaterThanOrEqual(4);
  });
});

describe("endings", () => {
  it("ended after a logout, and no reconnect", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const auth = withAuth(clientSocket(h.url, { cookie })).connect();
    await nextEvent(auth.socket, "connect");
    const ended = new Promise<EndedInfo>((resolve) => auth.on("ended", resolve));
    await h.request("/logout", { method: "POST", cookie });
    expect(await ended).toEqual({ code: "logged_out" });
    // Reconnection would try within 100-200 ms (clientSocket's delays).
    await sleep(500);
    expect(auth.state).toBe("ended");
    expect(auth.socket.connected).toBe(false);
    expect(auth.socket.active).toBe(false);
    expect(h.io.engine.clientsCount).toBe(0);
  });
});

describe("credentials", () => {
  it("csrf: true end to end, the token fetched over HTTP before connecting", async () => {
    const h = await start({ bridge: { csrf: true } });
    const cookie = await h.login("alice");
    const auth = withAuth(clientSocket(h.url, { cookie }), {
      csrf: async () => ((await (await h.request("/csrf", { cookie })).json()) as { token: string }).token,
    }).connect();
    await nextEvent(auth.socket, "connect");
    expect(((await auth.socket.emitWithAck("whoami")) as { user: User }).user.name).toBe("Alice");
  });
});

describe("token renewal without a global atob (older React Native)", () => {
  it("still reads the token's expiry and renews it", { timeout: 10_000 }, async () => {
    const h = await start({ bridge: { strategies: ["jwt"] }, passport: withJwt });
    const saved = globalThis.atob;
    // @ts-expect-error: a runtime without atob
    delete globalThis.atob;
    try {
      let issued = 0;
      const auth = withAuth(clientSocket(h.url), {
        token: () => {
          issued++;
          return jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: 2 });
        },
      }).connect();
      await nextEvent(auth.socket, "connect");
      while (issued < 2) await sleep(50);
      expect(auth.state).toBe("connected");
    } finally {
      globalThis.atob = saved;
    }
  });
});

describe("channels", () => {
  const withChannels = (h: Harness, forbid = new Set<string>()) =>
    h.auth
      .channel("orders:{id}", (_user, { id }) => !forbid.has(`orders:${id}`))
      .channel("presence:room:{id}", (user) => (user ? { info: { name: user.name } } : false));

  it("joined again by themselves after a server restart; one now forbidden reports `refused`", { timeout: 20_000 }, async () => {
    const first = await start();
    withChannels(first);
    const cookie = await first.login("alice");
    const auth = withAuth(clientSocket(first.url, { cookie })).connect();
    await nextEvent(auth.socket, "connect");
    await auth.join("orders:1");
    await auth.join("orders:2");
    const refused = new Promise<ChannelError>((resolve) => auth.channel("orders:2").on("refused", resolve));
    const { port } = first.http.address() as { port: number };
    await first.close();

    const second = await start({ port, prefix: first.prefix });
    withChannels(second, new Set(["orders:2"]));
    await nextEvent(auth.socket, "connect", 10_000);
    const error = await refused;
    expect(error).toBeInstanceOf(ChannelError);
    expect([error.code, error.channel]).toEqual(["channel_forbidden", "orders:2"]);
    while ((await second.io.in("orders:1").fetchSockets()).length === 0) await sleep(20);
    expect((await second.io.in("orders:2").fetchSockets()).length).toBe(0);
  });

  it("presence: members on join, and join and leave events typed as members", async () => {
    const h = await start();
    withChannels(h);
    const connect = async (name: string): Promise<SocketAuth> => {
      const auth = withAuth(clientSocket(h.url, { cookie: await h.login(name) })).connect();
      await nextEvent(auth.socket, "connect");
      return auth;
    };
    const alice = await connect("alice");
    const bob = await connect("bob");
    expect(await alice.join("presence:room:7")).toEqual({ members: [{ userId: "1", info: { name: "Alice" } }] });
    const joined = new Promise<PresenceMember>((resolve) => alice.presence<{ name: string }>("presence:room:7").on("join", resolve));
    await bob.join("presence:room:7");
    expect(await joined).toEqual({ userId: "2", info: { name: "Bob" } });
    const left = new Promise<PresenceMember>((resolve) => alice.presence("presence:room:7").on("leave", resolve));
    await bob.leave("presence:room:7");
    expect(await left).toEqual({ userId: "2", info: { name: "Bob" } });
    await expect(alice.join("nothing:here")).rejects.toMatchObject({ name: "ChannelError", code: "channel_unknown" });
  });
});

describe("the bundle", () => {
  it("is under 3 KB minified and gzipped, without socket.io-client", async () => {
    const bytes = gzipSync(await clientBundle(), { level: 9 }).length;
    expect(bytes).toBeLessThan(3 * 1024);
    console.info(`client bundle: ${bytes} bytes minified and gzipped`);
  });
});

describe("token renewal that cannot run away", () => {
  it("a token that lives past setTimeout's limit (60 days) is not renewed at once, nor in a loop", async () => {
    const h = await start({ bridge: { strategies: ["jwt"] }, passport: withJwt });
    const refreshes = countRefreshes(h.io);
    const auth = withAuth(clientSocket(h.url), { token: () => jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: "60d" }) }).connect();
    await nextEvent(auth.socket, "connect");
    // An overflowed setTimeout fires after 1 ms, and again after each renewal.
    await sleep(500);
    expect(refreshes.count).toBe(0);
    expect(auth.state).toBe("connected");
  });

  it("...and is renewed at 80-90% of its life all the same, the delay waited in steps (fake timers)", async () => {
    const DAY = 24 * 3600_000;
    const h = await start({ bridge: { strategies: ["jwt"] }, passport: withJwt });
    const refreshes = countRefreshes(h.io);
    // The Engine.IO connection opened first keeps real timers (pings) on both ends: only withAuth's are fake.
    const socket = clientSocket(h.url);
    await new Promise<void>((resolve, reject) => socket.io.open((err) => (err ? reject(err) : resolve())));
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const auth = withAuth(socket, { token: () => jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: "60d" }) }).connect();
      await nextEvent(auth.socket, "connect");
      vi.advanceTimersByTime(47 * DAY);
      await sleep(100);
      expect(refreshes.count).toBe(0);
      // 80-90% of 60 days is day 48 to 54.
      vi.advanceTimersByTime(8 * DAY);
      await expect.poll(() => refreshes.count).toBe(1);
      expect(auth.state).toBe("connected");
    } finally {
      vi.useRealTimers();
    }
  });

  /**
   * The client in a process of its own whose Date.now() is off by `skewMs` (withAuth reads no other clock),
   * against this process's server; its 3-second tokens are issued on the server's clock, as an app's are.
   */
  async function skewedClient(url: string, skewMs: number, watchMs: number): Promise<string[]> {
    const script = `
      import jwt from "jsonwebtoken";
      import { io } from "socket.io-client";
      const serverNow = Date.now;
      Date.now = () => serverNow() + ${skewMs};
      const { withAuth } = await import(process.env.CLIENT);
      const token = () => {
        const iat = Math.floor(serverNow() / 1000);
        return jwt.sign({ sub: "1", iat, exp: iat + 3 }, ${JSON.stringify(KEY)}, { algorithm: "HS256" });
      };
      const auth = withAuth(io(${JSON.stringify(url)}, { autoConnect: false, transports: ["websocket"] }), { token });
      for (const event of ["state", "ended", "refused"]) auth.on(event, (what) => console.log(event, JSON.stringify(what)));
      auth.connect();
      setTimeout(() => process.exit(0), ${watchMs});
    `;
    const client = `data:text/javascript;base64,${Buffer.from(await clientBundle()).toString("base64")}`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: process.cwd(),
      env: { ...process.env, CLIENT: client },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect([code, output]).toEqual([0, expect.any(String)]);
    return output.trim().split("\n");
  }

  // This and the next wait out several token lifetimes, idle: they run side by side (nothing shared).
  it.concurrent("a client clock 10 minutes fast, or slow, renews on the server's time: a bounded count, and the socket stays", { timeout: 20_000 }, async (context) => {
    // Both clients at once, each against a server of its own.
    await Promise.all(
      [10 * 60_000, -10 * 60_000].map(async (skewMs) => {
        const h = await harnessesOf(context)({ bridge: { strategies: ["jwt"] }, passport: withJwt });
        const refreshes = countRefreshes(h.io);
        // Past the first token's expiry (at most 3 s after connect), and the next one's (renewed at the 1 s
        // floor: at most 4 s after connect).
        const lines = await skewedClient(h.url, skewMs, 5000);
        expect(lines, `skew ${skewMs} ms`).toEqual(['state "connecting"', 'state "connected"']);
        // The skew seen at connect: one renewal at the floor (1 s), then one at 80-90% of what the server says
        // each token has left (2-3 s: iat is in whole seconds).
        expect(refreshes.count, `skew ${skewMs} ms`).toBeGreaterThanOrEqual(2);
        expect(refreshes.count, `skew ${skewMs} ms`).toBeLessThanOrEqual(5);
      }),
    );
  });

  it.concurrent("a 3-second JWT is renewed through token() twice, with no reconnect", { timeout: 15_000 }, async (context) => {
    const h = await harnessesOf(context)({ bridge: { strategies: ["jwt"] }, passport: withJwt });
    let issued = 0;
    const auth = withAuth(clientSocketOf(context, h.url), {
      token: () => {
        issued++;
        return jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: 3 });
      },
    }).connect();
    await nextEvent(auth.socket, "connect");
    const id = auth.socket.id;
    const endings: EndedInfo[] = [];
    auth.on("ended", (e) => endings.push(e));
    let disconnects = 0;
    auth.socket.on("disconnect", () => disconnects++);
    while (issued < 3) await sleep(50);
    // Past the second token's expiry: the third one holds it.
    await sleep(1000);
    expect(endings).toEqual([]);
    expect(disconnects).toBe(0);
    expect(auth.socket.id).toBe(id);
    expect(auth.state).toBe("connected");
  });
});

describe("credentials that are gone", () => {
  it("a token() that gives nothing after a logout sends no token on the next reconnect, not the last one", async () => {
    const handshakes: Array<Record<string, unknown>> = [];
    const h = await start({
      bridge: { strategies: ["jwt"], onReject: (socket) => void handshakes.push({ ...socket.handshake.auth }) },
      passport: withJwt,
    });
    let token: string | null = jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: 60 });
    const socket = clientSocket(h.url);
    // A token in the app's own `auth` object does not come back either.
    socket.auth = { app: "kept", token: "from io()" };
    const auth = withAuth(socket, { token: () => token }).connect();
    await nextEvent(auth.socket, "connect");
    h.io.on("connection", (s) => handshakes.push({ ...s.handshake.auth }));
    const refused = new Promise<RefusalInfo>((resolve) => auth.on("refused", resolve));
    // The logout: localStorage.getItem("token") is null from now on. Then the network drops.
    token = null;
    for (const s of await h.io.fetchSockets()) h.io.sockets.sockets.get(s.id)?.conn.close();
    expect((await refused).code).toBe("session_missing");
    expect(handshakes).toEqual([{ app: "kept" }]);
    expect(auth.state).toBe("refused");
  });

  it("a token() that throws sends no token either", async () => {
    const handshakes: Array<Record<string, unknown>> = [];
    const h = await start({ bridge: { strategies: ["jwt"], onReject: (socket) => void handshakes.push({ ...socket.handshake.auth }) }, passport: withJwt });
    let fail = false;
    const auth = withAuth(clientSocket(h.url), {
      token: () => {
        if (fail) throw new Error("the refresh endpoint says 401");
        return jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: 60 });
      },
    }).connect();
    await nextEvent(auth.socket, "connect");
    const refused = new Promise<RefusalInfo>((resolve) => auth.on("refused", resolve));
    fail = true;
    for (const s of await h.io.fetchSockets()) h.io.sockets.sockets.get(s.id)?.conn.close();
    expect((await refused).code).toBe("session_missing");
    expect(handshakes).toEqual([{}]);
  });
});

describe("odd payloads of the client's own events", () => {
  it("are ignored without throwing: auth:ended, auth:left, presence:*, and the acks of auth:join", async () => {
    const h = await start();
    h.auth.channel("presence:room:{id}", (user) => (user ? { info: { name: user.name } } : false));
    const auth = withAuth(clientSocket(h.url, { cookie: await h.login("alice") })).connect();
    await nextEvent(auth.socket, "connect");
    await auth.join("presence:room:1");
    const [server] = await h.io.fetchSockets();
    // A server (or app code) that answers auth:join with odd acks.
    const odd: unknown[] = [null, "yes", { ok: "true" }, { ok: false, code: 42 }];
    h.io.sockets.sockets.get(server!.id)!.use(([event, payload, ack], next) => {
      if (event === "auth:join" && (payload as { channel: string }).channel.startsWith("odd:")) {
        const i = Number((payload as { channel: string }).channel.slice(4));
        return (ack as (answer: unknown) => void)(i < odd.length ? odd[i] : { ok: true, members: [null, 7, { userId: 3, info: "i" }] });
      }
      next();
    });
    const members: PresenceMember[] = [];
    const handle = auth.presence("presence:room:1").on("join", (m) => members.push(m));
    let lefts = 0;
    handle.on("left", () => lefts++);
    const endings: EndedInfo[] = [];
    auth.on("ended", (e) => endings.push(e));
    for (const payload of [undefined, null, 0, "x", [], { channel: 5 }, { channel: "presence:room:1" }, { channel: "presence:room:1", member: null }]) {
      for (const event of ["auth:left", "presence:join", "presence:leave", "auth:ended"]) server!.emit(event, payload);
    }
    server!.emit("presence:join", { channel: "presence:room:1", member: { userId: "9", info: { name: "Zed" } } });
    for (const [i] of odd.entries()) {
      await expect(auth.join(`odd:${i}`)).rejects.toMatchObject({ name: "ChannelError", code: "server_error" });
    }
    expect(await auth.join(`odd:${odd.length}`)).toEqual({ members: [{ userId: undefined, info: "i" }] });
    expect(members).toEqual([{ userId: "9", info: { name: "Zed" } }]);
    // (`{ channel }` alone is a well-formed auth:left: sent twice above.)
    expect([lefts, endings]).toEqual([2, []]);
    expect(auth.state).toBe("connected");
    expect(((await auth.socket.emitWithAck("whoami")) as { user: User }).user.name).toBe("Alice");
  });
});

describe("a refusal that says when to retry", () => {
  it("too_many_attempts with reconnect: true and retryAfterMs is retried no sooner than that, plus jitter", { timeout: 15_000 }, async () => {
    const h = await start();
    const attempts: number[] = [];
    h.io.use((_socket, next) => {
      attempts.push(Date.now());
      if (attempts.length > 1) return next();
      const err = Object.assign(new Error("Too many attempts"), { data: { code: "too_many_attempts", reconnect: true, retryAfterMs: 600 } });
      next(err);
    });
    const auth = withAuth(clientSocket(h.url, { cookie: await h.login("alice") }), { retry: { minDelayMs: 50, maxDelayMs: 100 } });
    const refused = new Promise<RefusalInfo>((resolve) => auth.on("refused", resolve));
    auth.connect();
    await nextEvent(auth.socket, "connect", 5000);
    expect(attempts).toHaveLength(2);
    // At least retryAfterMs; the jitter is up to minDelayMs more (and a little time on the wire).
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(600);
    expect(attempts[1]! - attempts[0]!).toBeLessThan(600 + 50 + 500);
    expect(auth.state).toBe("connected");
    expect(await refused).toEqual({ code: "too_many_attempts", message: "Too many attempts", reconnect: true, retryAfterMs: 600 });
  });
});
