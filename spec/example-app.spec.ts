/**
 * The example app, run as shipped (from the built package), through HTTP forms and real sockets; and `npm start`
 * as a person or a process manager runs it, stopped by SIGTERM or Ctrl-C.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { inject } from "vitest";
// @ts-expect-error: the example app is plain JavaScript.
import { createApp } from "../example-app/app.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { alive, commandOf, descendants, exampleLogin, parentOf, untilServing } from "./helpers/processes.js";
import { startDurableRedis } from "./helpers/durable-redis.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

type App = { server: import("node:http").Server; close(): Promise<void> };
let app: App | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await app?.close();
  app = undefined;
});

async function start(redisUrl?: string) {
  const logs: string[] = [];
  // Not the environment's DATABASE_URL (which would take precedence): MemoryStore or the Redis given.
  app = (await createApp({ databaseUrl: "", redisUrl, log: (line: string) => logs.push(line) })) as App;
  await new Promise<void>((resolve) => app!.server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const login = (username: string, password: string) => exampleLogin(url, username, password);
  const connect = (cookie: string): Socket => {
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie } });
    sockets.push(socket);
    return socket;
  };
  return { url, logs, login, connect };
}

const STORES: Array<[name: string, redisUrl: () => string | undefined, log: RegExp]> = [
  ["MemoryStore", () => undefined, /in memory/],
  ["Redis", () => inject("redisUrl"), /use Redis at redis:\/\//],
];

describe.each(STORES)("the example app with %s", (_name, redisUrl, logLine) => {
  it("says who is connected, signs chat messages with the session's user, and ends sockets on logout", async () => {
    const { url, logs, login, connect } = await start(redisUrl());
    expect(logs.join("\n")).toMatch(logLine);

    const aliceCookie = await login("alice", "wonderland");
    const bobCookie = await login("bob", "builder");
    const alice = connect(aliceCookie);
    const bob = connect(bobCookie);
    expect(await nextEvent(alice, "hello")).toEqual({ name: "Alice" });
    expect(await nextEvent(bob, "hello")).toEqual({ name: "Bob" });

    // The client cannot choose the sender's name.
    expect(await bob.emitWithAck("chat", { from: "Alice", text: "spoofed" })).toEqual({ ok: false, error: "invalid_message" });
    const received = nextEvent(alice, "chat");
    const before = Date.now();
    expect(await bob.emitWithAck("chat", "  hi Alice  ")).toEqual({ ok: true });
    // With the server's time, which the page shows.
    const message = await received;
    expect(message).toEqual({ from: "Bob", text: "hi Alice", at: expect.any(Number) });
    expect((message as { at: number }).at).toBeGreaterThanOrEqual(before);
    expect((message as { at: number }).at).toBeLessThanOrEqual(Date.now());

    // A whisper is confirmed to its sender (to whom, and when); one to an unknown user says so, and goes nowhere.
    const whisper = nextEvent(alice, "whisper");
    const confirmed = await bob.emitWithAck("whisper", { to: "alice", text: " psst " });
    expect(confirmed).toEqual({ ok: true, to: "Alice", at: expect.any(Number) });
    expect(await whisper).toEqual({ from: "Bob", text: "psst", at: confirmed.at });
    expect(await bob.emitWithAck("whisper", { to: "zed", text: "hello?" })).toEqual({ ok: false, error: "unknown_user" });
    expect(await bob.emitWithAck("whisper", { to: "alice", text: "   " })).toEqual({ ok: false, error: "invalid_message" });

    const ended = nextEvent(alice, "auth:ended");
    const gone = nextEvent(alice, "disconnect");
    const logout = await fetch(`${url}/logout`, { method: "POST", headers: { cookie: aliceCookie }, redirect: "manual" });
    expect(logout.status).toBe(302);
    expect(await ended).toEqual({ code: "logged_out" });
    expect(await gone).toBe("io server disconnect");
    expect(bob.connected).toBe(true);

    const me = await fetch(`${url}/api/me`, { headers: { cookie: aliceCookie } });
    expect(await me.json()).toEqual({ user: null });
  });

  it("\"Log out over the socket\" ends every tab of that session and the session itself; bob stays", async () => {
    const { url, login, connect } = await start(redisUrl());
    const page = await (await fetch(url)).text();
    expect(page).toMatch(/<button type="button" id="socket-logout"[^>]*>Log out over the socket<\/button>/);
    const aliceCookie = await login("alice", "wonderland");
    const bobCookie = await login("bob", "builder");
    const tabs = [connect(aliceCookie), connect(aliceCookie)];
    const bob = connect(bobCookie);
    await Promise.all([...tabs, bob].map((socket) => nextEvent(socket, "hello")));
    const endings = tabs.map((tab) => nextEvent(tab, "auth:ended"));
    tabs[0]!.emit("logout");
    expect(await Promise.all(endings)).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
    expect(bob.connected).toBe(true);
    const me = await fetch(`${url}/api/me`, { headers: { cookie: aliceCookie } });
    expect(await me.json()).toEqual({ user: null });
  });

  it("refuses a socket without a login, with a reason the page can show", async () => {
    const { url } = await start(redisUrl());
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"] });
    sockets.push(socket);
    const err = await nextEvent<Error & { data: unknown }>(socket, "connect_error");
    expect(err.data).toEqual({ code: "session_missing", reason: "no_cookie", reconnect: false });
  });

  it("serves its page, its icon, the Socket.IO client and the library's client half itself (no CDN, no bundler)", async () => {
    const { url } = await start(redisUrl());
    const page = await (await fetch(url)).text();
    expect(page).toContain('<script src="/socket.io/socket.io.min.js"></script>');
    expect(page).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    expect((await fetch(`${url}/socket.io/socket.io.min.js`)).status).toBe(200);
    expect(page).toContain('<link rel="icon" href="/favicon.svg" type="image/svg+xml" />');
    const icon = await fetch(`${url}/favicon.svg`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toMatch(/^image\/svg\+xml/);

    // passport-socketio-bridge/client as the installed package resolves it for `import` (dist/client.js), byte for
    // byte, with its source map; the page's script imports it from there. Nothing else of the package is served.
    const script = await (await fetch(`${url}/client.js`)).text();
    expect(script).toContain('import { withAuth } from "/vendor/passport-socketio-bridge/client.js";');
    const served = await fetch(`${url}/vendor/passport-socketio-bridge/client.js`);
    expect(served.status).toBe(200);
    expect(served.headers.get("content-type")).toMatch(/^text\/javascript/);
    const file = fileURLToPath(import.meta.resolve("passport-socketio-bridge/client"));
    expect(file).toBe(resolve(root, "dist", "client.js"));
    expect(await served.text()).toBe(readFileSync(file, "utf8"));
    const map = await fetch(`${url}/vendor/passport-socketio-bridge/client.js.map`);
    expect(map.status).toBe(200);
    expect(JSON.parse(await map.text())).toMatchObject({ version: 3 });
    for (const other of ["index.js", "client.cjs", "client.d.ts"]) {
      const res = await fetch(`${url}/vendor/passport-socketio-bridge/${other}`);
      await res.body?.cancel();
      expect(res.status).toBe(404);
    }
  });
});

describe.each(["ioredis", "node-redis"] as const)("the example app over %s while Redis is down", (redisClient) => {
  it("serves its page at once, answers 503 with a sentence (JSON or a page), never a stack trace, and recovers", { timeout: 30_000 }, async () => {
    const redis = await startDurableRedis();
    try {
      const logs: string[] = [];
      app = (await createApp({ databaseUrl: "", redisUrl: redis.url, redisClient, log: (line: string) => logs.push(line) })) as App;
      await new Promise<void>((resolve) => app!.server.listen(0, "127.0.0.1", resolve));
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const cookie = await exampleLogin(url, "alice", "wonderland");
      await redis.kill();

      const timed = async (path: string, init: RequestInit = {}) => {
        const started = Date.now();
        const res = await fetch(url + path, { redirect: "manual", ...init, headers: { cookie, ...init.headers } });
        return { res, body: await res.text(), ms: Date.now() - started };
      };
      // The page and its files do not wait for the store.
      for (const path of ["/", "/client.js", "/style.css", "/vendor/passport-socketio-bridge/client.js"]) {
        const { res, ms } = await timed(path);
        expect([path, res.status]).toEqual([path, 200]);
        expect(ms).toBeLessThan(1000);
      }
      // The page's own fetch: JSON, at once (no offline queue to wait in).
      const me = await timed("/api/me", { headers: { accept: "*/*" } });
      expect(me.res.status).toBe(503);
      expect(me.ms).toBeLessThan(1000);
      expect(me.res.headers.get("retry-after")).toBe("5");
      expect(JSON.parse(me.body)).toEqual({
        error: "store_unavailable",
        message: "The server cannot reach its session store right now. Try again in a moment.",
      });
      // A browser's form: a page with the same sentence and a way back.
      const login = await timed("/login", {
        method: "POST",
        headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" },
        body: new URLSearchParams({ username: "bob", password: "builder" }),
      });
      expect(login.res.status).toBe(503);
      expect(login.res.headers.get("content-type")).toMatch(/^text\/html/);
      expect(login.body).toContain("The server cannot reach its session store right now. Try again in a moment.");
      expect(login.body).toContain('<a href="/">Back to the chat</a>');
      for (const { body } of [me, login]) expect(body).not.toMatch(/ at |Error|node_modules|\.js:\d+|\/work\//);
      // The log has one line per failed request, for the developer.
      expect(logs.filter((line) => line.startsWith("GET /api/me: store_unavailable: "))).toHaveLength(1);

      await redis.restart();
      await expect.poll(async () => (await timed("/api/me")).res.status, { timeout: 10_000, interval: 200 }).toBe(200);
      expect(JSON.parse((await timed("/api/me")).body)).toEqual({ user: { id: "1", username: "alice", name: "Alice" } });
    } finally {
      await app?.close();
      app = undefined;
      await redis.close();
    }
  });
});

