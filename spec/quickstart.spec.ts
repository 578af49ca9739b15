/**
 * examples/quickstart (JavaScript) and examples/quickstart-ts (strict TypeScript), run as a new user runs them:
 * each copied on its own outside the repository, its `file:../..` dependency pointed at the library, `npm install`
 * from its own package.json, the TypeScript one type-checked with its own tsconfig.json, then `npm start` on a free
 * PORT. The two ways a user gets the library, one each: the JavaScript one links the repository (`file:<repo>`, what
 * `file:../..` is in a clone: npm links the folder, whose dist/ and node_modules/ serve it), the TypeScript one
 * installs the packed package (`npm pack` of dist/, as the registry would have it; its declarations are what
 * `tsc` checks). A login over HTTP (the form's POST), then a real socket.io-client
 * with the session cookie: the server tells the socket its user. A wrong password gets no session, and its socket
 * is refused.
 *
 * npm installs with --prefer-offline: from npm's cache (filled by `npm ci` here), the registry for what it lacks.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { freePort } from "./helpers/redis-server.js";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLES = ["quickstart", "quickstart-ts"] as const;
type Example = (typeof EXAMPLES)[number];

interface Running {
  url: string;
  child: ChildProcess;
  output: () => string;
}

let work: string;
const dirs = new Map<Example, string>();
const typecheck = new Map<Example, { code: number; output: string }>();
const running = new Map<Example, Running>();
const sockets: ClientSocket[] = [];
const timings: Record<string, number> = {};

beforeAll(async () => {
  if (!existsSync(join(root, "dist", "index.js"))) throw new Error("dist/ is missing: `npm test` builds it first (npm run build).");
  const started = Date.now();
  work = mkdtempSync(join(tmpdir(), "psb-quickstart-"));
  // The package as the registry would have it: npm pack of dist/ (built already: no prepack here).
  const pack = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: root, maxBuffer: 1 << 24 });
  const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[$/m))) as Array<{ filename: string }>;
  const tarball = join(work, packed!.filename);
  timings.pack = Date.now() - started;

  // Both at once: each mostly waits on npm, then on tsc or its server.
  await Promise.all(
    EXAMPLES.map(async (name) => {
      const t0 = Date.now();
      const dir = join(work, name);
      // A clean copy: what git would have (no node_modules/ or dist/ from a local run).
      cpSync(join(root, "examples", name), dir, {
        recursive: true,
        filter: (source) => !/[\\/](node_modules|dist)$/.test(source) && !source.endsWith("package-lock.json"),
      });
      const manifestPath = join(dir, "package.json");
      const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { dependencies: Record<string, string> };
      // The contract with the repository's layout: the example depends on the library by path.
      expect(manifest.dependencies["passport-socketio-bridge"]).toBe("file:../..");
      manifest.dependencies["passport-socketio-bridge"] = `file:${name === "quickstart" ? root : tarball}`;
      writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
      await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, maxBuffer: 1 << 24 });
      timings[`install ${name}`] = Date.now() - t0;
      dirs.set(name, dir);
      const t1 = Date.now();
      // The TypeScript one: its own TypeScript and strict tsconfig.json, as `npm run typecheck` runs them, beside
      // `npm start` (which compiles with the same tsconfig.json, then runs dist/server.js).
      const [checked, server] = await Promise.all([name === "quickstart-ts" ? npmRun(dir, "typecheck") : undefined, start(dir)]);
      if (checked) typecheck.set(name, checked);
      running.set(name, server);
      timings[`${name === "quickstart-ts" ? "typecheck and " : ""}npm start ${name}`] = Date.now() - t1;
    }),
  );
  timings.total = Date.now() - started;
  console.log(`quickstart.spec timings (ms): ${JSON.stringify(timings)}`);
}, 180_000);

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await Promise.all([...running.values()].map(({ child }) => stop(child)));
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `npm run <script>`, its exit code and output. */
async function npmRun(cwd: string, script: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("npm", ["run", "--silent", script], { cwd, maxBuffer: 1 << 24 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

/** `npm start` with PORT set, in a process group of its own; resolves once it says it is listening. */
async function start(cwd: string): Promise<Running> {
  const port = await freePort();
  const child = spawn("npm", ["start"], { cwd, env: { ...process.env, PORT: String(port) }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const listening = new Promise<void>((resolveListening, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes(`http://localhost:${port} `)) resolveListening();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code, signal) => reject(new Error(`npm start exited (${code ?? signal}):\n${output}`)));
  });
  await listening;
  return { url: `http://localhost:${port}`, child, output: () => output };
}

/** SIGTERM to npm and everything it started (the example's node process); resolves once npm has exited. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  try {
    process.kill(-child.pid!, "SIGTERM");
  } catch {
    child.kill("SIGTERM");
  }
  await exited;
}

/** POST /login as the page's form does (urlencoded username and password), not following the redirect. */
function login(url: string, username: string, password: string): Promise<Response> {
  return fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username, password }), redirect: "manual" });
}

function socket(url: string, transport: "websocket" | "polling", cookie?: string): ClientSocket {
  const client = ioClient(url, { forceNew: true, transports: [transport], reconnection: false, extraHeaders: cookie ? { cookie } : {} });
  sockets.push(client);
  return client;
}

describe("examples/quickstart-ts", () => {
  it("type-checks with its own strict tsconfig.json (npm run typecheck)", () => {
    expect(typecheck.get("quickstart-ts")).toEqual({ code: 0, output: "" });
    const tsconfig = readFileSync(join(dirs.get("quickstart-ts")!, "tsconfig.json"), "utf8");
    expect(tsconfig).toMatch(/"strict": true/);
    expect(tsconfig).toMatch(/"esModuleInterop": true/);
  });
});

describe.each(EXAMPLES)("examples/%s, installed from a clean copy and run with npm start", (name) => {
  it(`uses the library ${name === "quickstart" ? "linked from the repository" : "installed from the packed package"}`, () => {
    const installed = join(dirs.get(name)!, "node_modules", "passport-socketio-bridge");
    if (name === "quickstart") expect(realpathSync(installed)).toBe(realpathSync(root));
    else expect([lstatSync(installed).isSymbolicLink(), existsSync(join(installed, "dist", "index.js"))]).toEqual([false, true]);
  });


  it("serves the page: the login form and the Socket.IO client", async () => {
    const { url } = running.get(name)!;
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<form method="post" action="\/login">/);
    expect(html).toMatch(/name="username"/);
    expect(html).toMatch(/name="password"/);
    expect(html).toMatch(/<script src="\/socket\.io\/socket\.io\.js"><\/script>/);
    const client = await fetch(`${url}/socket.io/socket.io.js`);
    expect(client.status).toBe(200);
    await client.body?.cancel();
  });

  it.for(["websocket", "polling"] as const)("alice / wonderland logs in over HTTP, and her socket's user is alice (%s)", async (transport) => {
    const { url } = running.get(name)!;
    const res = await login(url, "alice", "wonderland");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/");
    const whoami = nextEvent<string>(socket(url, transport, cookieFrom(res)), "whoami");
    expect(await whoami).toBe("alice");
  });

  it("refuses a wrong password: no session, and a socket without one is refused", async () => {
    const { url } = running.get(name)!;
    const res = await login(url, "alice", "wrong");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/?error=login");
    expect(res.headers.get("set-cookie")).toBeNull();
    const refusal = await nextEvent<Error & { data: { code: string; reason: string } }>(socket(url, "websocket"), "connect_error");
    expect(refusal.data).toMatchObject({ code: "session_missing", reason: "no_cookie" });
  });
});
