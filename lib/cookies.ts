/**
 * Reading a raw `Cookie` header the way express-session's parser (`cookie`) does: `name=value` pairs split
 * on `;`, surrounding quotes dropped, values URI-decoded when they decode. Engine.IO requests are raw Node
 * requests, so nothing upstream has parsed them.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Every `[name, value]` pair of a Cookie header, in order, duplicates included. Never throws. */
export function cookiePairs(header: string | undefined): Array<[string, string]> {
  if (typeof header !== "string" || header === "") return [];
  const pairs: Array<[string, string]> = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name === "") continue;
    let value = part.slice(eq + 1).trim();
    if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    pairs.push([name, decode(value)]);
  }
  return pairs;
}

/**
 * The session ids that the header's signed cookies (`s:<id>.<signature>`) claim, signatures unchecked.
 * express-session has checked the one it used; this only tells a loaded session (its id is among these)
 * from one it generated because the cookie was missing, forged or pointed at nothing.
 */
export function claimedSessionIds(header: string | undefined): string[] {
  const ids: string[] = [];
  for (const [, value] of cookiePairs(header)) {
    const dot = value.lastIndexOf(".");
    if (value.startsWith("s:") && dot > 2) ids.push(value.slice(2, dot));
  }
  return ids;
}

function decode(value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The value of a cookie signed the way express-session and cookie-parser sign (`<value>.<HMAC-SHA256,
 * base64, unpadded>`), if one of `secrets` signed it; false otherwise. Constant-time comparison.
 */
export function unsign(signed: string, secrets: readonly string[]): string | false {
  const dot = signed.lastIndexOf(".");
  if (dot < 0) return false;
  const value = signed.slice(0, dot);
  const presented = Buffer.from(signed);
  for (const secret of secrets) {
    const expected = Buffer.from(`${value}.${createHmac("sha256", secret).update(value).digest("base64").replace(/=+$/, "")}`);
    if (expected.length === presented.length && timingSafeEqual(expected, presented)) return value;
  }
  return false;
}
