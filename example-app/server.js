// npm start: runs the example app on PORT (default 3000).
import { createApp } from "./app.js";

const port = Number(process.env.PORT ?? 3000);
const { server } = await createApp();
server.listen(port, () => {
  console.log(`Example app listening on http://localhost:${port} (log in as alice / wonderland or bob / builder)`);
});
