// Fails when lib/ has an import cycle (what `npx madge --circular --extensions ts lib` reports), type-only
// imports included: a file should import only what stands below it.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const root = new URL("../lib/", import.meta.url).pathname;
const files = readdirSync(root, { recursive: true }).filter((f) => f.endsWith(".ts"));
const imports = (file) =>
  [...readFileSync(join(root, file), "utf8").matchAll(/(?:import|export)[^"']*?from\s+["'](\.[^"']+)["']/g)]
    .map((m) => normalize(join(dirname(file), m[1].replace(/\.js$/, ".ts"))))
    .filter((dep) => existsSync(join(root, dep)));

const state = new Map();
const stack = [];
const cycles = [];
const visit = (file) => {
  state.set(file, "open");
  stack.push(file);
  for (const dep of imports(file)) {
    if (state.get(dep) === "open") cycles.push([...stack.slice(stack.indexOf(dep)), dep].join(" -> "));
    else if (!state.has(dep)) visit(dep);
  }
  stack.pop();
  state.set(file, "done");
};
for (const file of files) if (!state.has(file)) visit(file);

if (cycles.length) {
  console.error(`Import cycles in lib/ (${cycles.length}):\n  ${cycles.join("\n  ")}`);
  process.exit(1);
}
console.log(`No import cycle in lib/ (${files.length} files).`);
