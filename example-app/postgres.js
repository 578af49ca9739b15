// postgres.js: sessions (connect-pg-simple) and the Socket.IO adapter (@socket.io/postgres-adapter) on one
// PostgreSQL database. Every node runs this with the same DATABASE_URL.
import pg from "pg";
import session from "express-session";
import connectPgSimple from "connect-pg-simple";
import { createAdapter } from "@socket.io/postgres-adapter";

// connect-pg-simple's table (its table.sql) and the adapter's, created once, under a lock: nodes that start
// together would otherwise race createTableIfMissing, and the loser's store fails every query until restarted.
const TABLES = `
  SELECT pg_advisory_xact_lock(hashtext('passport-socketio-bridge tables'));
  CREATE TABLE IF NOT EXISTS "session" (
    "sid" varchar NOT NULL COLLATE "default" PRIMARY KEY,
    "sess" json NOT NULL,
    "expire" timestamp(6) NOT NULL
  );
  CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON "session" ("expire");
  CREATE TABLE IF NOT EXISTS socket_io_attachments (
    id bigserial UNIQUE,
    created_at timestamptz DEFAULT NOW(),
    payload bytea
  );
`;

export async function usePostgres(connectionString, log = console.error) {
  // Two pools: the adapter keeps one client of its own checked out for LISTEN, for good.
  const sessionPool = new pg.Pool({ connectionString });
  const adapterPool = new pg.Pool({ connectionString });
  // Idle clients that lose the server emit "error" on their pool; pg connects again on the next query.
  sessionPool.on("error", (err) => log(`Postgres (sessions): ${err.message}`));
  adapterPool.on("error", (err) => log(`Postgres (adapter): ${err.message}`));
  // The adapter's LISTEN client has no "error" listener of its own: without this one, a Postgres restart
  // crashes the process ("Connection terminated unexpectedly"). The adapter then listens again by itself.
  adapterPool.on("connect", (client) => client.on("error", (err) => log(`Postgres (adapter): ${err.message}`)));

  await sessionPool.query(TABLES);
  const PgStore = connectPgSimple(session);
  const store = new PgStore({ pool: sessionPool, createTableIfMissing: true });
  return {
    store,
    adapter: createAdapter(adapterPool, { errorHandler: (err) => log(`Postgres (adapter): ${err.message}`) }),
    sessionPool,
    adapterPool,
    /** After io.close(). At most 2 s: after an outage, adapterPool.end() waits forever for the dead LISTEN client. */
    async close() {
      store.close();
      const ended = Promise.all([sessionPool.end(), adapterPool.end()]);
      await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    },
  };
}
