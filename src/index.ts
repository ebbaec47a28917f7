import { buildApp } from "./app";
import { CRON_DAILY_EXPORT, CRON_EVERY_MINUTE, runJobs } from "./cron";
import { type Db, getDb } from "./db/client";
import { isDeadLetterQueue } from "./db/dead-letters";
import { pruneDeviceProofs } from "./db/devices";
import { pruneSentEmails } from "./db/email-messages";
import { forgetQuietLoginStreaks } from "./db/login-throttle";
import { DEFAULT_SWEEP_BUDGET, EXPIRY_SWEEP_BATCH, sweepExpiredOrders } from "./db/orders";
import { drainOutboxBacklog, pruneSentOutbox } from "./db/outbox";
import { previousUtcDay } from "./domain/report-range";
import { type Config, ConfigurationError, type Env, loadConfig } from "./env";
import { purgeIdempotencyRecords } from "./http/idempotency";
import { createMailer } from "./mail/create-mailer";
import type { Mailer } from "./mail/mailer";
import { hostedPaymentProvider } from "./payments/provider";
import { consumeEvents } from "./queues/consumer";
import { consumeDeadLetters, failureRecorder } from "./queues/dead-letters";
import { exportRedemptionsDay, exportTransactionsDay } from "./reports/daily-export";
import { closeLapsedCheckouts } from "./services/hosted-checkout";
import { releaseCreditsOfUnpaidOrders } from "./services/order-credits";
import { reconcileAllWallets } from "./services/wallet-reconciliation";

export { TicketObject } from "./objects/ticket";
export { WalletObject } from "./objects/wallet";

const app = buildApp();

/** The deployment's configuration, or undefined when it is refused (loadConfig logged why). */
function configOrUndefined(env: Env): Config | undefined {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigurationError) return undefined;
    throw error;
  }
}

/** Stands in while the configuration is refused: every receipt fails, to be retried. */
const UNCONFIGURED_MAILER: Mailer = {
  async send() {
    throw new Error("receipts cannot be sent: the configuration is refused (see the configuration log)");
  },
};

/** Closes the provider's pages of orders that can no longer be paid; nothing with the standard gateway. */
async function closeCheckoutPages(env: Env, db: Db, now: Date): Promise<void> {
  // Without a configuration there is no provider; the other minute jobs need none and have run.
  const config = configOrUndefined(env);
  if (!config) return;
  const provider = await hostedPaymentProvider(config);
  if (!provider) return;
  const pages = await closeLapsedCheckouts(db, provider, now);
  if (pages.closed + pages.failed > 0) {
    console.log(JSON.stringify({ level: "info", msg: "checkout pages closed", ...pages }));
  }
}

/** Stored idempotent outcomes removed per minute: bounded so a backlog drains without a long run. */
const IDEMPOTENCY_PURGE_BATCH = 500;

export default {
  fetch: app.fetch,

  async scheduled(controller, env, _ctx) {
    const now = new Date(controller.scheduledTime);
    if (controller.cron === CRON_EVERY_MINUTE) {
      const db = getDb(env.DB);
      // Each job on its own: one that fails (D1 busy, Stripe down) is logged and does not keep the others
      // from their minute; the run still fails at the end, so the failure shows in the cron's history.
      await runJobs([
        [
          "expire lapsed orders",
          // Each batch's unpaid orders get their credits back at once (their transfers' timeout is the
          // backstop if this run stops midway).
          () =>
            sweepExpiredOrders(db, now, EXPIRY_SWEEP_BATCH, DEFAULT_SWEEP_BUDGET, (ids) =>
              releaseCreditsOfUnpaidOrders(env.WALLETS, db, ids),
            ),
        ],
        ["purge idempotency records", () => purgeIdempotencyRecords(db, now, IDEMPOTENCY_PURGE_BATCH)],
        ["prune device proofs", () => pruneDeviceProofs(db, now)],
        ["forget quiet login streaks", () => forgetQuietLoginStreaks(db, now)],
        // Events whose send failed after their batch committed.
        ["drain the outbox", () => drainOutboxBacklog(db, env.EVENTS, now)],
        ["prune sent outbox rows", () => pruneSentOutbox(db, now)],
        // After the sweep, so the orders it just expired lose their payment pages in the same minute.
        ["close lapsed checkout pages", () => closeCheckoutPages(env, db, now)],
      ]);
    }
    if (controller.cron === CRON_DAILY_EXPORT) {
      const day = previousUtcDay(now);
      const db = getDb(env.DB);
      const info = (fields: Record<string, unknown>) =>
        console.log(JSON.stringify({ level: "info", ...fields }));
      await runJobs([
        [
          "export redemptions",
          async () => {
            // Offline scans are dated when the gate let the holder in and may be uploaded hours later: the
            // day before is written again too (the same name, now complete), so a late upload reaches it.
            for (const redemptionsDay of [previousUtcDay(new Date(`${day}T00:00:00Z`)), day]) {
              info({
                msg: "daily export written",
                ...(await exportRedemptionsDay(db, env.EXPORTS, redemptionsDay)),
              });
            }
          },
        ],
        [
          "export transactions",
          async () =>
            info({ msg: "daily export written", ...(await exportTransactionsDay(db, env.EXPORTS, day)) }),
        ],
        [
          "prune sent emails",
          async () => {
            const pruned = await pruneSentEmails(db, now);
            if (pruned > 0) info({ msg: "old email copies deleted", pruned });
          },
        ],
        // Mismatches are logged one by one as errors as they are found; the totals say the run happened.
        [
          "reconcile wallets",
          async () => info({ msg: "wallets reconciled", ...(await reconcileAllWallets(env)) }),
        ],
      ]);
    }
  },

  async queue(batch, env, _ctx) {
    const db = getDb(env.DB);
    // One Worker consumes both queues; dead-letter queues are named `<source>-dlq` in every environment.
    if (isDeadLetterQueue(batch.queue)) return consumeDeadLetters(batch, db);
    // Only receipts need the configuration (which mailer, which sender). A refused one must not stop the
    // read models, reports and audit log: those events are applied, and receipts retry (and end as dead
    // letters to replay once the configuration is fixed).
    const config = configOrUndefined(env);
    await consumeEvents(batch, {
      db,
      mailer: config ? createMailer(config, db) : UNCONFIGURED_MAILER,
      publicBaseUrl: config?.publicBaseUrl,
      onRetry: failureRecorder(db, batch.queue),
    });
  },
} satisfies ExportedHandler<Env>;
