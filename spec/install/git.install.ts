/**
 * Installing from a git URL, as a user does before the package is published: the repository's files as git sees
 * them (tracked, and new files not ignored: no dist/, no node_modules/) are committed to a fresh repository, and
 * `npm install git+file://<that repository>` runs in a fresh app. npm clones it, installs its dependencies and
 * dev dependencies, runs its `prepare` script (which builds dist/), and installs what `npm pack` would ship,
 * with the package's peers (socket.io, express-session, passport) from the registry or npm's cache. The app then
 * imports it by name from an ES module and requires it from CommonJS.
 */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const NAME = "passport-socketio-bridge";
let work: string;
let app: string;
let installSeconds: number;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "psb-git-install-"));
  const repo = join(work, "repo");
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, maxBuffer: 1 << 24 });
  for (const file of stdout.split("\0").filter(Boolean)) {
    if (!statSync(join(root, file), { throwIfNoEntry: false })?.isFile()) continue; // deleted, or the node_modules link
    mkdirSync(dirname(join(repo, file)), { recursive: true });
    copyFileSync(join(root, file), join(repo, file));
  }
  const git = (...args: string[]) => run("git", ["-c", "user.name=spec", "-c", "user.email=spec@example.com", "-c", "commit.gpgsign=false", ...args], { cwd: repo });
  await git("init", "-q");
  await git("add", "-A");
  await git("commit", "-q", "-m", "a clone");

  app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "git-app", version: "1.0.0", private: true }));
  const started = performance.now();
  // npm's cache first (CI has just filled it with `npm ci`); the registry for what it lacks.
  const env = { ...process.env, npm_config_prefer_offline: "true", npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" };
  await run("npm", ["install", `git+${pathToFileURL(repo).href}`], { cwd: app, env, maxBuffer: 1 << 24, timeout: 840_000 });
  installSeconds = (performance.now() - started) / 1000;
  console.log(`npm install git+file://… took ${installSeconds.toFixed(1)} s`);
}, 900_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("npm install git+file://<a clone>", () => {
  it("builds dist/ on install (prepare) and installs only what the package ships", () => {
    const installed = join(app, "node_modules", NAME);
    for (const file of ["dist/index.js", "dist/index.cjs", "dist/index.d.ts", "dist/client.js", "README.md", "SECURITY.md", "docs/README.md"]) {
      expect(existsSync(join(installed, file)), file).toBe(true);
    }
    // "files" applies: no sources, specs or scripts.
    for (const dir of ["lib", "spec", "scripts"]) expect(existsSync(join(installed, dir)), dir).toBe(false);
    const dependency = JSON.parse(readFileSync(join(app, "package.json"), "utf8")).dependencies[NAME];
    expect(dependency).toMatch(/^git\+file:/);
  });

  const script = `const io = new Server();
const auth = bridge(io, { session: session({ secret: "s", resave: false, saveUninitialized: false }) });
console.log(JSON.stringify({
  room: auth.userRoom(7),
  data: new RefusalError("store_unavailable").data,
  compat: typeof authorize,
  entry,
}));
`;
  const expected = (entry: string) => ({
    room: "user:7",
    data: { code: "store_unavailable", reconnect: true },
    compat: "function",
    entry: join(app, "node_modules", NAME, entry),
  });

  it("imports by name from an ES module", async () => {
    writeFileSync(
      join(app, "main.mjs"),
      `import { bridge, RefusalError } from "${NAME}";
import { authorize } from "${NAME}/compat";
import { Server } from "socket.io";
import session from "express-session";
import { fileURLToPath } from "node:url";
const entry = fileURLToPath(import.meta.resolve("${NAME}"));
${script}`,
    );
    const { stdout } = await run(process.execPath, ["main.mjs"], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(expected("dist/index.js"));
  });

  it("requires by name from CommonJS", async () => {
    writeFileSync(
      join(app, "main.cjs"),
      `const { bridge, RefusalError } = require("${NAME}");
const { authorize } = require("${NAME}/compat");
const { Server } = require("socket.io");
const session = require("express-session");
const entry = require.resolve("${NAME}");
${script}`,
    );
    const { stdout } = await run(process.execPath, ["main.cjs"], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(expected("dist/index.cjs"));
  });
});
