// Builds dist/ when it is missing or older than the library's sources (npm start runs this first).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const newest = (path) => {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
};
const built = Math.min(...["dist/index.js", "dist/index.cjs", "dist/index.d.ts"].map((f) => newest(f) || 0));
const sources = Math.max(newest("lib"), newest("tsup.config.ts"), newest("package.json"));

if (!built || sources > built) {
  console.log("Building passport-socketio-bridge (dist/ is missing or stale)…");
  const result = spawnSync("npm", ["run", "build"], { stdio: "inherit" });
  process.exit(result.status ?? 1);
}
