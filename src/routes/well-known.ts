import { createRoute, z } from "@hono/zod-openapi";
import { publicJwks } from "../auth/qr-token";
import { createRouter } from "../http/context";
import { json } from "../http/schemas";

/** Verifiers may cache the key set this long; a rotation keeps the previous key published for longer. */
const JWKS_MAX_AGE_SECONDS = 300;

const PublicJwkSchema = z
  .object({
    kty: z.literal("OKP"),
    crv: z.literal("Ed25519"),
    x: z.string().openapi({ description: "The public key, base64url" }),
    kid: z.string().openapi({ example: "qr-2026-11" }),
    alg: z.literal("EdDSA"),
    use: z.literal("sig"),
  })
  .openapi("PublicJwk");

export const wellKnownRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/.well-known/jwks.json",
    operationId: "getJwks",
    tags: ["Tickets"],
    summary: "Public keys that verify QR tokens",
    description:
      "Public. The current QR signing key and, during a rotation, the previous one; tokens name theirs in " +
      "the `kid` header. Cacheable for a few minutes.",
    responses: {
      200: json(z.object({ keys: z.array(PublicJwkSchema) }).openapi("Jwks"), "The JSON Web Key Set"),
    },
  }),
  async (c) => {
    const jwks = await publicJwks(c.get("config"));
    return c.json(jwks, 200, { "cache-control": `public, max-age=${JWKS_MAX_AGE_SECONDS}` });
  },
);
