// npm start: runs the example app on PORT (default 3000), until SIGTERM or Ctrl-C (SIGINT).
//
// Stopping: the first signal closes gracefully (Socket.IO sockets, then the HTTP server, then Redis or PostgreSQL)
// and exits 0. Another Ctrl-C stops at once; a close that takes longer than 10 s exits 1.
import { createApp } from "./app.js";

const port = Number(process.env.PORT ?? 3000);
const app = await createApp();

app.server.on("error", (err) => {
  console.error(err.code === "EADDRINUSE" ? `Port ${port} is in use; set PORT to another one.` : err.message);
  process.exit(1);
});
app.server.listen(port, () => {
  console.log(`Example app listening on http://localhost:${port} (log in as alice / wonderland or bob / builder)`);
});

let stoppingSince = 0;
async function stop(why) {
  if (stoppingSince) {
    // Another Ctrl-C stops at once; not the first one's echo, though (npm passes a Ctrl-C on as well).
    if (why === "SIGINT" && Date.now() - stoppingSince > 1000) process.exit(130);
    return;
  }
  stoppingSince = Date.now();
  console.log(`${why}: closing the example app on port ${port}…`);
  setTimeout(() => {
    console.error("The example app did not close within 10 s; exiting anyway.");
    process.exit(1);
  }, 10_000).unref();
  // What the store can no longer answer while closing (during an outage, say) is not worth a crash now.
  process.on("unhandledRejection", (err) => console.warn(`while closing: ${err?.message ?? err}`));
  try {
    await app.close();
    console.log(`Example app on port ${port} closed.`);
    process.exit(0);
  } catch (err) {
    console.error(`Closing failed: ${err.message}`);
    process.exit(1);
  }
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
// Started by cluster.js: if the primary goes away without a word (SIGKILL), close too rather than linger.
if (process.send) process.on("disconnect", () => stop("primary gone"));
