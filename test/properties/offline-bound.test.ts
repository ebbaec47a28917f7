import fc from "fast-check";
import { describe, it } from "vitest";
import {
  isOverBudget,
  type OfflineGateDecision,
  type ReconciliationOutcome,
  reconcileOfflineScan,
} from "../../src/domain/offline-reconciliation";
import {
  decideOfflineScan,
  type OfflineBudget,
  type OfflineRefusal,
  type OfflineToken,
  type TicketFunctionKnowledge,
} from "../../src/domain/offline-rule";
import { decideRedemption } from "../../src/domain/redemption";

// The contract's bound on offline risk, checked on a model of one ticket+function with U uses, D gates and a
// budget of `a` offline accepts. Every decision in it is made by the real pure rules: decideRedemption for
// online scans, decideOfflineScan for offline ones, reconcileOfflineScan for uploads. The model only moves
// state around: networks that drop answers, duplicate or delay uploads, kits that lag, screenshots of a
// token shown at several gates, and gates going on and offline.
//
// Mutations this test has been seen to catch, with the seed below:
// - offlineAllowance's cap raised to `accepts_per_ticket_function + 1`: the per-step check that a gate
//   holds at most `a` unreconciled accepts fails at run 126 (so does the over-budget flag); with both
//   removed, the bound (b) fails at run 210 (U = 3, D = 2, a = 1: a gate told "2 left" accepts 2 offline
//   while the other spends both online);
// - offlineAllowance ignoring `knownRemaining`: the bound fails at once (one gate told "1 left" accepts 2);
// - SYNC_FIRST = false: a gate whose online scan overtakes its own offline accept over-spends alone, so the
//   bound fails at run 18 with D = 1;
// - reconcileOfflineScan applying at zero uses left (a), or not recognising a scan id it has seen (c, d).

const NUM_RUNS = 1_500;
/** Fixed, so a failure reproduces; fast-check prints the shrunk schedule. */
const SEED = 20_260_116;
const MAX_COMMANDS = 60;

/** The spec's rule the model follows: a gate sends an online scan only once its offline queue is empty. */
const SYNC_FIRST = true;

const FN = "entry";
const TICKET_CODE = "TICKET";
const START_MS = 1_900_000_000_000;
/** Every command takes a second of the clock; `wait` jumps further, to expire tokens and kits. */
const STEP_MS = 1_000;
const TOKEN_LIFE_SECONDS = 30;
/** Short, so that long offline stretches reach it within a schedule. */
const MAX_OFFLINE_SECONDS = 120;
const MAX_KIT_LAG_STEPS = 3;

type UploadFate =
  /** The server reconciles the batch and the gate reads the results. */
  | "answered"
  /** Reconciled, but the answer never reaches the gate: it will upload the same scans again. */
  | "answer_lost"
  /** Delivered twice by a retrying network; the gate reads the second (duplicate) answer. */
  | "duplicated"
  /** The server reconciles only the first `processed` scans, then the connection drops. */
  | "partial"
  /** Held in the network and delivered later (`deliver`), after other gates' uploads. */
  | "delayed";

type Command =
  | { kind: "toggle"; device: number }
  | { kind: "kit"; device: number; lagSteps: number }
  | {
      kind: "scan";
      device: number;
      /** Null: a fresh token; n: a token shown before, same jti (a screenshot passed on, or shown again). */
      reuse: number | null;
      /** What happens to an online scan: answered, its answer lost, or the request itself lost. */
      loss: "none" | "answer" | "request";
    }
  | { kind: "resend"; device: number }
  | { kind: "upload"; device: number; take: number; fate: UploadFate; processed: number }
  | { kind: "deliver"; pick: number; answered: boolean }
  | { kind: "wait"; seconds: number };

interface Schedule {
  uses: number;
  devices: number;
  accepts: number;
  commands: Command[];
}

