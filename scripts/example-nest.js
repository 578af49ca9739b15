// npm run example:nest: builds the library if dist/ is missing or stale, then runs example-nest/ (TypeScript,
// with Nest's decorators) through tsx in this same process, so a SIGTERM or Ctrl-C reaches it.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";
import { buildIfNeeded } from "./build-if-needed.js";

if (!(await buildIfNeeded())) {
  console.error("The build failed (see above); the NestJS example needs dist/.");
  process.exit(1);
}
register({ tsconfig: fileURLToPath(new URL("../example-nest/tsconfig.json", import.meta.url)) });
await import("../example-nest/server.ts");
