/**
 * Catching up after this node's adapter lost its subscription (Redis SUBSCRIBE, PostgreSQL LISTEN). Whatever
 * other nodes published meanwhile never reached this node, the endings of sessions among them (a logout through
 * another node sends `endSession` over the adapter). When the subscription is back, `catchUp` runs: the bridge
 * re-reads every live session of this node and ends those that are gone.
 *
 * No adapter (in-memory) or an unknown one: nothing to watch. The Redis Streams adapter (0.3) is one: it sends
 * serverSideEmit over pub/sub on a subscriber it keeps private, so its nodes miss commands sent while that drops
 * and get no catch-up (revalidateEveryMs bounds it; docs/deployment.md).
 */
import createDebug from "debug";
import type { Server } from "socket.io";
import { onResubscribed } from "./seams.js";

const debug = createDebug("passport-socketio-bridge:adapter");

/** Runs `catchUp` each time the main namespace's adapter is subscribed again after losing its connection. */
export function watchReconnects(io: Server, catchUp: () => Promise<unknown>): void {
  const kind = onResubscribed(io.of("/").adapter, coalesced(catchUp));
  debug(kind ? "catching up after each %s reconnection" : "no adapter reconnection to watch", kind);
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
