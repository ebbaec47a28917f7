// `npm run token -- <user_id>`: prints a development buyer JWT signed with .dev.vars' BUYER_JWT_SECRET.
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

const TOKEN_TTL_SECONDS = 24 * 60 * 60;
const userId = process.argv[2];
if (!userId) {
  console.error("usage: npm run token -- <user_id>");
  process.exit(2);
}
const vars = readDevVars(existsSync(".dev.vars") ? ".dev.vars" : ".dev.vars.example");
const toml = readFileSync("wrangler.toml", "utf8");
const tomlVar = (name: string) => toml.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m"))?.[1] ?? "";
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({})
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(userId)
  .setIssuer(vars.BUYER_JWT_ISSUER ?? tomlVar("BUYER_JWT_ISSUER"))
  .setAudience(vars.BUYER_JWT_AUDIENCE ?? tomlVar("BUYER_JWT_AUDIENCE"))
  .setIssuedAt(now)
  .setExpirationTime(now + TOKEN_TTL_SECONDS)
  .sign(new TextEncoder().encode(vars.BUYER_JWT_SECRET));
console.log(token);
