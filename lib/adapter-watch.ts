/**
 * Catching up after this node's adapter lost its subscription (Redis SUBSCRIBE, PostgreSQL LISTEN). Whatever
 * other nodes published meanwhile never reached this node, the endings of sessions among them (a logout through
 * another node sends `endSession` over the adapter). When the subscription is back, `catchUp` runs: the bridge
 * re-reads every live session of this node and ends those that are gone.
 *
 * No adapter (in-memory) or an unknown one: nothing to watch. The Redis Streams adapter reads its stream from
 * where it left off, so it misses nothing and needs no catch-up.
 */
import createDebug from "debug";
import type { Server } from "socket.io";

const debug = createDebug("passport-socketio-bridge:adapter");

/** Runs `catchUp` each time the main namespace's adapter is subscribed again after losing its connection. */
export function watchReconnects(io: Server, catchUp: () => Promise<unknown>): void {
  const kind = onResubscribed(io.of("/").adapter, coalesced(catchUp));
  debug(kind ? "catching up after each %s reconnection" : "no adapter reconnection to watch", kind);
}

/**
 * Calls `fn` once the adapter listens again after a reconnection; names the adapter, or undefined when it is
 * none this knows. Every look at an adapter's own members is here.
 */
function onResubscribed(adapter: object, fn: () => void): string | undefined {
  // @socket.io/redis-adapter 8.3.0, createAdapter and createShardedAdapter: `subClient` is public. Checked on
  // ioredis 5.11.1: "ready" comes (on the next tick) after each reconnection has re-sent its SUBSCRIBE and
  // PSUBSCRIBE (autoResubscribe). On node-redis 5.12.1: "ready" comes once the resubscription is acknowledged.
  // Both also emit it on the first connection, when catching up finds few sessions or none.
  const sub = (adapter as { subClient?: { on?: unknown } }).subClient;
  if (sub && typeof sub.on === "function") {
    sub.on("ready", fn);
    return "Redis";
  }
  // @socket.io/postgres-adapter 0.5.0: `client` (private) is its PubSubClient. When its LISTEN connection ends,
  // it calls its `initClient()` (private) again 1 to 3 s later, which never rejects, and sets its own `client`
  // (private) only once every LISTEN has succeeded. The first call, from its constructor, is not wrapped.
  const pubsub = (adapter as { client?: { initClient?: unknown; client?: unknown } }).client;
  const init = pubsub?.initClient;
  if (pubsub && typeof init === "function") {
    pubsub.initClient = async function (this: typeof pubsub, ...args: unknown[]) {
      const result: unknown = await init.apply(this, args);
      if (this.client) fn();
      return result;
    };
    return "PostgreSQL";
  }
  return undefined;
}

/** One run of `task` at a time; a call during a run asks for one more run after it (not one per call). */
function coalesced(task: () => Promise<unknown>): () => void {
  let running = false;
  let again = false;
  const run = (): void => {
    running = true;
    Promise.resolve()
      .then(task)
      .catch((err: unknown) => debug("catching up failed: %O", err))
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          run();
        }
      });
  };
  return () => {
    if (running) again = true;
    else run();
  };
}
