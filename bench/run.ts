// `npm run bench [-- --quick]`: throughput and latency of the hot paths as ratios against floors measured
// in the same run on the same machine, written to a table and bench/results.json.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { load, type ScenarioResult } from "./load";
import { cpuMs, findWorkerdPid, profilePath, withCpuProfile } from "./profile";
import {
  buyerToken,
  buyTickets,
  createOrder,
  gateSessionFor,
  insertProduct,
  insertRedemptions,
  login,
  type PendingOrder,
  qrSigner,
  signedDelivery,
} from "./setup";
import { startBenchWorker } from "./start";

const QUICK = process.argv.includes("--quick");
/** `--profile`: also record a V8 CPU profile of each scenario into PROFILE_DIR. */
const PROFILE = process.argv.includes("--profile");
/**
 * `--only=scan,deduct`: run the floors plus the scenarios whose names contain one of these words, and write
 * no results.json (a partial run is for iterating on one path, not a result).
 */
const ONLY = process.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",")
  .filter(Boolean);
const FLOORS = ["floor", "floor_do", "d1_floor"];
const wanted = (...names: string[]) =>
  ONLY === undefined ||
  names.some((name) => FLOORS.includes(name) || ONLY.some((word) => name.includes(word)));
const PROFILE_DIR = ".wrangler/bench/profiles";
const INSPECTOR_PORT = 9329;
const DURATION_SECONDS = QUICK ? 5 : 15;
const WARMUP_SECONDS = 1;
/** Two cores run both the load generator and workerd: a few connections saturate them. */
const CONNECTIONS = 16;
const REPORT_CONNECTIONS = 4;
const SCAN_TICKETS = QUICK ? 100 : 400;
const WEBHOOK_ORDERS = QUICK ? 600 : 2_000;
/** The gate line's families, their tickets each, and the lists their QR screens read per family's scans. */
const GATE_LINE_FAMILIES = 25;
const GATE_LINE_FAMILY_SIZE = 4;
const GATE_LINE_LISTS_PER_FAMILY = 15;
/** Buyers the order scenarios take turns with: 2,000 buyers × the 40-unit cap is far above any run. */
const ORDER_BUYERS = 2_000;
const REPORT_DAY = "2026-10-15";
const REPORT_DAY_ROWS = 10_000;
const REPORT_BIG_TABLE_ROWS = 1_000_000;

/** Targets from the performance issue: medians of the quick run on a 2-core machine. */
const TARGETS = {
  scan_rps_vs_floor: { min: 0.6 },
  scan_p99_vs_floor: { max: 2.0 },
  hot_ticket_rps_vs_floor: { min: 0.5 },
  deduct_rps_vs_floor: { min: 0.5 },
  order_rps_vs_d1_floor: { min: 0.5 },
  report_1m_vs_10k_time: { max: 1.5 },
  /** A retry-safe scan (with an Idempotency-Key) against a plain one, in CPU ms per request. */
  scan_key_cpu_vs_plain: { max: 1.05 },
  /** Each hot path against scan_skeleton, the fixed stack's own cost for a request of the same shape. */
  scan_rps_vs_skeleton: { min: 0.7 },
  deduct_rps_vs_skeleton: { min: 0.7 },
  /** A POS deduction against a scan, in CPU ms per request: the same shape of work (one owner, one write). */
  deduct_cpu_vs_scan: { max: 1.1 },
} as const;

const results: Record<string, ScenarioResult> = {};
const log = (message: string) => process.stderr.write(`${message}\n`);

const worker = await startBenchWorker(PROFILE ? { inspectorPort: INSPECTOR_PORT } : {});
const api = { url: worker.url, secrets: worker.secrets, db: worker.db };
const base = worker.url;
const workerdPid = findWorkerdPid();
if (PROFILE) mkdirSync(PROFILE_DIR, { recursive: true });

/**
 * Runs one measured load and records it under `name`, with workerd's CPU time per request: the cost of a
 * request in the one currency every scenario shares, and much steadier than throughput on a noisy machine.
 */
async function measure(name: string, run: () => Promise<ScenarioResult>): Promise<ScenarioResult> {
  const cpuBefore = workerdPid === null ? null : cpuMs(workerdPid);
  const result = PROFILE
    ? await withCpuProfile(INSPECTOR_PORT, profilePath(PROFILE_DIR, name), run)
    : await run();
  if (cpuBefore !== null && workerdPid !== null && result.requests > 0) {
    result.cpu_ms_per_request = Math.round(((cpuMs(workerdPid) - cpuBefore) / result.requests) * 100) / 100;
  }
  results[name] = result;
  log(
    `  ${result.rps} rps, p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, errors ${result.errors}` +
      (result.cpu_ms_per_request === undefined ? "" : `, ${result.cpu_ms_per_request} CPU ms/request`),
  );
  return result;
}