const device = fc.nat({ max: 3 });
const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("toggle" as const), device }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("kit" as const),
      device,
      lagSteps: fc.nat({ max: MAX_KIT_LAG_STEPS }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("scan" as const),
      device,
      reuse: fc.oneof(
        { weight: 3, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.nat({ max: 4 }) },
      ),
      loss: fc.constantFrom("none" as const, "answer" as const, "request" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("resend" as const), device }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("upload" as const),
      device,
      take: fc.integer({ min: 1, max: 4 }),
      fate: fc.constantFrom<UploadFate>("answered", "answer_lost", "duplicated", "partial", "delayed"),
      processed: fc.nat({ max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("deliver" as const),
      pick: fc.nat({ max: 3 }),
      answered: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("wait" as const), seconds: fc.integer({ min: 5, max: 30 }) }),
  },
);

const scheduleArbitrary: fc.Arbitrary<Schedule> = fc.record({
  uses: fc.integer({ min: 1, max: 4 }),
  devices: fc.integer({ min: 1, max: 4 }),
  accepts: fc.integer({ min: 1, max: 3 }),
  commands: fc.array(commandArbitrary, { maxLength: MAX_COMMANDS, size: "max" }),
});

interface OfflineScan {
  scanId: string;
  token: OfflineToken;
  decision: OfflineGateDecision;
  /** Why the gate refused, for the coverage check. */
  refusal: OfflineRefusal | null;
  /** The gate's own accepts of this ticket+function it had not seen reconciled when it made this one. */
  inFlightBefore: number;
}

interface OnlineScan {
  key: string;
  token: OfflineToken;
}

interface ReconciliationResult {
  scanId: string;
  outcome: ReconciliationOutcome;
  remainingUses: number;
}

/** The ticket object's state for the one ticket+function, and what it stored. */
class Server {
  remaining: number;
  onlineAccepts = 0;
  /** Uploads that reached the server again (retries, duplicated deliveries): for the coverage check. */
  duplicateUploads = 0;
  readonly spentJtis = new Set<string>();
  readonly onlineAnswers = new Map<string, { remainingUses: number }>();
  /** The first outcome of each reconciled scan id; conflicts are the stored over-spends. */
  readonly reconciled = new Map<string, ReconciliationOutcome>();

  constructor(readonly uses: number) {
    this.remaining = uses;
  }

  /** An online scan, idempotent on its key: a resend gets the stored answer. */
  redeem(scan: OnlineScan, nowMs: number): { remainingUses: number } {
    const stored = this.onlineAnswers.get(scan.key);
    if (stored) return stored;
    const decision = decideRedemption({
      entitlements: [{ function: FN, total_uses: this.uses, remaining_uses: this.remaining }],
      fn: FN,
      jtiSpent: this.spentJtis.has(scan.token.jti),
      tokenExpiresAtSeconds: scan.token.expiresAtSeconds,
      nowMs,
    });
    if (decision.ok) {
      this.remaining -= 1;
      this.onlineAccepts += 1;
      this.spentJtis.add(scan.token.jti);
    }
    // Accepted or refused, the answer carries the entitlements, and the gate learns from both.
    const answer = { remainingUses: this.remaining };
    this.onlineAnswers.set(scan.key, answer);
    return answer;
  }

  reconcile(scan: OfflineScan): ReconciliationResult {
    const outcome = reconcileOfflineScan({
      alreadyReconciled: this.reconciled.has(scan.scanId),
      decision: scan.decision,
      hasEntitlement: true,
      remainingUses: this.remaining,
    });
    if (outcome.outcome === "duplicate") this.duplicateUploads += 1;
    else this.reconciled.set(scan.scanId, outcome);
    if (outcome.outcome === "applied") this.remaining -= 1;
    // As the ticket object does: a token a gate let someone in with is used up online too, conflict or not.
    if (outcome.outcome === "applied" || outcome.outcome === "conflict") this.spentJtis.add(scan.token.jti);
    return { scanId: scan.scanId, outcome, remainingUses: this.remaining };
  }
}

class Gate {
  online = true;
  blocked = false;
  knownRemaining: number | undefined = undefined;
  lastContactMs = START_MS;
  readonly seenJtis = new Set<string>();
  /** Offline decisions not yet seen reconciled, in the order made. */
  queue: OfflineScan[] = [];
  /** Online scans whose answer never came (they may have spent a use). */
  lostOnline: OnlineScan[] = [];

