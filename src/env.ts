import { z } from "zod";
import type { TicketObject } from "./objects/ticket";
import type { WalletObject } from "./objects/wallet";
import type { EventMessage } from "./queues/messages";

/** The Worker's bindings, as declared in wrangler.toml (vars and secrets arrive as strings). */
export interface Env {
  DB: D1Database;
  TICKETS: DurableObjectNamespace<TicketObject>;
  WALLETS: DurableObjectNamespace<WalletObject>;
  EVENTS: Queue<EventMessage>;
  EXPORTS: R2Bucket;
  ENVIRONMENT?: string;
  CURRENCY?: string;
  ORDER_HOLD_SECONDS?: string;
  BUYER_JWT_ISSUER?: string;
  BUYER_JWT_AUDIENCE?: string;
  BUYER_JWKS_URL?: string;
  BUYER_JWT_SECRET?: string;
  OPERATOR_JWT_SECRET?: string;
  WALLET_REF_SECRET?: string;
  SERVICE_ISSUER?: string;
  PAYMENT_WEBHOOK_SECRET?: string;
  QR_SIGNING_JWK?: string;
  QR_SIGNING_JWK_PREVIOUS?: string;
  TOPUP_MIN_CENTS?: string;
  TOPUP_MAX_CENTS?: string;
  PUBLIC_BASE_URL?: string;
  REFUND_WINDOW_SECONDS?: string;
  REFUND_APPROVAL_CENTS?: string;
  MAX_PENDING_UNITS_PER_BUYER?: string;
}

const intFromString = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** Secrets must be long enough that a typo or a placeholder is caught at the first request. */
const MIN_SECRET_LENGTH = 32;

const configSchema = z.object({
  environment: z.enum(["development", "test", "production"]).default("production"),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/)
    .default("EUR"),
  orderHoldSeconds: intFromString(900, 10, 86_400),
  buyerJwtIssuer: z.string().min(1),
  buyerJwtAudience: z.string().min(1),
  buyerJwksUrl: z.url().optional(),
  buyerJwtSecret: z.string().min(MIN_SECRET_LENGTH).optional(),
  operatorJwtSecret: z.string().min(MIN_SECRET_LENGTH),
  /** Keys the tills' opaque wallet references, apart from the operator secret so either can rotate alone. */
  walletRefSecret: z.string().min(MIN_SECRET_LENGTH),
  serviceIssuer: z.string().min(1),
  paymentWebhookSecret: z.string().startsWith("whsec_").optional(),
  qrSigningJwk: z.string().optional(),
  qrSigningJwkPrevious: z.string().optional(),
  topupMinCents: intFromString(500, 1, 10_000_000),
  topupMaxCents: intFromString(50_000, 1, 10_000_000),
  publicBaseUrl: z.url().default("http://localhost:8787"),
  /** A POS deduction older than this cannot be refunded from a till. */
  refundWindowSeconds: intFromString(86_400, 60, 366 * 86_400),
  /** A refund above this needs role `supervisor` or `admin`. */
  refundApprovalCents: intFromString(5_000, 0, 10_000_000),
  /** Units one buyer may hold in unpaid orders at once: stock cannot be hoarded without paying. */
  maxPendingUnitsPerBuyer: intFromString(40, 1, 10_000),
});

export type Config = z.infer<typeof configSchema>;

const emptyToUndefined = (value: string | undefined) =>
  value === undefined || value === "" ? undefined : value;

const parsedConfigs = new WeakMap<Env, Config>();

/**
 * Parses the bindings once per isolate (the env object is stable for an isolate's lifetime).
 * A misconfigured deployment fails loudly here instead of deep inside a request.
 */
export function loadConfig(env: Env): Config {
  const cached = parsedConfigs.get(env);
  if (cached) return cached;
  const config = configSchema.parse({
    environment: emptyToUndefined(env.ENVIRONMENT),
    currency: emptyToUndefined(env.CURRENCY),
    orderHoldSeconds: emptyToUndefined(env.ORDER_HOLD_SECONDS),
    buyerJwtIssuer: env.BUYER_JWT_ISSUER,
    buyerJwtAudience: env.BUYER_JWT_AUDIENCE,
    buyerJwksUrl: emptyToUndefined(env.BUYER_JWKS_URL),
    buyerJwtSecret: emptyToUndefined(env.BUYER_JWT_SECRET),
    operatorJwtSecret: env.OPERATOR_JWT_SECRET,
    walletRefSecret: env.WALLET_REF_SECRET,
    serviceIssuer: env.SERVICE_ISSUER,
    paymentWebhookSecret: emptyToUndefined(env.PAYMENT_WEBHOOK_SECRET),
    qrSigningJwk: emptyToUndefined(env.QR_SIGNING_JWK),
    qrSigningJwkPrevious: emptyToUndefined(env.QR_SIGNING_JWK_PREVIOUS),
    topupMinCents: emptyToUndefined(env.TOPUP_MIN_CENTS),
    topupMaxCents: emptyToUndefined(env.TOPUP_MAX_CENTS),
    publicBaseUrl: emptyToUndefined(env.PUBLIC_BASE_URL),
    refundWindowSeconds: emptyToUndefined(env.REFUND_WINDOW_SECONDS),
    refundApprovalCents: emptyToUndefined(env.REFUND_APPROVAL_CENTS),
    maxPendingUnitsPerBuyer: emptyToUndefined(env.MAX_PENDING_UNITS_PER_BUYER),
  });
  if (!config.buyerJwksUrl && !config.buyerJwtSecret) {
    throw new Error("Configuration: set BUYER_JWKS_URL or BUYER_JWT_SECRET");
  }
  parsedConfigs.set(env, config);
  return config;
}