async function scenario(name: string, run: (seconds: number) => Promise<ScenarioResult>) {
  if (!wanted(name)) return;
  log(`▶ ${name}`);
  await run(WARMUP_SECONDS);
  await measure(name, () => run(DURATION_SECONDS));
}

/**
 * Runs `run` with the objects' queue sends dropped (a diagnostic: see bench/bench-worker.ts), then turns
 * them back on, so every other scenario sends as the product does.
 */
async function withObjectSendsDropped<T>(run: () => Promise<T>): Promise<T> {
  const toggle = (drop: boolean) =>
    fetch(`${base}/__bench/object-sends?drop=${drop ? 1 : 0}`, { method: "POST" }).then((r) => r.json());
  await toggle(true);
  try {
    return await run();
  } finally {
    await toggle(false);
  }
}

/**
 * `floor_do` anchors three ratios, and on a 2-core machine it lands on one of two levels from run to run
 * (about 1,150 or 1,400 rps), which alone moved those ratios by 20 %. So it is measured in three rounds
 * spread over the run (before the scans, the orders and the deductions), and the round with the median
 * throughput is the one reported and divided by; `rounds_rps` keeps all three.
 */
const FLOOR_DO_ROUNDS = 3;
const floorDoRounds: ScenarioResult[] = [];
async function floorDoRound(): Promise<void> {
  const round = floorDoRounds.length + 1;
  const run = (seconds: number) =>
    load({
      url: `${base}/__bench/floor-do?objects=${SCAN_TICKETS}`,
      method: "POST",
      connections: CONNECTIONS,
      durationSeconds: seconds,
    });
  log(`▶ floor_do (round ${round} of ${FLOOR_DO_ROUNDS})`);
  await run(WARMUP_SECONDS);
  const name = round === 1 ? "floor_do" : `floor_do_round_${round}`;
  floorDoRounds.push(await measure(name, () => run(DURATION_SECONDS)));
  if (round > 1) delete results[name];
  const byRps = [...floorDoRounds].sort((a, b) => a.rps - b.rps);
  const median = byRps[Math.floor((byRps.length - 1) / 2)];
  // Reassigning the key keeps its place in the table, where round 1 put it.
  if (median) results.floor_do = { ...median, rounds_rps: floorDoRounds.map((r) => r.rps) };
}

