/**
 * NestJS, on the real example-nest app (Nest 12 on Express, @nestjs/passport session login): it serves the
 * example's chat page and its form logs in; gateways see the HTTP user, refusals carry their codes, the guard
 * refuses anonymous sockets and the refusal answers the event's ack, logout ends the socket, a second gateway's
 * namespace is covered; and the /nest entry loads from ESM and CommonJS while the main one never loads Nest.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Logger, type INestApplication } from "@nestjs/common";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp, type ExampleOptions } from "../example-nest/app.js";
import { codeBlock } from "./helpers/docs.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The example's users, as the page says: the Express example app's. */
const PASSWORDS: Record<string, string> = { alice: "wonderland", bob: "builder" };
/** What a browser's form post says it accepts (Chromium's). */
const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const apps: INestApplication[] = [];
const sockets: ClientSocket[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await Promise.all(apps.splice(0).map((app) => app.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(options: ExampleOptions = {}) {
  const app = await createApp(options);
  await app.listen(0, "127.0.0.1");
  apps.push(app);
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  const login = async (username: string) => {
    const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username, password: PASSWORDS[username]! }) });
    expect(res.status).toBe(201);
    return cookieFrom(res);
  };
  const socket = (namespace = "/", headers: Record<string, string> = {}) => {
    const client = ioClient(url + namespace, { forceNew: true, transports: ["websocket"], reconnection: false, extraHeaders: headers });
    sockets.push(client);
    return client;
  };
  const connected = async (namespace = "/", headers: Record<string, string> = {}) => {
    const client = socket(namespace, headers);
    await nextEvent(client, "connect");
    return client;
  };
  return { url, login, socket, connected };
}

/**
 * The NestJS guide's gateway (docs/nestjs.md), extracted verbatim and loaded (on its own namespace, beside the
 * example's /admin): written next to a tsconfig with Nest's decorators, as an app would compile it.
 */
async function readmeGateway(): Promise<new () => unknown> {
  const source = codeBlock(root, "nest-gateway", "ts").source.replace('namespace: "/admin"', 'namespace: "/readme-admin"');
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "readme-nest-"));
  dirs.push(dir);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { experimentalDecorators: true } }));
  writeFileSync(join(dir, "gateway.ts"), source);
  return ((await import(pathToFileURL(join(dir, "gateway.ts")).href)) as { AdminGateway: new () => unknown }).AdminGateway;
}

/** The guard's refusal, as the event's ack receives it. */
const UNAUTHENTICATED = {
  ok: false,
  code: "unauthenticated",
  message: "This needs a logged-in user: log in over HTTP, then connect again.",
};

