import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { ConfigurationError, loadConfig } from "./env";
import { ApiError, problemResponse, toApiError } from "./errors";
import { accessLog } from "./http/access-log";
import type { AppEnv } from "./http/context";
import { d1Session } from "./http/d1-session";
import { adminWalletRoutes } from "./routes/admin-wallets";
import { auditRoutes } from "./routes/audit";
import { catalogRoutes } from "./routes/catalog";
import { checkoutRoutes } from "./routes/checkout";
import { deadLetterRoutes } from "./routes/dead-letters";
import { devRoutes } from "./routes/dev";
import { deviceRoutes } from "./routes/devices";
import { healthRoutes } from "./routes/health";
import { offlineRoutes } from "./routes/offline";
import { operatorRoutes } from "./routes/operators";
import { orderRoutes } from "./routes/orders";
import { paymentRefundRoutes, paymentReviewRoutes } from "./routes/payment-reviews";
import { paymentRoutes } from "./routes/payments";
import { posRoutes } from "./routes/pos";
import { reportRoutes } from "./routes/reports";
import { scanRoutes } from "./routes/scan";
import { sessionRoutes } from "./routes/sessions";
import { staffRoutes } from "./routes/staff";
import { stripeWebhookRoutes } from "./routes/stripe-webhook";
import { ticketRoutes } from "./routes/tickets";
import { walletRoutes } from "./routes/wallet";
import { wellKnownRoutes } from "./routes/well-known";

/** The contract's body limit: anything larger is a 413 before it is parsed. */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * An offline gate uploads up to 500 queued scans at once, about 1 KB each (a QR token and the device's
 * signature over it): the one route allowed a larger body.
 */
export const MAX_OFFLINE_UPLOAD_BYTES = 1024 * 1024;
const OFFLINE_UPLOAD_PATH = /^\/devices\/[^/]+\/offline-scans$/;
const REQUEST_ID_HEADER = "x-request-id";

export const OPENAPI_INFO = {
  openapi: "3.0.3",
  info: {
    title: "Passes Edge API",
    contact: { name: "Passes Edge maintainers", url: "https://github.com/passes-edge/passes-edge" },
    license: { name: "Apache-2.0" },
    version: "0.1.0",
    description:
      "Multi-use passes and stored-value credits at the edge. Errors are RFC 9457 " +
      "`application/problem+json` with a stable `code`; every response carries `x-request-id`. " +
      "Money is integer minor units (`*_cents`); times are RFC 3339 UTC. A deployment whose configuration " +
      "is invalid, or that runs in production with a secret published in `.dev.vars.example`, answers every " +
      "route with 503 `service_misconfigured`. Reads may be served from a read replica: an answer that " +
      "read the database carries `x-d1-bookmark`, and a request that sends the newest one it was given " +
      "back in `x-d1-bookmark` reads at least that fresh (its own writes included); a value that is not a " +
      "bookmark is ignored.",
  },
  servers: [{ url: "http://localhost:8787", description: "Local development (npm run dev)" }],
  tags: [
    { name: "Catalog", description: "What is for sale" },
    { name: "Orders", description: "Buying passes (Story A)" },
    { name: "Payments", description: "The payment providers' signed webhooks (Story B)" },
    { name: "Tickets", description: "Tickets, entitlements and rotating QR tokens (Story C)" },
    { name: "Staff", description: "Operator login and validator sessions" },
    { name: "Scan", description: "Gate redemption (Story D)" },
    { name: "Wallet", description: "Stored-value credits" },
    { name: "POS", description: "Point-of-sale deductions" },
    { name: "Reports", description: "Analyst reports and scheduled exports" },
    { name: "Admin", description: "Catalog, staff, devices and audit administration" },
    { name: "Operations", description: "Health of the deployment" },
  ],
};

export function buildApp() {
  const app = new OpenAPIHono<AppEnv>();

  // Outermost, so its duration and status cover everything below, including refusals and errors.
  app.use(accessLog);
  app.use(requestId({ headerName: REQUEST_ID_HEADER, limitLength: 200 }));
  // A configuration the service cannot run with (missing secret, or a published development secret in
  // production) refuses every route, before any handler could use it. loadConfig has logged why.
  app.use(async (c, next) => {
    try {
      c.set("config", loadConfig(c.env));
    } catch (error) {
      if (error instanceof ConfigurationError) {
        throw new ApiError("service_misconfigured", "The service is not configured correctly");
      }
      throw error;
    }
    await next();
  });
  // After the configuration, so a refused one answers before any query; before every route.
  app.use(d1Session);
  const limitBody = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError("payload_too_large", `Request body exceeds ${maxSize} bytes`);
      },
    });
  const defaultBodyLimit = limitBody(MAX_BODY_BYTES);
  const offlineUploadBodyLimit = limitBody(MAX_OFFLINE_UPLOAD_BYTES);
  app.use((c, next) =>
    (OFFLINE_UPLOAD_PATH.test(c.req.path) ? offlineUploadBodyLimit : defaultBodyLimit)(c, next),
  );

  app.route("/", healthRoutes);
  app.route("/", catalogRoutes);
  app.route("/", orderRoutes);
  app.route("/", checkoutRoutes);
  app.route("/", paymentRoutes);
  app.route("/", stripeWebhookRoutes);
  app.route("/", paymentReviewRoutes);
  app.route("/", paymentRefundRoutes);
  app.route("/", scanRoutes);
  app.route("/", offlineRoutes);
  app.route("/", ticketRoutes);
  app.route("/", wellKnownRoutes);
  app.route("/", staffRoutes);
  app.route("/", operatorRoutes);
  app.route("/", deviceRoutes);
  app.route("/", sessionRoutes);
  app.route("/", auditRoutes);
  app.route("/", reportRoutes);
  app.route("/", walletRoutes);
  app.route("/", posRoutes);
  app.route("/", adminWalletRoutes);
  app.route("/", deadLetterRoutes);
  // Local-development helpers for the reference pages: 404 unless ENVIRONMENT is "development".
  app.route(
    "/",
    devRoutes((request, env, ctx) => app.fetch(request, env, ctx)),
  );

  app.openAPIRegistry.registerComponent("securitySchemes", "buyerToken", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A buyer JWT from the deployment's identity provider (`sub` is the user id).",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "operatorToken", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "An operator token from `POST /operators/login`.",
  });
  app.doc("/openapi.json", OPENAPI_INFO);
  // /docs is a static page (web/pages/docs.html) that renders /openapi.json with Swagger UI files copied
  // from swagger-ui-dist at build time: it loads nothing from another origin.

  app.notFound(() => problemResponse(new ApiError("not_found", "No such route")));
  app.onError((error, c) => {
    const apiError = toApiError(error, c);
    const response = problemResponse(apiError);
    response.headers.set(REQUEST_ID_HEADER, c.get("requestId") ?? "");
    return response;
  });
  return app;
}
