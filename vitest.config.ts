import { defineConfig } from "vitest/config";
import { LongestFirstSequencer } from "./spec/helpers/sequencer.js";

/**
 * What the "node-redis" project runs again with the harness's Redis store on connect-redis 9 + node-redis 5 (the
 * default: connect-redis 8 + ioredis 5): the store contract, not whole files.
 */
const STORE_SPECS = [
  // Reads, writes, touches, destroys, expiry by TTL, renewals across nodes, the copy handshakes share.
  "spec/store-contract.spec.ts",
  // A Redis outage under a live app: the client's own reconnection and errors.
  "spec/outage.spec.ts",
  // The example app on two processes, its sessions on connect-redis 9 + node-redis (REDIS_CLIENT).
  "spec/example-cluster.spec.ts",
];

export default defineConfig({
  test: {
    globalSetup: ["spec/helpers/global-setup.ts"],
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Socket-level tests measure "within 1 s" deadlines; two files at a time keeps a 2-core machine honest.
    // The projects below share these two workers.
    maxWorkers: 2,
    reporters: ["default"],
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        // Every spec, with the harness's Redis store on connect-redis 8 + ioredis (or PSB_REDIS_CLIENT).
        extends: true,
        test: { name: "default", include: ["spec/**/*.spec.ts"] },
      },
      {
        // The store specs on connect-redis 9 + node-redis 5: `vitest run --project node-redis`.
        extends: true,
        test: { name: "node-redis", include: STORE_SPECS, env: { PSB_REDIS_CLIENT: "node-redis" } },
      },
    ],
  },
});
