/** `npm run example:nest`: the NestJS example on PORT (default 3001), shut down gracefully on SIGTERM or Ctrl-C. */
import { createApp } from "./app.js";

const app = await createApp();
const port = Number(process.env.PORT ?? 3001);
await app.listen(port, "127.0.0.1");
console.log(`NestJS example on http://127.0.0.1:${port} (log in as alice / wonderland or bob / builder)`);
