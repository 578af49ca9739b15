import { defineConfig } from "vitest/config";

/**
 * `npm run test:install`: installs the package the way a user does before it is published, from a git URL of a
 * clone (npm clones it, installs its dev dependencies and runs `prepare`). About a minute on an idle machine, so
 * it runs apart from `npm test`; .ci/run runs it after.
 */
export default defineConfig({
  test: {
    include: ["spec/install/**/*.install.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 900_000,
  },
});
