/**
 * Longest spec files first, across the projects of vitest.config.ts. Vitest's own order runs the projects one
 * after the other (by name), so the "node-redis" project's files (the store contract, the outage, the example
 * cluster) would start only once every other file had, and finish alone on one of the two workers.
 */
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    // Vitest's order within each project (failed, then unknown, then longest first) breaks ties below.
    const sorted = await super.sort(files);
    const projects = [...new Set(files.map((spec) => spec.project.name))];
    const root = this.ctx.config.root;
    const weight = (spec: TestSpecification) => {
      const file = relative(root, spec.moduleId);
      const own = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`);
      // Failed last time, or never run: first, as vitest does.
      if (!own || own.failed) return Infinity;
      // The same file's longest run in any project: a good guess for this one too.
      return Math.max(...projects.map((name) => this.ctx.cache.getFileTestResults(`${name}:${file}`)?.duration ?? 0));
    };
    const weights = new Map(sorted.map((spec) => [spec, weight(spec)]));
    // A stable sort; Infinity - Infinity would be NaN, hence no subtraction.
    return sorted.sort((a, b) => {
      const [wa, wb] = [weights.get(a)!, weights.get(b)!];
      return wa === wb ? 0 : wa > wb ? -1 : 1;
    });
  }
}
