/** Plain-text output for people: aligned columns, like `wrangler … list`. */

/** A table with a header row; every cell on one line, columns separated by two spaces. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => oneLine(r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => (i === widths.length - 1 ? oneLine(cells[i] ?? "") : oneLine(cells[i] ?? "").padEnd(w)))
      .join("  ")
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join("\n")}\n`;
}

/** `key  value` lines with the keys aligned. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  return `${fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`;
}

/** `2025-11-25T16:14:03.123Z` → `2025-11-25 16:14:03Z`; `null` → `-`. */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === "") return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}
