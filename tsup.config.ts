import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "lib/index.ts", compat: "lib/compat.ts" },
  format: ["esm", "cjs"],
  dts: true,
  shims: true,
  target: "node20",
  platform: "node",
  sourcemap: true,
  clean: true,
  // Shared chunks, so both entry points share one copy of the error classes (instanceof works across them).
  splitting: true,
});
