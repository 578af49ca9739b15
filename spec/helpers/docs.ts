/**
 * The documents as a reader meets them: README.md, SECURITY.md, CHANGELOG.md and the guides in docs/. The specs
 * that run or type-check a code block find it by its marker comment wherever it lives (the README, or the guide
 * it moved to), and the link check follows every relative link and image, fragments included.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** The documents, relative to `dir`: the three top-level ones, and every Markdown file in docs/. */
export function documents(dir: string): string[] {
  const top = ["README.md", "SECURITY.md", "CHANGELOG.md"].filter((file) => existsSync(join(dir, file)));
  const docs = existsSync(join(dir, "docs"))
    ? readdirSync(join(dir, "docs"))
        .filter((file) => file.endsWith(".md"))
        .sort()
        .map((file) => `docs/${file}`)
    : [];
  return [...top, ...docs];
}

/**
 * The code block right after `<!-- marker ... -->` (a fence of the given language), in whichever document has it.
 * Exactly one document may: a marker found twice, or nowhere, throws.
 */
export function codeBlock(root: string, marker: string, lang: string): { file: string; source: string } {
  const pattern = new RegExp(`<!-- ${marker}[ :][^>]*-->\\s*\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, "g");
  const found = documents(root).flatMap((file) =>
    [...readFileSync(join(root, file), "utf8").matchAll(pattern)].map((match) => ({ file, source: match[1]! })),
  );
  if (found.length !== 1) {
    const where = found.map((f) => f.file).join(", ");
    throw new Error(`Expected one "${marker}" code block in the documents, found ${found.length}${where ? ` (${where})` : ""}`);
  }
  return found[0]!;
}

/** Markdown with its fenced code blocks and inline code blanked out (links in code are not links). */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/(`+)[^`\n]*?\1/g, "");
}

/**
 * The anchors GitHub gives a document's headings: lower-cased, punctuation dropped, spaces to hyphens, and
 * `-1`, `-2`, ... for repeats. Also explicit `<a id>`/`<a name>` anchors.
 */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  const text = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const [, heading] of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = heading!
      .replace(/<[^>]+>/g, "")
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const [, id] of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) result.add(id!);
  return result;
}

/** Every link and image target in a document's prose: inline, reference definitions, and HTML src/href. */
export function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const targets = [
    ...[...text.matchAll(/!?\[(?:[^\]]|\][^(])*?\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)].map((m) => m[1]!),
    ...[...text.matchAll(/<(?:img|a|source)\b[^>]*?\b(?:src|href|srcset)="([^"]+)"/g)].map((m) => m[1]!),
  ];
  return targets;
}

/**
 * The relative links (and images) of the documents under `dir` that do not resolve there: a missing file, a path
 * that leaves `dir`, or a fragment no heading of the target document has. Absolute URLs are not followed.
 * Each entry reads "file: target (why)".
 */
export function brokenLinks(dir: string, files: string[] = documents(dir)): string[] {
  const broken: string[] = [];
  const anchorsOf = new Map<string, Set<string>>();
  const anchorsFor = (path: string) => {
    if (!anchorsOf.has(path)) anchorsOf.set(path, anchors(readFileSync(path, "utf8")));
    return anchorsOf.get(path)!;
  };
  for (const file of files) {
    const path = join(dir, file);
    for (const target of linkTargets(readFileSync(path, "utf8"))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue; // https:, mailto:, ...
      const [pathPart = "", fragment] = target.split("#", 2) as [string, string | undefined];
      const resolved = pathPart === "" ? path : resolve(dirname(path), decodeURIComponent(pathPart));
      const inside = relative(dir, resolved);
      if (inside.startsWith(`..${sep}`) || inside === "..") {
        broken.push(`${file}: ${target} (outside the package)`);
        continue;
      }
      const stat = statSync(resolved, { throwIfNoEntry: false });
      if (!stat) {
        broken.push(`${file}: ${target} (no such file)`);
        continue;
      }
      if (fragment !== undefined && stat.isFile() && resolved.endsWith(".md") && !anchorsFor(resolved).has(decodeURIComponent(fragment))) {
        broken.push(`${file}: ${target} (no heading #${fragment})`);
      }
    }
  }
  return broken;
}
