/**
 * The README's quickstart runs as written: extracted verbatim, started as its own process. Its page has the login
 * form; the form's POST logs in, and a socket with that cookie is greeted by the name HTTP knows.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeBlock } from "./helpers/docs.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let dir: string;
let server: ChildProcess | undefined;
let url: string;
const sockets: Socket[] = [];

function quickstart(): string {
  const { file, source } = codeBlock(root, "quickstart", "js");
  if (file !== "README.md") throw new Error(`The quickstart block moved to ${file}: the README is where a new user looks`);
  return source;
}

beforeAll(async () => {
  mkdirSync(join(root, ".tmp"), { recursive: true });
  // Inside the package, so `passport-socketio-bridge` resolves to the built package by its own name.
  dir = mkdtempSync(join(root, ".tmp", "quickstart-"));
  writeFileSync(join(dir, "server.js"), quickstart());
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, ["server.js"], { cwd: dir, env: { ...process.env, PORT: String(port) }, stdio: "pipe" });
  await untilServing(server, [url], "the quickstart");
});

afterAll(() => {
  for (const socket of sockets) socket.disconnect();
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("the README quickstart", () => {
  it("serves a login form that posts username and password to /login", async () => {
    const page = await (await fetch(url)).text();
    expect(page).toMatch(/<form method="post" action="\/login">/);
    expect(page).toMatch(/<input name="username"/);
    expect(page).toMatch(/<input name="password" type="password"/);
  });

  it("logs alice in with the README's curl fields, and her socket carries her user", async () => {
    const body = new URLSearchParams({ username: "alice", password: "wonderland" });
    const login = await fetch(`${url}/login`, { method: "POST", body, redirect: "manual" });
    expect(login.status).toBe(302);
    expect(login.headers.get("location")).toBe("/");
    const socket = ioClient(url, { forceNew: true, extraHeaders: { cookie: cookieFrom(login) } });
    sockets.push(socket);
    expect(await nextEvent(socket, "whoami")).toBe("alice");
  });

  it("sets no session cookie for a wrong password", async () => {
    const body = new URLSearchParams({ username: "alice", password: "wrong" });
    const login = await fetch(`${url}/login`, { method: "POST", body, redirect: "manual" });
    expect(login.status).toBe(302);
    expect(login.headers.get("location")).toBe("/?error=login");
    expect(login.headers.getSetCookie()).toEqual([]);
  });

  it("refuses a socket without a session", async () => {
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"] });
    sockets.push(socket);
    const err = await nextEvent<Error & { data: unknown }>(socket, "connect_error");
    expect(err.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
  });
});