describe("NestJS (example-nest)", () => {
  it("serves the Express example's chat page (with the credentials), its files, and the Socket.IO client", async () => {
    const { url } = await start();
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toBe(readFileSync(join(root, "example-app", "public", "index.html"), "utf8"));
    expect(html).toMatch(/<form method="post" action="\/login">/);
    // The credentials, as the page's text says them (markup aside).
    const text = html.replace(/<[^>]+>/g, "");
    expect(text).toMatch(/alice \/ wonderland/);
    expect(text).toMatch(/bob \/ builder/);
    // Every file the page loads, each with its type.
    // (Not "/", the page itself, which "Log in again" links to.)
    const files = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]!);
    expect(files).toEqual(expect.arrayContaining(["/client.js", "/style.css", "/socket.io/socket.io.min.js"]));
    const script = readFileSync(join(root, "example-app", "public", "client.js"), "utf8");
    files.push(...[...script.matchAll(/from "(\/vendor\/[^"]+)"/g)].map((m) => m[1]!));
    expect(files).toContain("/vendor/passport-socketio-bridge/client.js");
    for (const file of files) {
      const res = await fetch(url + file);
      expect([file, res.status]).toEqual([file, 200]);
      expect([file, res.headers.get("content-type")]).toEqual([file, expect.stringMatching(/javascript|css|svg/)]);
      await res.body?.cancel();
    }
    // What the page asks first: nobody is logged in.
    expect(await (await fetch(`${url}/api/me`)).json()).toEqual({ user: null });
  });

  it("the page's forms: log in (a redirect to /, or to /?error=login), chat and whisper, log out (a redirect to /)", async () => {
    const { url, connected } = await start();
    const form = (path: string, body: Record<string, string>, cookie = "") =>
      fetch(url + path, { method: "POST", body: new URLSearchParams(body), redirect: "manual", headers: { accept: BROWSER_ACCEPT, cookie } });
    const wrong = await form("/login", { username: "alice", password: "alice" });
    expect([wrong.status, wrong.headers.get("location"), wrong.headers.get("set-cookie")]).toEqual([303, "/?error=login", null]);
    const [aliceIn, bobIn] = await Promise.all([form("/login", { username: "alice", password: "wonderland" }), form("/login", { username: "bob", password: "builder" })]);
    expect([aliceIn.status, aliceIn.headers.get("location")]).toEqual([303, "/"]);
    const cookie = cookieFrom(aliceIn);
    expect(await (await fetch(`${url}/api/me`, { headers: { cookie } })).json()).toMatchObject({ user: { username: "alice" } });

    const alice = await connected("/", { cookie });
    const bob = await connected("/", { cookie: cookieFrom(bobIn) });
    const heard = nextEvent<{ from: string; text: string; at: number }>(bob, "chat");
    expect(await alice.emitWithAck("chat", " hello ")).toEqual({ ok: true });
    expect(await heard).toMatchObject({ from: "Alice", text: "hello" });
    const whispered = nextEvent<{ from: string; text: string }>(bob, "whisper");
    expect(await alice.emitWithAck("whisper", { to: "bob", text: "psst" })).toMatchObject({ ok: true, to: "Bob" });
    expect(await whispered).toMatchObject({ from: "Alice", text: "psst" });
    expect(await alice.emitWithAck("whisper", { to: "carol", text: "hi" })).toEqual({ ok: false, error: "unknown_user" });
    expect(await alice.emitWithAck("chat", "")).toEqual({ ok: false, error: "invalid_message" });

    const ended = nextEvent(alice, "auth:ended");
    const out = await form("/logout", {}, cookie);
    expect([out.status, out.headers.get("location")]).toEqual([303, "/"]);
    expect(await ended).toEqual({ code: "logged_out" });
  });

  it("a refused guarded event answers its ack with the refusal; without an ack, Nest's exception event says it", async () => {
    const { connected } = await start();
    const anonymous = await connected("/");
    const heard = vi.fn();
    anonymous.on("chat", heard);
    expect(await anonymous.timeout(2000).emitWithAck("chat", "hello")).toEqual(UNAUTHENTICATED);
    expect(await anonymous.timeout(2000).emitWithAck("whisper", { to: "bob", text: "hello" })).toEqual(UNAUTHENTICATED);
    const exception = nextEvent(anonymous, "exception");
    anonymous.emit("chat", "hello");
    expect(await exception).toEqual({ code: "unauthenticated", message: UNAUTHENTICATED.message });
    // Nothing was said under no name; the socket is still there.
    expect(await anonymous.emitWithAck("whoami")).toEqual({ user: null });
    expect(heard).not.toHaveBeenCalled();
  });

  it("WsAckExceptionFilter: the server's own failure is a server_error with no details; a WsException without a code is refused", async () => {
    const { FailingGateway } = await import("./fixtures/nest/failing-gateway.js");
    const logged = vi.spyOn(Logger.prototype, "error").mockImplementation(() => undefined);
    const { connected } = await start({ gateways: [FailingGateway] });
    const client = await connected("/failing");
    expect(await client.timeout(2000).emitWithAck("crash")).toEqual({
      ok: false,
      code: "server_error",
      message: "The server ran into a problem handling this event; try again later.",
    });
    // The error itself went to the server's log only.
    expect(logged).toHaveBeenCalledWith(expect.objectContaining({ message: "connection to db.internal:5432 refused" }));
    logged.mockRestore();
    expect(await client.timeout(2000).emitWithAck("sentence")).toEqual({ ok: false, code: "refused", message: "Not now." });
    expect(await client.timeout(2000).emitWithAck("uncoded")).toEqual({ ok: false, code: "refused", message: "The server refused this event." });
  });

  it("@SocketUser() is the user HTTP routes see, and the gateway greets them by name", async () => {
    const { url, login, socket, connected } = await start();
    const cookie = await login("alice");
    const http = (await (await fetch(`${url}/me`, { headers: { cookie } })).json()) as { user: unknown };
    const hello = nextEvent(socket("/", { cookie }), "hello");
    expect(await hello).toEqual({ name: "Alice" });
    const client = await connected("/", { cookie });
    expect(await client.emitWithAck("whoami")).toEqual(http);
    expect(http.user).toMatchObject({ name: "Alice" });
    expect(await client.emitWithAck("online")).toBe(true);
  });

  it("refusals carry their codes", async () => {
    const { login, socket } = await start({ bridge: { allowAnonymous: false } });
    const refusal = (client: ClientSocket) => nextEvent<Error & { data: unknown }>(client, "connect_error");
    expect((await refusal(socket())).data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    const cookie = await login("bob");
    expect((await refusal(socket("/", { cookie, origin: "https://evil.example" }))).data).toMatchObject({ code: "origin_not_allowed" });
  });

  it("WsAuthenticatedGuard refuses anonymous sockets, and lets users through", async () => {
    const { login, connected } = await start();
    const anonymous = await connected("/admin");
    expect(await anonymous.timeout(2000).emitWithAck("secret", {})).toEqual(UNAUTHENTICATED);
    const admin = await connected("/admin", { cookie: await login("alice") });
    expect(await admin.emitWithAck("secret", {})).toEqual({ secret: "for Alice only" });
  });

  it("logout over HTTP ends the socket", async () => {
    const { url, login, connected } = await start();
    const cookie = await login("alice");
    const client = await connected("/", { cookie });
    const ended = nextEvent(client, "auth:ended");
    expect((await fetch(`${url}/logout`, { method: "POST", headers: { cookie } })).status).toBe(204);
    expect(await ended).toEqual({ code: "logged_out" });
  });

  it("refuses kick and users to an anonymous socket on /admin, and nobody is disconnected", async () => {
    const { login, connected } = await start();
    const alice = await connected("/admin", { cookie: await login("alice") });
    const anonymous = await connected("/admin");
    for (const [event, payload] of [["kick", "1"], ["users", {}]] as const) {
      expect(await anonymous.timeout(2000).emitWithAck(event, payload)).toEqual(UNAUTHENTICATED);
    }
    // A round trip on Alice's socket after both: she is still connected, and the kick really works for an admin.
    expect(await alice.emitWithAck("secret", {})).toEqual({ secret: "for Alice only" });
    expect(alice.connected).toBe(true);
    const bob = await connected("/", { cookie: await login("bob") });
    const bobGone = nextEvent(bob, "disconnect");
    expect(await alice.emitWithAck("kick", "2")).toBe(1);
    await bobGone;
  });

  it("refuses kick to a logged-in user who is not an admin", async () => {
    const { login, connected } = await start();
    const alice = await connected("/", { cookie: await login("alice") });
    const bob = await connected("/admin", { cookie: await login("bob") });
    expect(await bob.timeout(2000).emitWithAck("kick", "1")).toEqual({ ok: false, code: "forbidden", message: "Only admins may kick users." });
    expect(await alice.emitWithAck("online")).toBe(true);
  });

  it("the NestJS guide's gateway, run as written: anonymous sockets can neither kick nor read the secret", async () => {
    const gateway = await readmeGateway();
    const { login, connected } = await start({ gateways: [gateway] });
    const alice = await connected("/", { cookie: await login("alice") });
    const anonymous = await connected("/readme-admin");
    for (const [event, payload] of [["kick", "1"], ["secret", {}]] as const) {
      const exception = nextEvent<{ code: string }>(anonymous, "exception");
      anonymous.emit(event, payload, () => undefined);
      expect(await exception).toMatchObject({ code: "unauthenticated" });
    }
    expect(await alice.emitWithAck("online")).toBe(true);
    const admin = await connected("/readme-admin", { cookie: await login("alice") });
    expect(await admin.emitWithAck("secret", {})).toEqual({ secret: "for Alice only" });
  });

  it("covers a second gateway's namespace, reachable through bridgeOf(namespace)", async () => {
    const { login, connected } = await start({ bridge: { allowAnonymous: false } });
    const admin = await connected("/admin", { cookie: await login("bob") });
    expect(await admin.emitWithAck("users", {})).toEqual(["2"]);
  });
});

describe("the /nest entry", () => {
  const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: process.cwd(), encoding: "utf8" }).trim();

  it("loads from CommonJS and from ESM on this Node (Nest 12 is ESM-only)", () => {
    const check = "typeof m.BridgeIoAdapter === 'function' && typeof m.SocketUser === 'function' && typeof m.WsAuthenticatedGuard === 'function'";
    expect(run(["-e", `const m = require("passport-socketio-bridge/nest"); console.log(${check})`])).toBe("true");
    expect(run(["--input-type=module", "-e", `const m = await import("passport-socketio-bridge/nest"); console.log(${check})`])).toBe("true");
  });

  it("the main entry never loads Nest", () => {
    expect(run(["-e", `require("passport-socketio-bridge"); console.log(Object.keys(require.cache).filter((k) => k.includes("@nestjs")).length)`])).toBe("0");
    // The ESM build: neither the entry nor a chunk it imports names Nest.
    const files = readdirSync("dist").filter((f) => f.endsWith(".js") && f !== "nest.js");
    for (const file of files) expect(readFileSync(`dist/${file}`, "utf8")).not.toMatch(/@nestjs/);
  });
});
