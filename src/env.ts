import { z } from "zod";
import { variablesWithPublishedSecrets } from "./config/published-dev-secrets";
import {
  DEFAULT_MAX_OFFLINE_SECONDS,
  DEFAULT_OFFLINE_ACCEPTS_PER_TICKET_FUNCTION,
} from "./domain/offline-rule";
import { MAIL_PROVIDERS } from "./mail/mailer";
import type { TicketObject } from "./objects/ticket";
import type { WalletObject } from "./objects/wallet";
import { PAYMENT_PROVIDERS } from "./payments/provider";
import type { EventMessage } from "./queues/messages";

/** The Worker's bindings, as declared in wrangler.toml (vars and secrets arrive as strings). */
export interface Env {
  DB: D1Database;
  TICKETS: DurableObjectNamespace<TicketObject>;
  WALLETS: DurableObjectNamespace<WalletObject>;
  EVENTS: Queue<EventMessage>;
  EXPORTS: R2Bucket;
  /** Workers Analytics Engine counters (src/observability/metrics.ts). Optional: tools and tests may lack it. */
  METRICS?: AnalyticsEngineDataset;
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
  ANNUL_WINDOW_SECONDS?: string;
  OFFLINE_MAX_SECONDS?: string;
  OFFLINE_ACCEPTS_PER_TICKET_FUNCTION?: string;
  PAYMENT_PROVIDER?: string;
  STRIPE_SECRET_KEY?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  STRIPE_API_BASE?: string;
  MAIL_PROVIDER?: string;
  RESEND_API_KEY?: string;
  MAIL_FROM?: string;
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
  /** Where links handed to clients point; unset, they point at the origin the request came to. */
  publicBaseUrl: z.url().optional(),
  /** A POS deduction older than this cannot be refunded from a till. */
  refundWindowSeconds: intFromString(86_400, 60, 366 * 86_400),
  /** A refund above this needs role `supervisor` or `admin`. */
  refundApprovalCents: intFromString(5_000, 0, 10_000_000),
  /** Units one buyer may hold in unpaid orders at once: stock cannot be hoarded without paying. */
  maxPendingUnitsPerBuyer: intFromString(40, 1, 10_000),
  /** The device that made a scan may give it back for this long; a supervisor or admin at any time. */
  annulWindowSeconds: intFromString(900, 0, 7 * 86_400),
  /** How long a gate may decide alone after it last heard from the server (README, "Offline risk"). */
  offlineMaxSeconds: intFromString(DEFAULT_MAX_OFFLINE_SECONDS, 0, 86_400),
  /** Offline accepts of one ticket+function one gate may make before it hears back: the risk's unit. */
  offlineAcceptsPerTicketFunction: intFromString(DEFAULT_OFFLINE_ACCEPTS_PER_TICKET_FUNCTION, 0, 10),
  /**
   * Who takes the buyer's money: `standard` (a gateway that signs Standard Webhooks and is integrated by
   * the venue; no hosted page from us) or `stripe` (Stripe Checkout: we create the session and send the
   * buyer there).
   */
  paymentProvider: z.enum(PAYMENT_PROVIDERS).default("standard"),
  /** Stripe's secret (`sk_…`) or restricted (`rk_…`) key; required with PAYMENT_PROVIDER=stripe. */
  stripeSecretKey: z
    .string()
    .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/)
    .optional(),
  /** The signing secret of the Stripe webhook endpoint (`whsec_…`); required with PAYMENT_PROVIDER=stripe. */
  stripeWebhookSecret: z.string().startsWith("whsec_").optional(),
  /**
   * Where Stripe's API is reached, for stripe-mock or a local test double (`http://127.0.0.1:12111`).
   * Unset: api.stripe.com. Refused in production, where money must reach the real Stripe.
   */
  stripeApiBase: z.url({ protocol: /^https?$/ }).optional(),
  /** Where receipts go: `log` (a log line and the development page /dev/messages) or `resend`. */
  mailProvider: z.enum(MAIL_PROVIDERS).default("log"),
  /** Resend's API key (`re_…`); required with MAIL_PROVIDER=resend. */
  resendApiKey: z.string().startsWith("re_").optional(),
  /** The sender of receipts, e.g. `Passes <receipts@tickets.example.com>`; a domain verified at the provider. */
  mailFrom: z.string().min(3).max(320).default("Passes <receipts@passes.local>"),
});

export type Config = z.infer<typeof configSchema>;

/**
 * The base of links handed to clients (such as `topup_url`): PUBLIC_BASE_URL when set, else the origin
 * the client itself reached (a custom domain or workers.dev), so an unconfigured deployment still answers
 * links that work.
 */
export function publicBaseUrl(config: Config, requestOrigin: string): string {
  return config.publicBaseUrl ?? requestOrigin;
}

const emptyToUndefined = (value: string | undefined) =>
  value === undefined || value === "" ? undefined : value;

/**
 * The deployment's configuration is unusable: a variable is missing or malformed, or (in production) a
 * secret is a published development value. The app answers every request 503 `service_misconfigured`.
 * It names the variables and what is wrong with them, never their values.
 */
