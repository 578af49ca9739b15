/**
 * NestJS, on the real example-nest app (Nest 12 on Express, @nestjs/passport session login): gateways see the
 * HTTP user, refusals carry their codes, the guard refuses anonymous sockets, logout ends the socket, a second
 * gateway's namespace is covered; and the /nest entry loads from ESM and CommonJS while the main one never
 * loads Nest.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { INestApplication } from "@nestjs/common";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createApp, type ExampleOptions } from "../example-nest/app.js";
import { codeBlock } from "./helpers/docs.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
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
    const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username, password: username }) });
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

describe("NestJS (example-nest)", () => {
  it("@SocketUser() is the user HTTP routes see, and the gateway greets them by name", async () => {
    const { url, login, socket, connected } = await start();
    const cookie = await login("alice");
    const http = (await (await fetch(`${url}/me`, { headers: { cookie } })).json()) as { user: unknown };
    const hello = nextEvent(socket("/", { cookie }), "hello");
    expect(await hello).toBe("Hi Alice");
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
    const exception = nextEvent<{ code: string; message: string }>(anonymous, "exception");
    anonymous.emit("secret", {}, () => undefined);
    expect(await exception).toMatchObject({ code: "unauthenticated" });
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
      const exception = nextEvent<{ code: string; message: string }>(anonymous, "exception");
      let answered = false;
      anonymous.emit(event, payload, () => (answered = true));
      expect(await exception).toMatchObject({ code: "unauthenticated" });
      expect(answered).toBe(false);
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
    const exception = nextEvent<{ code: string }>(bob, "exception");
    bob.emit("kick", "1", () => undefined);
    expect(await exception).toMatchObject({ code: "forbidden" });
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