try {
  // Floors: the runtime's own cost for a trivial route, one Durable Object write, one D1 update.
  await scenario("floor", (s) =>
    load({ url: `${base}/__bench/floor`, connections: CONNECTIONS, durationSeconds: s }),
  );
  // Local Durable Objects are one SQLite file each: create every object before measuring, for the floor
  // as for the tickets, so neither scenario pays first-use costs the other does not.
  for (let i = 0; i < SCAN_TICKETS; i++)
    await fetch(`${base}/__bench/floor-do?index=${i}`, { method: "POST" });
  await floorDoRound();
  await scenario("d1_floor", (s) =>
    load({ url: `${base}/__bench/d1-floor`, method: "POST", connections: CONNECTIONS, durationSeconds: s }),
  );

  // Scans: across many tickets, then all on one ticket with a million uses. Tickets and the gate session
  // are set up whatever --only says: the viewer and the wallet scenarios need them too.
  log("… issuing tickets");
  await insertProduct(api, "prd_bench_pass", [{ function: "bus", uses: 1_000_000 }], 1_000_000);
  const codes = await buyTickets(api, "bench-scanner", "prd_bench_pass", SCAN_TICKETS);
  const gate = await gateSessionFor(api);
  const sign = await qrSigner(api);
  const scanBody = async (code: string) =>
    JSON.stringify({
      qr_token: await sign("ticket-qr+jwt", code, 60),
      function: "bus",
      session_id: gate.sessionId,
    });
  // Tokens are single-use, so each request needs its own; signing them ahead keeps the client out of the way.
  const tokenPool = async (count: number, pick: (i: number) => string) =>
    Promise.all(Array.from({ length: count }, (_, i) => scanBody(pick(i))));
  const scanLoad = async (
    seconds: number,
    pick: (i: number) => string,
    url = `${base}/tickets/scan`,
    options: { keyed?: boolean } = {},
  ) => {
    const bodies = await tokenPool(Math.ceil(seconds * 3_000), pick);
    let i = 0;
    return load({
      url,
      method: "POST",
      headers: { authorization: `Bearer ${gate.token}` },
      connections: CONNECTIONS,
      durationSeconds: seconds,
      // A gate's retry-safe scan: its own Idempotency-Key per attempt.
      next: () => ({
        body: bodies[i++ % bodies.length],
        ...(options.keyed && { headers: { "idempotency-key": crypto.randomUUID() } }),
      }),
    });
  };
  for (const code of wanted("scan_many_tickets", "scan_skeleton", "scan_hot_ticket") ? codes : []) {
    await fetch(`${base}/tickets/scan`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${gate.token}` },
      body: await scanBody(code),
    });
  }
  await scenario("scan_many_tickets", (s) => scanLoad(s, (i) => codes[i % codes.length] ?? ""));
  await scenario("scan_many_tickets_keyed", (s) =>
    scanLoad(s, (i) => codes[i % codes.length] ?? "", `${base}/tickets/scan`, { keyed: true }),
  );
  await withObjectSendsDropped(() =>
    scenario("scan_many_tickets_unsent", (s) => scanLoad(s, (i) => codes[i % codes.length] ?? "")),
  );
  await scenario("scan_skeleton", (s) =>
    scanLoad(s, (i) => codes[i % codes.length] ?? "", `${base}/__bench/scan-skeleton`),
  );
  const hot = codes[0] ?? "";
  await scenario("scan_hot_ticket", (s) => scanLoad(s, () => hot));

  await floorDoRound();

  // Orders: each request a new Idempotency-Key, all on one product, spread over many buyers: one buyer may
  // hold only MAX_PENDING_UNITS_PER_BUYER unpaid units, as a real crowd of buyers would never notice.
  await insertProduct(api, "prd_bench_orders", [{ function: "bus", uses: 1 }], 100_000_000);
  const orderTokens = await Promise.all(
    Array.from({ length: ORDER_BUYERS }, (_, i) => buyerToken(api, `bench-orders-${i}`)),
  );
  let orderBuyer = 0;
  const nextOrderToken = () => orderTokens[orderBuyer++ % orderTokens.length] ?? "";
  await scenario("order_create", (s) =>
    load({
      url: `${base}/orders`,
      method: "POST",
      connections: CONNECTIONS,
      durationSeconds: s,
      next: () => ({
        headers: { authorization: `Bearer ${nextOrderToken()}`, "idempotency-key": crypto.randomUUID() },
        body: JSON.stringify({ items: [{ product_id: "prd_bench_orders", quantity: 1 }] }),
      }),
    }),
  );

  // Webhook issuance: signed SUCCESS deliveries for pending orders of 2 tickets each.
  if (wanted("webhook_issuance")) {
    log("… creating pending orders");
    const pending: PendingOrder[] = [];
    for (let i = 0; i < WEBHOOK_ORDERS + 200; i += 50) {
      pending.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, () => createOrder(api, nextOrderToken(), "prd_bench_orders", 2)),
        )),
      );
    }
    let nextOrder = 0;
    const deliveries = (count: number) =>
      load({
        url: `${base}/payments/webhook`,
        method: "POST",
        connections: CONNECTIONS,
        amount: count,
        next: () => {
          const order = pending[nextOrder++];
          if (!order) throw new Error("bench ran out of pending orders");
          return signedDelivery(api, {
            payment_id: `pay_${crypto.randomUUID()}`,
            reference: order.order_id,
            status: "SUCCESS",
            amount_cents: order.amount_due_cents,
            currency: order.currency,
          });
        },
      });
    log("▶ webhook_issuance");
    await deliveries(200);
    await measure("webhook_issuance", () => deliveries(WEBHOOK_ORDERS));
  }

  // A buyer looking at their tickets (5 tickets, some scanned).
  const viewer = await buyTickets(api, "bench-viewer", "prd_bench_pass", 5);
  const viewerToken = await buyerToken(api, "bench-viewer");
  for (const code of viewer.slice(0, 2)) {
    await fetch(`${base}/tickets/scan`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${gate.token}` },
      body: await scanBody(code),
    });
  }
  await scenario("my_tickets", (s) =>
    load({
      url: `${base}/my/tickets`,
      headers: { authorization: `Bearer ${viewerToken}` },
      connections: CONNECTIONS,
      durationSeconds: s,
    }),
  );

  // A gate's line as it is: families of four waiting with the QR screen open, which reads the list every
  // 4 s (web/src/buyer/qr-screen.ts), so ~15 lists per family for its 4 scans. CPU per request of the mix
  // is what the holder object trades (an extra call per scan, one call per list instead of one per ticket).
  if (wanted("gate_line")) {
    const families = await Promise.all(
      Array.from({ length: GATE_LINE_FAMILIES }, async (_, f) => ({
        token: await buyerToken(api, `bench-family-${f}`),
        codes: await buyTickets(api, `bench-family-${f}`, "prd_bench_pass", GATE_LINE_FAMILY_SIZE),
      })),
    );
    const perFamily = GATE_LINE_LISTS_PER_FAMILY + GATE_LINE_FAMILY_SIZE;
    await scenario("gate_line", async (s) => {
      // Each family's scans, signed ahead: one per ticket per round through the families.
      const rounds = Math.ceil((s * 3_000) / (GATE_LINE_FAMILIES * perFamily)) + 1;
      const scans = await Promise.all(
        families.map(async (family) =>
          Promise.all(
            Array.from({ length: rounds * GATE_LINE_FAMILY_SIZE }, (_, i) =>
              scanBody(family.codes[i % family.codes.length] ?? ""),
            ),
          ),
        ),
      );
      let n = 0;
      return load({
        url: `${base}/my/tickets`,
        connections: CONNECTIONS,
        durationSeconds: s,
        okStatuses: [409],
        next: () => {
          const step = n++;
          const slot = step % perFamily;
          const f = Math.floor(step / perFamily) % GATE_LINE_FAMILIES;
          const family = families[f];
          if (!family) throw new Error("no family");
          if (slot < GATE_LINE_LISTS_PER_FAMILY) {
            return {
              method: "GET",
              path: "/my/tickets",
              headers: { authorization: `Bearer ${family.token}` },
            };
          }
          const round = Math.floor(step / (perFamily * GATE_LINE_FAMILIES));
          const body =
            scans[f]?.[
              (round * GATE_LINE_FAMILY_SIZE + (slot - GATE_LINE_LISTS_PER_FAMILY)) %
                (rounds * GATE_LINE_FAMILY_SIZE)
            ];
          return {
            method: "POST",
            path: "/tickets/scan",
            body,
            headers: { authorization: `Bearer ${gate.token}` },
          };
        },
      });
    });
  }

  await floorDoRound();

  // POS deductions, when the wallet slice is deployed in this build.
  const walletProbe = await fetch(`${base}/wallet`, { headers: { authorization: `Bearer ${viewerToken}` } });
  if (walletProbe.status === 200 && wanted("deduct_many_wallets", "deduct_hot_wallet")) {
    const { runDeductionScenarios } = await import("./wallet-scenarios");
    await runDeductionScenarios({
      api,
      base,
      sign,
      connections: CONNECTIONS,
      seconds: DURATION_SECONDS,
      warmup: WARMUP_SECONDS,
      log,
      measure,
      withObjectSendsDropped,
    });
  } else if (walletProbe.status !== 200) {
    log("… wallet routes absent: POS deduction scenarios skipped");
  }

  // Reports: the same one-day query with 10k rows in the table, then with a million.
  if (wanted("report_day_10k_rows", "report_day_1m_rows")) {
    const analyst = await login(api, "analyst-demo");
    const reportLoad = (s: number) =>
      load({
        url: `${base}/reports/redemptions?from=${REPORT_DAY}&to=${REPORT_DAY}`,
        headers: { authorization: `Bearer ${analyst}` },
        connections: REPORT_CONNECTIONS,
        durationSeconds: s,
      });
    log("… inserting 10k redemption rows");
    await insertRedemptions(api, REPORT_DAY, REPORT_DAY_ROWS, 0, "red_bench_a_");
    await scenario("report_day_10k_rows", reportLoad);
    log("… growing the table to 1M rows");
    await insertRedemptions(api, REPORT_DAY, 0, REPORT_BIG_TABLE_ROWS - REPORT_DAY_ROWS, "red_bench_b_");
    await scenario("report_day_1m_rows", reportLoad);
  }
} finally {
  await worker.mf.dispose();
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? null : Math.round((a / b) * 100) / 100;
const ratios: Record<keyof typeof TARGETS, number | null> = {
  scan_rps_vs_floor: ratio(results.scan_many_tickets?.rps, results.floor_do?.rps),
  scan_p99_vs_floor: ratio(results.scan_many_tickets?.p99_ms, results.floor_do?.p99_ms),
  hot_ticket_rps_vs_floor: ratio(results.scan_hot_ticket?.rps, results.floor_do?.rps),
  deduct_rps_vs_floor: ratio(results.deduct_many_wallets?.rps, results.floor_do?.rps),
  order_rps_vs_d1_floor: ratio(results.order_create?.rps, results.d1_floor?.rps),
  report_1m_vs_10k_time: ratio(results.report_day_1m_rows?.p50_ms, results.report_day_10k_rows?.p50_ms),
  scan_key_cpu_vs_plain: ratio(
    results.scan_many_tickets_keyed?.cpu_ms_per_request,
    results.scan_many_tickets?.cpu_ms_per_request,
  ),
  scan_rps_vs_skeleton: ratio(results.scan_many_tickets?.rps, results.scan_skeleton?.rps),
  deduct_rps_vs_skeleton: ratio(results.deduct_many_wallets?.rps, results.scan_skeleton?.rps),
  deduct_cpu_vs_scan: ratio(
    results.deduct_many_wallets?.cpu_ms_per_request,
    results.scan_many_tickets?.cpu_ms_per_request,
  ),
};
/**
 * Not targets: the same ratios for the `_unsent` twins, whose objects' queue sends were dropped. What a
 * ratio gains between a scenario and its twin is the per-object send and its consumer's share here.
 */
const diagnostics = {
  scan_unsent_rps_vs_floor: ratio(results.scan_many_tickets_unsent?.rps, results.floor_do?.rps),
  deduct_unsent_rps_vs_floor: ratio(results.deduct_many_wallets_unsent?.rps, results.floor_do?.rps),
  scan_unsent_rps_vs_skeleton: ratio(results.scan_many_tickets_unsent?.rps, results.scan_skeleton?.rps),
  deduct_unsent_rps_vs_skeleton: ratio(results.deduct_many_wallets_unsent?.rps, results.scan_skeleton?.rps),
  deduct_unsent_cpu_vs_scan_unsent: ratio(
    results.deduct_many_wallets_unsent?.cpu_ms_per_request,
    results.scan_many_tickets_unsent?.cpu_ms_per_request,
  ),
};
const verdicts = Object.fromEntries(
  (Object.keys(TARGETS) as (keyof typeof TARGETS)[]).map((name) => {
    const target: { min?: number; max?: number } = TARGETS[name];
    const value = ratios[name];
    const met =
      value === null
        ? null
        : target.min !== undefined
          ? value >= target.min
          : value <= (target.max ?? Infinity);
    return [name, { value, target, met }];
  }),
);

const rows = Object.entries(results).map(
  ([name, r]) =>
    `| ${name.padEnd(22)} | ${String(r.rps).padStart(8)} | ${String(r.p50_ms).padStart(6)} | ${String(r.p99_ms).padStart(6)} | ${String(r.errors).padStart(6)} | ${String(r.cpu_ms_per_request ?? "n/a").padStart(11)} |`,
);
console.log(
  `\n| scenario               |      rps | p50 ms | p99 ms | errors | CPU ms/req |\n|---|---:|---:|---:|---:|---:|\n${rows.join("\n")}\n`,
);
console.log("| ratio | value | target | met |\n|---|---:|---|---|");
for (const [name, v] of Object.entries(verdicts)) {
  const target = "min" in v.target ? `≥ ${v.target.min}` : `≤ ${v.target.max}`;
  console.log(
    `| ${name} | ${v.value ?? "n/a"} | ${target} | ${v.met === null ? "n/a" : v.met ? "yes" : "NO"} |`,
  );
}
console.log("\n| diagnostic (no target) | value |\n|---|---:|");
for (const [name, value] of Object.entries(diagnostics)) console.log(`| ${name} | ${value ?? "n/a"} |`);

if (ONLY === undefined)
  writeFileSync(
    "bench/results.json",
    `${JSON.stringify(
      {
        generated_at: new Date().toISOString(),
        mode: QUICK ? "quick" : "full",
        machine: { cpus: cpus().length, node: process.version },
        duration_seconds: DURATION_SECONDS,
        connections: CONNECTIONS,
        scenarios: results,
        ratios,
        targets: verdicts,
        diagnostics,
      },
      null,
      2,
    )}\n`,
  );
const missed = Object.entries(verdicts)
  .filter(([, v]) => v.met === false)
  .map(([name]) => name);
if (missed.length > 0) {
  console.error(`targets missed: ${missed.join(", ")}`);
  process.exitCode = 1;
}
