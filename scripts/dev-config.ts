// The local development configuration as wrangler sees it: secrets from .dev.vars (or the example when
// `npm run dev` has not created it yet) over the [vars] of wrangler.toml. For Node-side dev tools only.
import { existsSync, readFileSync } from "node:fs";
import { SignJWT } from "jose";

/** KEY=VALUE lines, as wrangler reads .dev.vars. */
function readDevVars(path: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/);
    if (match?.[1] && match[2] !== undefined) vars[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

const devVars = readDevVars(existsSync(".dev.vars") ? ".dev.vars" : ".dev.vars.example");
const toml = readFileSync("wrangler.toml", "utf8");

/** A development setting: .dev.vars first, then wrangler.toml's [vars], else "". */
export function devVar(name: string): string {
  return devVars[name] ?? toml.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m"))?.[1] ?? "";
}

/** A buyer JWT as the development identity provider (HS256 with BUYER_JWT_SECRET) would issue it. */
export function signDevBuyerToken(userId: string, ttlSeconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuer(devVar("BUYER_JWT_ISSUER"))
    .setAudience(devVar("BUYER_JWT_AUDIENCE"))
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(new TextEncoder().encode(devVar("BUYER_JWT_SECRET")));
}
