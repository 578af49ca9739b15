/**
 * The README's quickstart runs as written: extracted verbatim, started as its own process. Its page has the login
 * form; the form's POST logs in (and so does the README's curl line, run as written), and a socket with that
 * cookie carries the user HTTP logged in.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeBlock } from "./helpers/docs.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const run = promisify(execFile);
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

  it("logs alice in through the form's POST (a redirect to /), and her socket carries her user", async () => {
    const body = new URLSearchParams({ username: "alice", password: "wonderland" });
    const login = await fetch(`${url}/login`, { method: "POST", body, redirect: "manual" });
    expect(login.status).toBe(302);
    expect(login.headers.get("location")).toBe("/");
    const socket = ioClient(url, { forceNew: true, extraHeaders: { cookie: cookieFrom(login) } });
    sockets.push(socket);
    expect(await nextEvent(socket, "whoami")).toBe("alice");
  });

  it("the README's curl line, run as written, logs alice in: its cookie file carries her to the socket", async () => {
    const line = /`(curl [^`]*\/login)`/.exec(readFileSync(join(root, "README.md"), "utf8"))?.[1];
    expect(line).toBe("curl -i -c cookies.txt -d username=alice -d password=wonderland http://localhost:3000/login");
    // The quickstart's default address, pointed at this run's port.
    const [command, ...args] = line!.replace("http://localhost:3000", url).split(" ");
    const { stdout } = await run(command!, args, { cwd: dir });
    expect(stdout).toMatch(/^HTTP\/1\.1 302 Found\r?$/m);
    expect(stdout).toMatch(/^Location: \/\r?$/m);
    // curl's cookie jar (Netscape format; an HttpOnly cookie's line starts with #HttpOnly_).
    const cookie = readFileSync(join(dir, "cookies.txt"), "utf8")
      .split("\n")
      .filter((entry) => entry.trim() && (!entry.startsWith("#") || entry.startsWith("#HttpOnly_")))
      .map((entry) => entry.split("\t"))
      .map((fields) => `${fields[5]}=${fields[6]}`)
      .join("; ");
    expect(cookie).toMatch(/^connect\.sid=s%3A/);
    const socket = ioClient(url, { forceNew: true, extraHeaders: { cookie } });
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
