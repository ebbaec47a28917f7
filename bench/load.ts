import autocannon from "autocannon";

export interface ScenarioResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  requests: number;
  /** workerd's CPU time (all threads) per request; Linux only. */
  cpu_ms_per_request?: number;
  /** For a scenario measured in several rounds: each round's throughput (the fields above are the median round's). */
  rounds_rps?: number[];
}

export interface LoadOptions {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  connections: number;
  durationSeconds?: number;
  /** Stop after this many requests instead of after a duration (for finite inputs like deliveries). */
  amount?: number;
  /** Builds each request; called once per request, so it can hand out a fresh token or key. */
  next?: () => { method?: "GET" | "POST"; path?: string; body?: string; headers?: Record<string, string> };
  /** Statuses that count as success besides 2xx (e.g. 402 for a deduction that found the wallet empty). */
  okStatuses?: number[];
}

/** Runs autocannon at fixed concurrency and reduces its result to what the report needs. */
export async function load(options: LoadOptions): Promise<ScenarioResult> {
  const target = new URL(options.url);
  let unexpected = 0;
  const result = await autocannon({
    url: target.origin,
    connections: options.connections,
    ...(options.amount ? { amount: options.amount } : { duration: options.durationSeconds }),
    timeout: 10,
    requests: [
      {
        method: options.method ?? "GET",
        path: target.pathname + target.search,
        headers: { "content-type": "application/json", ...options.headers },
        setupRequest: (request) => {
          const next = options.next?.();
          if (!next) return request;
          return {
            ...request,
            method: next.method ?? request.method,
            path: next.path ?? request.path,
            body: next.body ?? request.body,
            headers: { ...request.headers, ...next.headers },
          };
        },
        onResponse: (status) => {
          if (!(status >= 200 && status < 300) && !(options.okStatuses ?? []).includes(status)) unexpected++;
        },
      },
    ],
  });
  return {
    rps: Math.round(result.requests.average * 10) / 10,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    errors: unexpected + result.errors + result.timeouts,
    requests: result.requests.total,
  };
}