export class ConfigurationError extends Error {
  readonly problems: readonly { variable: string; problem: string }[];

  constructor(problems: readonly { variable: string; problem: string }[]) {
    super(`Configuration refused: ${problems.map((p) => `${p.variable} ${p.problem}`).join("; ")}`);
    this.name = "ConfigurationError";
    this.problems = problems;
  }
}

/** `orderHoldSeconds` → `ORDER_HOLD_SECONDS`: every config field is named after its variable. */
const variableName = (field: PropertyKey) =>
  String(field)
    .replace(/[A-Z]/g, (letter) => `_${letter}`)
    .toUpperCase();

const parsedConfigs = new WeakMap<Env, Config | ConfigurationError>();

/**
 * Parses the bindings once per isolate (the env object is stable for an isolate's lifetime).
 * A misconfigured deployment fails loudly here instead of deep inside a request: a ConfigurationError,
 * logged once (with variable names, never values) and thrown again to every later caller.
 */
export function loadConfig(env: Env): Config {
  const cached = parsedConfigs.get(env);
  if (cached instanceof ConfigurationError) throw cached;
  if (cached) return cached;
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    parsedConfigs.set(env, error);
    console.error(
      JSON.stringify({
        level: "error",
        msg: "configuration refused: every request answers 503 service_misconfigured",
        problems: error.problems,
      }),
    );
    throw error;
  }
  parsedConfigs.set(env, config);
  if (config.environment === "production" && config.mailProvider === "log") {
    // Allowed (a venue may not want email receipts), but never silent: once per isolate.
    console.warn(
      JSON.stringify({
        level: "warn",
        msg: "receipts are not emailed: MAIL_PROVIDER is log (set resend, RESEND_API_KEY and MAIL_FROM)",
      }),
    );
  }
  return config;
}

function parseConfig(env: Env): Config {
  const parsed = configSchema.safeParse({
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
    annulWindowSeconds: emptyToUndefined(env.ANNUL_WINDOW_SECONDS),
    offlineMaxSeconds: emptyToUndefined(env.OFFLINE_MAX_SECONDS),
    offlineAcceptsPerTicketFunction: emptyToUndefined(env.OFFLINE_ACCEPTS_PER_TICKET_FUNCTION),
    paymentProvider: emptyToUndefined(env.PAYMENT_PROVIDER),
    stripeSecretKey: emptyToUndefined(env.STRIPE_SECRET_KEY),
    stripeWebhookSecret: emptyToUndefined(env.STRIPE_WEBHOOK_SECRET),
    stripeApiBase: emptyToUndefined(env.STRIPE_API_BASE),
    mailProvider: emptyToUndefined(env.MAIL_PROVIDER),
    resendApiKey: emptyToUndefined(env.RESEND_API_KEY),
    mailFrom: emptyToUndefined(env.MAIL_FROM),
  });
  if (!parsed.success) {
    // zod's messages describe the rule broken ("Too small: expected string to have >=32 characters"),
    // not the input, so they are safe to log.
    throw new ConfigurationError(
      parsed.error.issues.map((issue) => ({
        variable: variableName(issue.path[0] ?? "configuration"),
        problem: issue.message,
      })),
    );
  }
  const config = parsed.data;
  if (!config.buyerJwksUrl && !config.buyerJwtSecret) {
    throw new ConfigurationError([
      { variable: "BUYER_JWT_SECRET", problem: "must be set when BUYER_JWKS_URL is not" },
    ]);
  }
  const missing = [
    ...(config.paymentProvider === "stripe" && !config.stripeSecretKey ? ["STRIPE_SECRET_KEY"] : []),
    ...(config.paymentProvider === "stripe" && !config.stripeWebhookSecret ? ["STRIPE_WEBHOOK_SECRET"] : []),
    ...(config.mailProvider === "resend" && !config.resendApiKey ? ["RESEND_API_KEY"] : []),
  ];
  if (config.environment === "production" && config.stripeApiBase) {
    throw new ConfigurationError([
      { variable: "STRIPE_API_BASE", problem: "is for local testing only: unset it in production" },
    ]);
  }
  if (missing.length > 0) {
    throw new ConfigurationError(
      missing.map((variable) => ({ variable, problem: "must be set for the chosen provider" })),
    );
  }
  if (config.environment === "production") {
    const published = variablesWithPublishedSecrets({
      BUYER_JWT_SECRET: env.BUYER_JWT_SECRET,
      OPERATOR_JWT_SECRET: env.OPERATOR_JWT_SECRET,
      WALLET_REF_SECRET: env.WALLET_REF_SECRET,
      PAYMENT_WEBHOOK_SECRET: env.PAYMENT_WEBHOOK_SECRET,
      QR_SIGNING_JWK: env.QR_SIGNING_JWK,
      QR_SIGNING_JWK_PREVIOUS: env.QR_SIGNING_JWK_PREVIOUS,
    });
    if (published.length > 0) {
      throw new ConfigurationError(
        published.map((variable) => ({
          variable,
          problem: "is a published development value (.dev.vars.example): set a secret of your own",
        })),
      );
    }
  }
  return config;
}
