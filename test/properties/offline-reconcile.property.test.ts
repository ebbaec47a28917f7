import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import fc from "fast-check";
import { describe, it } from "vitest";
import { offlineConflicts } from "../../src/db/schema";
import type { OfflineScan, OfflineScanResult, ScanSession } from "../../src/objects/ticket";
import { eventually } from "../support/eventually";
import { db } from "../support/fixtures";
import { paidTicket } from "../support/tickets";

// The bound, through the real ticket object (its SQL, its transaction, its outbox) rather than a model:
// D gates each accept the last uses of one ticket+function offline, within their budget, and upload in any
// order, in pieces, with duplicates. The pure rules are checked over far more schedules in
// offline-bound.test.ts; this checks that the object applies them as they say. Seen to catch: the object
// judging a scan id it has already reconciled again (a duplicate upload spending or flagging twice).

const NUM_RUNS = 12;
const SEED = 20_261_201;
const FN = "entry";

interface Schedule {
  uses: number;
  budget: number;
  /** Offline accepts per gate (each within min(budget, uses): a well-behaved gate with a fresh kit). */
  acceptsPerGate: number[];
  /** The order the accepts reach the object, as indexes into all of them; repeats are duplicate uploads. */
  uploads: number[];
  /** How the uploads are cut into requests. */
  chunk: number;
}

const schedules = fc
  .record({
    uses: fc.integer({ min: 1, max: 3 }),
    budget: fc.integer({ min: 1, max: 2 }),
    gates: fc.integer({ min: 1, max: 4 }),
    seed: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
    chunk: fc.integer({ min: 1, max: 5 }),
  })
  .chain(({ uses, budget, gates, chunk }) =>
    // A gate with a fresh kit knows when fewer uses than its budget are left (`scarce`): min(budget, uses).
    fc
      .array(fc.integer({ min: 0, max: Math.min(budget, uses) }), { minLength: gates, maxLength: gates })
      .chain((accepts) => {
        const total = accepts.reduce((sum, n) => sum + n, 0);
        const indexes = Array.from({ length: total }, (_, i) => i);
        return fc
          .tuple(
            fc.shuffledSubarray(indexes, { minLength: total, maxLength: total }),
            fc.array(fc.integer({ min: 0, max: Math.max(0, total - 1) }), { maxLength: total === 0 ? 0 : 4 }),
          )
          .map(
            ([order, duplicates]): Schedule => ({
              uses,
              budget,
              acceptsPerGate: accepts,
              uploads: [...order, ...duplicates.map((i) => order[i] ?? 0)],
              chunk,
            }),
          );
      }),
  );

interface Accept {
  gate: number;
  scan: OfflineScan;
}

function session(gate: number, runId: string): ScanSession {
  return {
    sessionId: `ses-${runId}-${gate}`,
    operatorId: "op-offline",
    deviceId: `gate-${runId}-${gate}`,
    locationId: null,
  };
}

async function replay(ticketCode: string, schedule: Schedule, accepts: Accept[], runId: string) {
  const stub = env.TICKETS.get(env.TICKETS.idFromName(ticketCode));
  const results: OfflineScanResult[] = [];
  for (let start = 0; start < schedule.uploads.length; start += schedule.chunk) {
    // One request per gate in this piece, as each gate uploads its own queue.
    const piece = schedule.uploads.slice(start, start + schedule.chunk).map((i) => accepts[i] as Accept);
    for (const gate of new Set(piece.map((a) => a.gate))) {
      const answer = await stub.reconcileOffline({
        ticketCode,
        session: session(gate, runId),
        acceptsPerTicketFunction: schedule.budget,
        scans: piece.filter((a) => a.gate === gate).map((a) => a.scan),
      });
      if (answer.result !== "reconciled") throw new Error("ticket not found");
      results.push(...answer.scans);
      for (const scan of answer.scans) {
        if ((scan.remainingUses ?? 0) < 0) throw new Error("a count went below zero");
      }
    }
  }
  // No upload at all leaves the object untouched (no snapshot): the ticket still has every use.
  const snapshot = await stub.snapshot();
  const left = snapshot
    ? snapshot.entitlements.find((e) => e.function === FN)?.remaining_uses
    : schedule.uses;
  return { results, left };
}

describe("offline reconciliation in the real ticket object", () => {
  it("never below zero, over-spend ≤ (D − 1) × a and all of it stored, whatever the upload order", async ({
    expect,
  }) => {
    await fc.assert(
      fc.asyncProperty(schedules, async (schedule) => {
        const runId = crypto.randomUUID().slice(0, 8);
        const gates = schedule.acceptsPerGate.length;
        const startMs = Date.now() - 60_000;
        const accepts: Accept[] = schedule.acceptsPerGate.flatMap((n, gate) =>
          Array.from({ length: n }, (_, k) => ({
            gate,
            scan: {
              scanId: `scan-${gate}-${k}`,
              fn: FN,
              decision: "accepted" as const,
              // A shared screenshot sometimes: gates 0 and 1 showed the same token.
              jti: gate <= 1 && k === 0 ? `jti-shared-${runId}` : `jti-${runId}-${gate}-${k}`,
              tokenExpiresAt: Math.floor(startMs / 1000) + 30,
              tokenGoodAtScan: true,
              scannedAtMs: startMs + gate * 1_000 + k * 100,
            },
          })),
        );
        // The same schedule, in its order and reversed, on two tickets with the same uses.
        const [first, second] = [
          await paidTicket([{ function: FN, uses: schedule.uses }]),
          await paidTicket([{ function: FN, uses: schedule.uses }]),
        ];
        const forward = await replay(first.code, schedule, accepts, runId);
        const backward = await replay(
          second.code,
          { ...schedule, uploads: [...schedule.uploads].reverse() },
          accepts,
          `${runId}r`,
        );

        for (const run of [forward, backward]) {
          const decided = run.results.filter((r) => r.outcome !== "duplicate");
          // Each scan decided exactly once, whatever was uploaded twice.
          expect(new Set(decided.map((r) => `${r.scanId}`)).size).toBe(decided.length);
          const applied = decided.filter((r) => r.outcome === "applied").length;
          const conflicts = decided.filter((r) => r.outcome === "conflict").length;
          expect(applied + conflicts).toBe(accepts.length);
          expect(applied).toBe(Math.min(schedule.uses, accepts.length));
          expect(run.left).toBe(schedule.uses - applied);
          expect(conflicts).toBeLessThanOrEqual(
            (gates - 1) * schedule.budget + Math.max(0, schedule.budget - schedule.uses),
          );
        }
        expect(backward.left).toBe(forward.left);

        // Every over-spend is a stored conflict, with the other side.
        const conflicts = forward.results.filter((r) => r.outcome === "conflict").length;
        if (conflicts > 0) {
          const stored = await eventually(
            () => db().select().from(offlineConflicts).where(eq(offlineConflicts.ticketCode, first.code)),
            (rows) => rows.length === conflicts,
          );
          expect(stored).toHaveLength(conflicts);
          expect(stored.every((row) => row.outcome === "conflict" && row.otherRedemptionId !== null)).toBe(
            true,
          );
        }
      }),
      { numRuns: NUM_RUNS, seed: SEED },
    );
  });
});
