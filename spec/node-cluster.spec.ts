/**
 * Node's cluster module with @socket.io/sticky and @socket.io/cluster-adapter (spec/fixtures/node-cluster/app.js):
 * a real primary with two workers in a child process, real HTTP logins through the primary's port, real
 * socket.io-client sockets over polling and websocket. With a shared session store, a socket on either worker
 * carries the user who logged in, and a logout handled by one worker ends the sockets on the other. With a
 * MemoryStore per worker (the one trap), a login made on one worker is unknown to the other.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { nextEvent } from "./helpers/harness.js";
import { freePort } from "./helpers/redis-server.js";

const APP = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "node-cluster", "app.js");
const sockets: Socket[] = [];

interface Cluster {
  url: string;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts the fixture's primary (and its two workers); resolves once the primary listens. */
async function startCluster(env: Record<string, string>): Promise<Cluster> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [APP], {
    env: { ...process.env, ...env, PORT: String(port), DEBUG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cluster did not start:\n${output}`)), 15_000);
    child.stdout!.on("data", () => output.includes("serving on") && (clearTimeout(timer), resolve()));
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`the cluster exited (${code}):\n${output}`))));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    // SIGTERM: the primary stops its workers and exits. Whatever is left 5 s later (the primary and the workers
    // it printed) gets SIGKILL, so that a failed run leaves no process behind.
    stop: () =>
      new Promise<void>((resolve) => {
        const workers = [...output.matchAll(/worker (\d+) ready/g)].map((m) => Number(m[1]));
        const kill = () => {
          for (const pid of workers) {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // already gone
            }
          }
        };
        if (child.exitCode !== null || child.signalCode !== null) return (kill(), resolve());
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        child.once("exit", () => (clearTimeout(timer), kill(), resolve()));
        child.kill("SIGTERM");
      }),
  };
}

interface Answer {
  status: number;
  body: { pid: number; user?: { name: string } | null };
  cookie: string;
}

/** One HTTP request on a connection of its own (no keep-alive), so the primary picks a worker for it. */
function send(url: string, path: string, { method = "GET", cookie = "", form = "" } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { cookie };
    if (form) headers["content-type"] = "application/x-www-form-urlencoded";
    const req = httpRequest(url + path, { method, headers, agent: false }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => {
        const setCookie = (res.headers["set-cookie"] ?? []).map((c) => c.split(";")[0]).join("; ");
        resolve({ status: res.statusCode!, body: JSON.parse(text || "{}"), cookie: setCookie });
      });
    });
    req.on("error", reject);
    req.end(form);
  });
}

const login = async (url: string, username: string) => {
  const answer = await send(url, "/login", { method: "POST", form: `username=${username}&password=${username}` });
  expect(answer.status).toBe(200);
  return answer;
};

/**
 * Connection attempts that failed in @socket.io/sticky, not in the bridge, and that the client retried by itself.
 * Seen on this machine: a websocket whose first frame (the namespace CONNECT) never reaches the worker (the
 * primary hands the TCP connection over with `worker.send(…, socket)`, and Node keeps reading the primary's copy
 * until it is closed, dropping what it reads meanwhile), so the client's connection `timeout` (20 s by default,
 * 3 s here) retries; and a long-polling POST sent before the primary learnt which worker holds the session ("xhr
 * post error").
 */
const retried: string[] = [];

/** A connected socket through the primary, and the worker that holds it; rejects on a refusal. */
async function connect(url: string, cookie: string, transport: "polling" | "websocket") {
  // @socket.io/sticky can drop the first frame a worker should get (the primary's handle reads with a no-op until
  // the worker takes the socket), and then the namespace CONNECT never gets an answer: such an attempt is given up
  // after 4 s and made again on a new connection, as a user would reload. Nothing the bridge does.
  for (let attempt = 1; ; attempt++) {
    const socket = ioClient(url, {
      forceNew: true,
      transports: [transport],
      extraHeaders: { cookie },
      timeout: 3000,
      reconnectionDelay: 100,
    });
    sockets.push(socket);
    const outcome = await new Promise<"connected" | "lost">((resolve, reject) => {
      const timer = setTimeout(() => resolve("lost"), 4000);
      socket.once("connect", () => (clearTimeout(timer), resolve("connected")));
      // A refusal by the bridge carries data; anything else is the transport's, and the client retries.
      socket.on("connect_error", (err: Error & { data?: unknown }) => (err.data ? (clearTimeout(timer), reject(err)) : retried.push(err.message)));
    });
    if (outcome === "connected") {
      const me = (await socket.timeout(5000).emitWithAck("whoami")) as { pid: number; user: { name: string } | null };
      return { socket, ...me };
    }
    socket.disconnect();
    retried.push(`no answer to CONNECT (attempt ${attempt})`);
    if (attempt === 5) throw new Error(`no answer to CONNECT in 5 attempts over ${transport}`);
  }
}

// Both clusters start together (each takes a few seconds on a busy machine).
let shared: Cluster;
let separate: Cluster;
beforeAll(async () => {
  [shared, separate] = await Promise.all([
    startCluster({ REDIS_URL: inject("redisUrl"), PREFIX: `sess:${randomUUID().slice(0, 8)}:` }),
    startCluster({ STORE: "memory" }),
  ]);
}, 25_000);

afterAll(async () => {
  await Promise.all([shared?.stop(), separate?.stop()]);
  for (const socket of sockets) socket.disconnect();
  if (retried.length) console.log(`retried through @socket.io/sticky: ${retried.join(", ")}`);
});

describe("Node's cluster module: @socket.io/sticky + @socket.io/cluster-adapter, a shared Redis store", () => {
  it("sockets on both workers, over polling and websocket, carry the user; a logout on one worker ends them all", { timeout: 60_000 }, async () => {
    const { cookie, body } = await login(shared.url, "alice");
    const bob = await connect(shared.url, (await login(shared.url, "bob")).cookie, "websocket");
    const alice: Awaited<ReturnType<typeof connect>>[] = [];
    // Round-robin hands each new connection to the next worker: a few handshakes per transport reach both.
    for (const transport of ["polling", "websocket"] as const) {
      const pids = new Set<number>();
      for (let i = 0; i < 6 && pids.size < 2; i++) {
        const s = await connect(shared.url, cookie, transport);
        // The same user as HTTP's req.user at login, whichever worker handled the login.
        expect(s.user).toEqual(body.user);
        expect(s.socket.io.engine.transport.name).toBe(transport);
        pids.add(s.pid);
        alice.push(s);
      }
      expect(pids.size).toBe(2);
    }

    const ended = Promise.all(alice.map((s) => nextEvent<{ code: string }>(s.socket, "auth:ended")));
    const logout = await send(shared.url, "/logout", { method: "POST", cookie });
    expect(logout.status).toBe(200);
    expect(await ended).toEqual(alice.map(() => ({ code: "logged_out" })));
    // Among them, the sockets held by the worker that did not handle the logout.
    expect(alice.filter((s) => s.pid !== logout.body.pid).length).toBeGreaterThan(0);
    expect((await bob.socket.timeout(5000).emitWithAck("whoami")) as { user: unknown }).toMatchObject({ user: { name: "Bob" } });
    expect(shared.output()).not.toMatch(/exited|Error/);
  });
});

describe("Node's cluster module with a MemoryStore in each worker (the trap)", () => {
  it("a login made on one worker is unknown to the other: HTTP there sees nobody, and its socket handshakes are refused", { timeout: 60_000 }, async () => {
    const { cookie, body } = await login(separate.url, "alice");
    const seen = await Promise.all([1, 2, 3, 4].map(() => send(separate.url, "/me", { cookie })));
    expect(seen.filter((me) => me.body.pid === body.pid).every((me) => me.body.user?.name === "Alice")).toBe(true);
    expect(seen.filter((me) => me.body.pid !== body.pid).map((me) => me.body.user)).toContain(null);

    const refusals: unknown[] = [];
    let admitted = 0;
    for (let i = 0; i < 4; i++) {
      try {
        const s = await connect(separate.url, cookie, "websocket");
        expect(s.pid).toBe(body.pid);
        admitted++;
      } catch (err) {
        refusals.push({ message: (err as Error).message, data: (err as { data?: unknown }).data });
      }
    }
    expect(admitted).toBeGreaterThan(0);
    expect(refusals.length).toBeGreaterThan(0);
    // What the user sees: logged in, yet the socket is refused for good (reconnect: false) on every other try.
    for (const refusal of refusals) {
      expect(refusal).toEqual({
        message: "The session cookie names a session the store does not have: it expired or was logged out. Log in again.",
        data: { code: "session_missing", reason: "unknown_session", reconnect: false },
      });
    }
  });
});
