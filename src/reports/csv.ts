// RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled; lines end in CRLF.
// Fields that a spreadsheet would run as a formula are prefixed with a quote (CSV injection).

const NEEDS_QUOTING = /[",\r\n]/;
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  const safe = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTING.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function csvLine(fields: readonly (string | number | null | undefined)[]): string {
  return `${fields.map(csvField).join(",")}\r\n`;
}

/**
 * Streams CSV from keyset-paged reads: `nextPage(after)` returns up to one page of lines and the cursor to
 * continue from (undefined at the end). Memory holds one page, however long the file.
 */
export function csvStream<C>(
  header: readonly string[],
  nextPage: (after: C | undefined) => Promise<{ lines: string[]; next: C | undefined }>,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cursor: C | undefined;
  let started = false;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(csvLine(header)));
        return;
      }
      if (done) return;
      const page = await nextPage(cursor);
      if (page.lines.length > 0) controller.enqueue(encoder.encode(page.lines.join("")));
      cursor = page.next;
      if (cursor === undefined) {
        done = true;
        controller.close();
      }
    },
  });
}
