import { buildApp } from "./app";
import { CRON_DAILY_EXPORT, CRON_EVERY_MINUTE } from "./cron";
import { getDb } from "./db/client";
import { isDeadLetterQueue } from "./db/dead-letters";
import { pruneDeviceProofs } from "./db/devices";
import { forgetQuietLoginStreaks } from "./db/login-throttle";
import { EXPIRY_SWEEP_BATCH, sweepExpiredOrders } from "./db/orders";
import { drainOutbox } from "./db/outbox";
import { previousUtcDay } from "./domain/report-range";
import type { Env } from "./env";
import { purgeIdempotencyRecords } from "./http/idempotency";
import { consumeEvents } from "./queues/consumer";
import { consumeDeadLetters, failureRecorder } from "./queues/dead-letters";
import { createMailer } from "./queues/mailer";
import { exportRedemptionsDay, exportTransactionsDay } from "./reports/daily-export";
import { ORDER_EXPIRY_EXTENSIONS } from "./services/wallet-holds";

export { TicketObject } from "./objects/ticket";
export { WalletObject } from "./objects/wallet";

const app = buildApp();

/** Stored idempotent outcomes removed per minute: bounded so a backlog drains without a long run. */
const IDEMPOTENCY_PURGE_BATCH = 500;

export default {
  fetch: app.fetch,

  async scheduled(controller, env, _ctx) {
    const now = new Date(controller.scheduledTime);
    if (controller.cron === CRON_EVERY_MINUTE) {
      const db = getDb(env.DB);
      await sweepExpiredOrders(db, now, EXPIRY_SWEEP_BATCH, ORDER_EXPIRY_EXTENSIONS);
      await purgeIdempotencyRecords(db, now, IDEMPOTENCY_PURGE_BATCH);
      await pruneDeviceProofs(db, now);
      await forgetQuietLoginStreaks(db, now);
      // Events whose send failed after their batch committed.
      await drainOutbox(db, env.EVENTS, now);
    }
    if (controller.cron === CRON_DAILY_EXPORT) {
      const day = previousUtcDay(now);
      // Offline scans are dated when the gate let the holder in and may be uploaded hours later: the day
      // before is written again too (the same name, now complete), so a late upload reaches the export.
      for (const redemptionsDay of [previousUtcDay(new Date(`${day}T00:00:00Z`)), day]) {
        const exported = await exportRedemptionsDay(getDb(env.DB), env.EXPORTS, redemptionsDay);
        console.log(JSON.stringify({ level: "info", msg: "daily export written", ...exported }));
      }
      const transactions = await exportTransactionsDay(getDb(env.DB), env.EXPORTS, day);
      console.log(JSON.stringify({ level: "info", msg: "daily export written", ...transactions }));
    }
  },

  async queue(batch, env, _ctx) {
    const db = getDb(env.DB);
    // One Worker consumes both queues; dead-letter queues are named `<source>-dlq` in every environment.
    if (isDeadLetterQueue(batch.queue)) return consumeDeadLetters(batch, db);
    await consumeEvents(batch, { db, mailer: createMailer(env), onRetry: failureRecorder(db, batch.queue) });
  },
} satisfies ExportedHandler<Env>;
