// `npm run token -- <user_id>`: prints a development buyer JWT signed with .dev.vars' BUYER_JWT_SECRET.
import { signDevBuyerToken } from "./dev-config";

const TOKEN_TTL_SECONDS = 24 * 60 * 60;
const userId = process.argv[2];
if (!userId) {
  console.error("usage: npm run token -- <user_id>");
  process.exit(2);
}
console.log(await signDevBuyerToken(userId, TOKEN_TTL_SECONDS));
