import { base64url } from "jose";

/**
 * Page cursors: a listing's position (a few strings and numbers) as unpadded base64url of UTF-8 JSON,
 * opaque to clients. One codec for every keyset listing; each listing checks the shape it gets back.
 * Cursors handed out before this codec (btoa of ASCII JSON) decode to the same values.
 */
export function encodeCursor(position: readonly (string | number)[]): string {
  return base64url.encode(JSON.stringify(position));
}

/** The position a cursor holds, or undefined when the text is not base64url of a JSON array. */
export function decodeCursor(text: string): unknown[] | undefined {
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(base64url.decode(text)));
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    // Not base64url, not UTF-8 JSON: not a cursor.
    return undefined;
  }
}