  /** Uses only go down, so the lowest count the gate was ever told is the newest. */
  learn(remainingUses: number): void {
    this.knownRemaining = Math.min(this.knownRemaining ?? remainingUses, remainingUses);
  }

  acceptsInFlight(): number {
    return this.queue.filter((s) => s.decision === "accepted").length;
  }

  knowledge(): TicketFunctionKnowledge {
    return {
      blocked: this.blocked,
      knownRemaining: this.knownRemaining,
      outstanding: this.acceptsInFlight() + this.lostOnline.length,
    };
  }

  readResults(results: readonly ReconciliationResult[]): void {
    for (const result of results) {
      this.queue = this.queue.filter((s) => s.scanId !== result.scanId);
      this.learn(result.remainingUses);
    }
  }
}

interface RunOutcome {
  server: Server;
  offlineScans: OfflineScan[];
}

/** Runs a schedule, asserting the per-step invariants; then everyone reconnects and uploads everything. */
function runSchedule(schedule: Schedule, check: (condition: boolean, message: string) => void): RunOutcome {
  const budget: OfflineBudget = {
    max_offline_seconds: MAX_OFFLINE_SECONDS,
    accepts_per_ticket_function: schedule.accepts,
  };
  const server = new Server(schedule.uses);
  /** The server's remaining uses after each step, for kits served from a lagging copy. */
  const history = [server.remaining];
  const gates = Array.from({ length: schedule.devices }, () => new Gate());
  const tokens: OfflineToken[] = [];
  const offlineScans: OfflineScan[] = [];
  const network: { gate: Gate; batch: OfflineScan[] }[] = [];
  let nowMs = START_MS;
  let counter = 0;

  const fetchKit = (gate: Gate, lagSteps: number) => {
    const remaining = history[Math.max(0, history.length - 1 - lagSteps)] ?? schedule.uses;
    // A kit replaces the blocked list, so a lagging kit may unblock; `knownRemaining` only ever goes down.
    gate.blocked = remaining === 0;
    if (remaining > 0 && remaining < schedule.accepts) gate.learn(remaining);
    gate.lastContactMs = nowMs;
  };
  for (const gate of gates) fetchKit(gate, 0);

  const upload = (gate: Gate, take: number, fate: UploadFate, processed: number) => {
    const batch = gate.queue.slice(0, take);
    if (batch.length === 0) return;
    switch (fate) {
      case "answered":
        gate.readResults(batch.map((s) => server.reconcile(s)));
        return;
      case "answer_lost":
        for (const scan of batch) server.reconcile(scan);
        return;
      case "duplicated":
        for (const scan of batch) server.reconcile(scan);
        gate.readResults(batch.map((s) => server.reconcile(s)));
        return;
      case "partial":
        for (const scan of batch.slice(0, processed)) server.reconcile(scan);
        return;
      case "delayed":
        network.push({ gate, batch });
        return;
    }
  };

  const scanOnline = (gate: Gate, token: OfflineToken, loss: "none" | "answer" | "request") => {
    counter += 1;
    const scan: OnlineScan = { key: `key-${counter}`, token };
    gate.seenJtis.add(token.jti);
    if (loss === "request") {
      gate.lostOnline.push(scan);
      return;
    }
    const answer = server.redeem(scan, nowMs);
    if (loss === "answer") gate.lostOnline.push(scan);
    else gate.learn(answer.remainingUses);
  };

  const scanOffline = (gate: Gate, token: OfflineToken) => {
    const decision = decideOfflineScan({
      token,
      fn: FN,
      jtiSeen: gate.seenJtis.has(token.jti),
      knowledge: gate.knowledge(),
      budget,
      lastContactMs: gate.lastContactMs,
      nowMs,
    });
    counter += 1;
    const scan: OfflineScan = {
      scanId: `scan-${counter}`,
      token,
      decision: decision.ok ? "accepted" : "refused",
      refusal: decision.ok ? null : decision.code,
      inFlightBefore: gate.acceptsInFlight(),
    };
    gate.seenJtis.add(token.jti);
    gate.queue.push(scan);
    offlineScans.push(scan);
  };

  const presentedToken = (reuse: number | null): OfflineToken => {
    const shown =
      reuse === null ? undefined : tokens[tokens.length - 1 - (reuse % Math.max(1, tokens.length))];
    if (shown) return shown;
    counter += 1;
    const notBeforeSeconds = Math.floor(nowMs / 1000);
    const token: OfflineToken = {
      ticketCode: TICKET_CODE,
      jti: `jti-${counter}`,
      notBeforeSeconds,
      expiresAtSeconds: notBeforeSeconds + TOKEN_LIFE_SECONDS,
      functions: [FN],
    };
    tokens.push(token);
    return token;
  };

  for (const command of schedule.commands) {
    nowMs += STEP_MS;
    const deviceIndex = "device" in command ? command.device % schedule.devices : 0;
    const gate = gates[deviceIndex];
    if (!gate) throw new Error("unreachable: device index is reduced modulo the count");
    switch (command.kind) {
      case "toggle":
        gate.online = !gate.online;
        break;
      case "kit":
        if (gate.online) fetchKit(gate, command.lagSteps);
        break;
      case "scan": {
        const token = presentedToken(command.reuse);
        // Sync first: the queue goes up before an online scan, and if that upload's answer is lost the
        // gate decides offline rather than let an online scan overtake its own offline accepts.
        if (gate.online && SYNC_FIRST && gate.queue.length > 0) {
          upload(gate, gate.queue.length, command.loss === "none" ? "answered" : "answer_lost", 0);
        }
        if (gate.online && (!SYNC_FIRST || gate.queue.length === 0)) scanOnline(gate, token, command.loss);
        else scanOffline(gate, token);
        break;
      }
      case "resend": {
        const scan = gate.lostOnline[0];
        if (gate.online && scan) {
          gate.lostOnline.shift();
          gate.learn(server.redeem(scan, nowMs).remainingUses);
        }
        break;
      }
      case "upload":
        if (gate.online) upload(gate, command.take, command.fate, command.processed);
        break;
      case "deliver": {
        const delivered = network.splice(command.pick % Math.max(1, network.length), 1)[0];
        if (delivered) {
          const results = delivered.batch.map((s) => server.reconcile(s));
          if (command.answered && delivered.gate.online) delivered.gate.readResults(results);
        }
        break;
      }
      case "wait":
        nowMs += command.seconds * 1000;
        break;
    }
    check(server.remaining >= 0, `remaining uses went below zero: ${server.remaining}`);
    for (const g of gates) {
      check(
        g.acceptsInFlight() <= schedule.accepts,
        `a gate holds ${g.acceptsInFlight()} unreconciled accepts, over its budget of ${schedule.accepts}`,
      );
    }
    history.push(server.remaining);
  }

  // Everyone reconnects: the network delivers what it held, lost online scans are resent under their keys,
  // and every queue is uploaded until its results are read.
  nowMs += STEP_MS;
  for (const held of network.splice(0)) held.gate.readResults(held.batch.map((s) => server.reconcile(s)));
  for (const gate of gates) {
    gate.online = true;
    for (const scan of gate.lostOnline.splice(0)) gate.learn(server.redeem(scan, nowMs).remainingUses);
    while (gate.queue.length > 0) upload(gate, gate.queue.length, "answered", 0);
  }
  check(server.remaining >= 0, `remaining uses went below zero: ${server.remaining}`);
  return { server, offlineScans };
}

