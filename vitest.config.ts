import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["spec/**/*.spec.ts"],
    globalSetup: ["spec/helpers/global-setup.ts"],
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Socket-level tests measure "within 1 s" deadlines; two files at a time keeps a 2-core machine honest.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
