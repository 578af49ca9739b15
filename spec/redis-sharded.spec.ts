/**
 * createShardedAdapter (@socket.io/redis-adapter, Redis >= 7 sharded pub/sub: SPUBLISH/SSUBSCRIBE) under the
 * bridge: two nodes on real Redis, every cross-node flow the Redis pub/sub adapter has (spec/helpers/cross-node.ts).
 */
import { describe } from "vitest";
import { crossNodeTests } from "./helpers/cross-node.js";
import { harnessPerTest } from "./helpers/harness.js";

const start = harnessPerTest();

describe("two nodes on the sharded Redis adapter", () => {
  crossNodeTests(start, "sharded");
});