/**
 * `npm start` is one Node process (package.json: `exec node scripts/example-app.js`): npm passes SIGTERM and
 * SIGINT on to it, and it closes its sockets, its HTTP server and exits 0. Before, npm's shell stood between
 * them (Debian's dash does not exec the last command of `sh -c`): the signal stopped the shell, npm exited 143,
 * and the server went on serving, an orphan.
 */
describe("npm start", () => {
  // npm runs in a process group of its own: whatever a failed test leaves behind (an orphan is no one's child,
  // but stays in the group) is stopped here.
  const groups: number[] = [];
  afterEach(() => {
    for (const group of groups.splice(0)) stopGroup(group);
  });

  // SKIP_BUILD: dist/ as `npm test` built it (a build would empty dist/ under the spec files running meanwhile).
  it.each(["SIGTERM", "SIGINT"] as const)("stops on %s sent to npm: sockets closed, exit code 0, port free, no process left", async (signal) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const npm = spawn("npm", ["start"], { cwd: root, env: { ...process.env, PORT: String(port), REDIS_URL: "", DATABASE_URL: "", SKIP_BUILD: "1" }, stdio: "pipe", detached: true });
    groups.push(npm.pid!);
    let output = "";
    npm.stdout!.on("data", (chunk) => (output += chunk));
    npm.stderr!.on("data", (chunk) => (output += chunk));
    await untilServing(npm, [url], "npm start");
    const tree = descendants(npm.pid!);
    const children = tree.map((pid) => ({ pid, parent: parentOf(pid), command: commandOf(pid) }));

    const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username: "alice", password: "wonderland" }), redirect: "manual" });
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"], reconnection: false, extraHeaders: { cookie: cookieFrom(res) } });
    await nextEvent(socket, "hello");
    const disconnected = nextEvent<string>(socket, "disconnect");

    const exited = new Promise<number | string | null>((resolve) => npm.once("exit", (code, sig) => resolve(code ?? sig)));
    npm.kill(signal);
    expect(await exited).toBe(0);
    expect(await disconnected).toBe("transport close");
    expect(output).toContain(`${signal}: closing the example app on port ${port}`);
    expect(output).toContain(`Example app on port ${port} closed.`);
    expect(tree.filter(alive)).toEqual([]);
    expect(await portIsFree(port)).toBe(true);
    // npm's one child was the server itself.
    expect(children).toEqual([{ pid: expect.any(Number), parent: npm.pid, command: "node scripts/example-app.js " }]);
  });
});



function stopGroup(group: number) {
  try {
    process.kill(-group, "SIGKILL");
  } catch {
    // none left
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}
