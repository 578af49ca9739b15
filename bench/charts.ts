/**
 * The pictures above docs/benchmarks.md's tables, drawn from those tables (one source for both): CPU per
 * handshake, store commands per handshake, and heap per connected socket, for each setup. `npm run bench` redraws
 * them after writing the tables; `npx tsx bench/charts.ts` redraws them from the file as it is.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BENCHMARKS = join(root, "docs", "benchmarks.md");

interface Bar {
  label: string;
  value: number;
}
interface Group {
  name: string;
  bars: Bar[];
}
export interface Chart {
  file: string;
  title: string;
  unit: string;
  groups: Group[];
}

const COLORS = ["#2f6fb0", "#8fb3dc", "#e08a2c", "#f2c28c"];
const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A horizontal bar chart, a group of bars per setup; plain SVG text, the same bytes for the same figures. */
export function svg(chart: Chart): string {
  // (About 6.6 px per character of 12 px system-ui: the longest setup name fits.)
  const labelWidth = Math.ceil(Math.max(...chart.groups.map((g) => g.name.length)) * 6.6) + 16;
  const barArea = 360;
  const rowHeight = 18;
  const groupGap = 10;
  const top = 46;
  const max = Math.max(...chart.groups.flatMap((g) => g.bars.map((b) => b.value)), 1e-9);
  const series = [...new Set(chart.groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const parts: string[] = [];
  let y = top;
  for (const group of chart.groups) {
    const height = group.bars.length * rowHeight;
    parts.push(`<text x="${labelWidth - 8}" y="${y + height / 2 + 4}" text-anchor="end">${escape(group.name)}</text>`);
    for (const bar of group.bars) {
      const width = Math.max(1, Math.round((bar.value / max) * barArea));
      const color = COLORS[series.indexOf(bar.label) % COLORS.length];
      parts.push(`<rect x="${labelWidth}" y="${y + 2}" width="${width}" height="${rowHeight - 4}" fill="${color}"/>`);
      parts.push(`<text x="${labelWidth + width + 6}" y="${y + rowHeight - 5}">${formatValue(bar.value)} ${escape(chart.unit)}</text>`);
      y += rowHeight;
    }
    y += groupGap;
  }
  const legend = series.length > 1
    ? series.map((name, i) => `<rect x="${labelWidth + i * 130}" y="24" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${labelWidth + i * 130 + 14}" y="33">${escape(name)}</text>`).join("")
    : "";
  const width = Math.max(labelWidth + barArea + 110, labelWidth + series.length * 130 + 20);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 6}" viewBox="0 0 ${width} ${y + 6}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="16" font-size="14" font-weight="bold">${escape(chart.title)}</text>`,
    legend,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

function formatValue(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** The markdown table that follows `heading`: its header cells and its rows, as arrays of cells. */
function tableAfter(markdown: string, heading: string): { header: string[]; rows: string[][] } {
  const at = markdown.indexOf(`\n${heading}\n`);
  if (at < 0) return { header: [], rows: [] };
  const lines: string[][] = [];
  for (const line of markdown.slice(at + heading.length + 2).split("\n")) {
    if (!line.startsWith("|")) {
      if (lines.length) break;
      continue;
    }
    lines.push(line.slice(1, -1).split("|").map((cell) => cell.trim()));
  }
  return { header: lines[0] ?? [], rows: lines.slice(2) };
}

const number = (cell: string | undefined) => Number.parseFloat(cell ?? "");

/** The three charts, from the Handshakes and Memory tables of docs/benchmarks.md (columns found by their names). */
export function chartsOf(markdown: string): Chart[] {
  const handshakes = tableAfter(markdown, "## Handshakes");
  const memory = tableAfter(markdown, "## Memory and reconnect storms");
  const column = (name: string) => handshakes.header.indexOf(name);
  /** For each setup, a bar per transport of each column named (labelled "<transport><suffix>"). */
  const bySetup = (columns: Array<[name: string, suffix: string]>): Group[] => {
    const groups: Group[] = [];
    for (const row of handshakes.rows) {
      const name = row[0]!;
      let group = groups.find((g) => g.name === name);
      if (!group) groups.push((group = { name, bars: [] }));
      for (const [header, suffix] of columns) {
        if (column(header) >= 0) group.bars.push({ label: `${row[1]}${suffix}`, value: number(row[column(header)]) });
      }
    }
    // Transports side by side, first window before warm.
    for (const group of groups) group.bars.sort((x, y) => x.label.localeCompare(y.label));
    return groups;
  };
  return [
    {
      file: "bench-cpu.svg",
      title: "Server CPU per handshake: a new process's first window, and warm (lower is better)",
      unit: "µs",
      groups: bySetup([["server CPU / handshake", ""], ["warm: CPU / handshake", ", warm"]]),
    },
    { file: "bench-store.svg", title: "Store commands per handshake (lower is better)", unit: "", groups: bySetup([["store commands / handshake", ""]]) },
    {
      file: "bench-heap.svg",
      title: "Heap per connected socket (lower is better)",
      unit: "KB",
      groups: memory.rows.map((row) => ({ name: row[0]!, bars: [{ label: "websocket", value: number(row[1]) }] })),
    },
  ];
}

/** Redraws docs/images/bench-*.svg from docs/benchmarks.md. */
export function drawCharts(file = BENCHMARKS): string[] {
  const charts = chartsOf(readFileSync(file, "utf8"));
  for (const chart of charts) writeFileSync(join(dirname(file), "images", chart.file), svg(chart));
  return charts.map((chart) => chart.file);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(`drew ${drawCharts().join(", ")}`);
}