function countOutcomes(outcomes: Iterable<ReconciliationOutcome>) {
  let applied = 0;
  let exhausted = 0;
  let otherConflicts = 0;
  for (const o of outcomes) {
    if (o.outcome === "applied") applied += 1;
    else if (o.outcome === "conflict" && o.reason === "exhausted") exhausted += 1;
    else if (o.outcome === "conflict") otherConflicts += 1;
  }
  return { applied, exhausted, otherConflicts };
}

describe("offline over-spend bound (model)", () => {
  it("over-spends at most (D − 1) × a, loses no accept, and ends the same whatever the upload order", ({
    expect,
  }) => {
    const coverage = { conflicts: 0, boundReached: 0, duplicates: 0, offlineAccepts: 0 };
    const refusals = new Map<OfflineRefusal, number>();

    fc.assert(
      fc.property(scheduleArbitrary, fc.gen(), (schedule, g) => {
        const check = (condition: boolean, message: string) => expect(condition, message).toBe(true);
        const { server, offlineScans } = runSchedule(schedule, check);
        const accepted = offlineScans.filter((s) => s.decision === "accepted");

        // (c) Every offline decision was reconciled exactly once (the map holds first outcomes by scan id):
        // an accept is applied or a stored conflict, never lost; a refusal is recorded.
        expect(server.reconciled.size).toBe(offlineScans.length);
        for (const scan of offlineScans) {
          const outcome = server.reconciled.get(scan.scanId)?.outcome;
          if (scan.decision === "accepted") expect(["applied", "conflict"]).toContain(outcome);
          else expect(outcome).toBe("recorded");
          // A gate keeping to decideOfflineScan never trips the report's over-budget flag, even counting its
          // accepts in flight as the gate saw them (at least what the ticket object counts: the object cannot
          // tell a lost answer). Its token was good when accepted: decideOfflineScan checked that itself.
          if (scan.decision === "accepted") {
            const flagged = isOverBudget({
              inFlightBefore: scan.inFlightBefore,
              acceptsPerTicketFunction: schedule.accepts,
              tokenGoodAtScan: true,
            });
            expect(flagged).toBe(false);
          }
        }
        const { applied, exhausted, otherConflicts } = countOutcomes(server.reconciled.values());
        expect(otherConflicts).toBe(0);
        expect(applied + exhausted).toBe(accepted.length);

        // (b) The over-spend is exactly the stored conflicts, and within the contract's bound.
        const usesSpent = schedule.uses - server.remaining;
        expect(usesSpent).toBe(server.onlineAccepts + applied);
        const overSpend = server.onlineAccepts + accepted.length - usesSpent;
        expect(exhausted).toBe(overSpend);
        expect(overSpend).toBeLessThanOrEqual((schedule.devices - 1) * schedule.accepts);

        // (d) The same offline decisions uploaded in another order, some twice, to a server with the same
        // online history (its accepts spent first: each took a use when it was made) end in the same state.
        const duplicates = g(fc.subarray, offlineScans);
        const reordered = g(fc.shuffledSubarray, [...offlineScans, ...duplicates], {
          minLength: offlineScans.length + duplicates.length,
        });
        const replay = new Server(schedule.uses);
        replay.remaining -= server.onlineAccepts;
        for (const scan of reordered) replay.reconcile(scan);
        const replayed = countOutcomes(replay.reconciled.values());
        expect({ remaining: replay.remaining, ...replayed }).toEqual({
          remaining: server.remaining,
          applied,
          exhausted,
          otherConflicts,
        });

        if (exhausted > 0) coverage.conflicts += 1;
        if (exhausted > 0 && exhausted === (schedule.devices - 1) * schedule.accepts)
          coverage.boundReached += 1;
        if (server.duplicateUploads > 0) coverage.duplicates += 1;
        if (accepted.length > 0) coverage.offlineAccepts += 1;
        for (const { refusal } of offlineScans)
          if (refusal) refusals.set(refusal, (refusals.get(refusal) ?? 0) + 1);
      }),
      { numRuns: NUM_RUNS, seed: SEED },
    );

    // The schedules really reach the interesting region: over-spends happen, and some meet the bound exactly
    // (so a bound one lower would fail).
    expect(coverage.offlineAccepts).toBeGreaterThan(NUM_RUNS / 4);
    expect(coverage.conflicts).toBeGreaterThan(NUM_RUNS / 20);
    expect(coverage.boundReached).toBeGreaterThan(0);
    expect(coverage.duplicates).toBeGreaterThan(0);
    // Gates offline meet each of their own limits, not only the happy path.
    for (const code of [
      "offline_limit",
      "offline_too_long",
      "token_replayed",
      "token_expired",
      "exhausted",
    ] as const) {
      expect(refusals.get(code), code).toBeGreaterThan(0);
    }
  });
});
