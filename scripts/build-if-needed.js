// Builds dist/ when it is missing or older than the library's sources. Used by scripts/example-app.js (npm start,
// npm run example:cluster) in-process; `node scripts/build-if-needed.js` runs it alone.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

const newest = (path) => {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
};

/**
 * Runs `npm run build` if dist/ is missing or stale; resolves to false if the build failed. A SIGTERM or Ctrl-C
 * meanwhile stops the build too, and this process with it.
 */
export async function buildIfNeeded() {
  const at = (path) => join(root, path);
  const built = Math.min(...["dist/index.js", "dist/index.cjs", "dist/index.d.ts"].map((f) => newest(at(f))));
  const sources = Math.max(newest(at("lib")), newest(at("tsup.config.ts")), newest(at("package.json")));
  if (built && sources <= built) return true;
  console.log("Building passport-socketio-bridge (dist/ is missing or stale)…");
  // A process group of its own (npm, its shell, tsup), so that a signal stops all of it.
  const build = spawn("npm", ["run", "build"], { cwd: root, stdio: "inherit", detached: process.platform !== "win32" });
  const stop = (signal) => {
    try {
      process.kill(-build.pid, signal);
    } catch {
      build.kill(signal);
    }
    process.exit(1);
  };
  process.on("SIGTERM", stop).on("SIGINT", stop);
  const code = await new Promise((resolve) => build.on("exit", (status) => resolve(status)).on("error", () => resolve(1)));
  process.off("SIGTERM", stop).off("SIGINT", stop);
  return code === 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exit((await buildIfNeeded()) ? 0 : 1);
