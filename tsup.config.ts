import { rmSync } from "node:fs";
import { defineConfig } from "tsup";

// The two builds below run side by side into dist/, so neither may clean it (tsup's clean also deletes the
// other's declarations): it is emptied once, here, before both.
rmSync("dist", { recursive: true, force: true });

export default defineConfig([
  {
    entry: { index: "lib/index.ts", compat: "lib/compat.ts", nest: "lib/nest.ts" },
    format: ["esm", "cjs"],
    dts: true,
    shims: true,
    target: "node20",
    platform: "node",
    sourcemap: true,
    clean: false,
    // Shared chunks, so the entry points share one copy of the error classes (instanceof works across them).
    splitting: true,
    // Nest stays the app's (and only the /nest entry loads it).
    external: [/^@nestjs\//],
  },
  {
    // The client half: for browsers and Node clients alike, with nothing of the server in it.
    entry: { client: "lib/client.ts" },
    format: ["esm", "cjs"],
    dts: true,
    target: "es2020",
    platform: "neutral",
    sourcemap: true,
    clean: false,
    splitting: false,
    external: ["socket.io-client"],
  },
]);
