// npm start (the example app), npm run example:cluster (--cluster) and npm run example:cookie-session
// (--cookie-session: the same app with its sessions in a signed cookie, as SESSIONS=cookie-session does): builds the
// library if dist/ is missing or stale, then runs the app in this same process. One process, so a SIGTERM or Ctrl-C
// sent to it reaches the server, which closes gracefully. package.json runs it with `exec`: Debian's /bin/sh (dash)
// does not exec the last command of `sh -c` by itself, and a signal would stop the shell and leave the server running.
//
// SKIP_BUILD=1 uses dist/ as it is. The specs set it: `npm test` built dist/ already, and a build (tsup empties
// dist/ first) would pull it from under the spec files running meanwhile.
import { buildIfNeeded } from "./build-if-needed.js";

if (!process.env.SKIP_BUILD && !(await buildIfNeeded())) {
  console.error("The build failed (see above); the example app needs dist/.");
  process.exit(1);
}
if (process.argv.includes("--cookie-session")) process.env.SESSIONS = "cookie-session";
await import(process.argv.includes("--cluster") ? "../example-app/cluster.js" : "../example-app/server.js");
