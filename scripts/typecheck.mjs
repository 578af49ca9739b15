// npm run typecheck: the project's TypeScript (node_modules/typescript, 5.x), named by path: the typescript-6 and
// typescript-next aliases (spec/consumers.spec.ts) also install a `tsc` bin, and which one node_modules/.bin/tsc
// points at depends on the order npm linked them.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
for (const args of [["--noEmit", "-p", "tsconfig.json"], ["--noEmit", "-p", "spec/tsconfig.json"], ["--noEmit", "-p", "e2e/tsconfig.json"], ["-p", "example-nest/tsconfig.json"]]) {
  execFileSync(process.execPath, [tsc, ...args], { stdio: "inherit" });
}
