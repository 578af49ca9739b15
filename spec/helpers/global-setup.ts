import type { TestProject } from "vitest/node";
import { startRedis, type RedisServer } from "./redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

// Every project of the run (vitest.config.ts) calls this setup; they share one redis-server, stopped after the last.
const SHARED = Symbol.for("passport-socketio-bridge.spec.redis-server");
type Shared = { server: Promise<RedisServer>; users: number };

/** One Redis for the whole run: REDIS_URL when set, else a redis-server of our own. */
export default async function setup(project: TestProject) {
  if (process.env.REDIS_URL) {
    project.provide("redisUrl", process.env.REDIS_URL);
    return;
  }
  const holder = globalThis as { [SHARED]?: Shared };
  const shared = (holder[SHARED] ??= { server: startRedis(), users: 0 });
  shared.users++;
  const redis = await shared.server;
  project.provide("redisUrl", redis.url);
  return async () => {
    if (--shared.users > 0) return;
    delete holder[SHARED];
    await redis.close();
  };
}
