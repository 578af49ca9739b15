/** The README's quickstart runs as written: extracted verbatim, started as its own process. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let dir: string;
let server: ChildProcess | undefined;
let url: string;
const sockets: Socket[] = [];

function quickstart(): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const match = /<!-- quickstart[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error("README.md has no quickstart block");
  return match[1]!;
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
  it("greets the logged-in user over the socket by the name HTTP knows", async () => {
    const login = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username: "Alice", password: "wonderland" }) });
    expect(await login.text()).toBe("Hi Alice");
    const socket = ioClient(url, { forceNew: true, extraHeaders: { cookie: cookieFrom(login) } });
    sockets.push(socket);
    expect(await nextEvent(socket, "hello")).toBe("Hi Alice");
  });

  it("refuses a socket without a session", async () => {
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"] });
    sockets.push(socket);
    const err = await nextEvent<Error & { data: unknown }>(socket, "connect_error");
    expect(err.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
  });
});
