// Where a scenario's time goes: workerd's CPU time per request (Linux /proc accounting, far steadier on a
// noisy machine than requests per second) and, with `--profile`, a V8 CPU profile of the Worker's isolate
// taken over the inspector protocol, written where Chrome DevTools' Performance panel can open it.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const CLOCK_TICKS_PER_SECOND = 100;

/** The workerd process Miniflare started for this bench run (a direct child of this process). */
export function findWorkerdPid(): number | null {
  if (process.platform !== "linux") return null;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8").trim();
      const [, comm, rest] = stat.match(/^\d+ \((.*)\) (.*)$/) ?? [];
      const ppid = Number(rest?.split(" ")[1]);
      if (comm === "workerd" && ppid === process.pid) return Number(entry);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return null;
}

/** User + system CPU milliseconds the process has used so far (all its threads). */
export function cpuMs(pid: number): number {
  const rest = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 once pid and comm are cut off.
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

interface InspectorTarget {
  title?: string;
  webSocketDebuggerUrl: string;
}

/** Records a CPU profile of the product Worker's isolate while `run` runs. */
export async function withCpuProfile<T>(
  inspectorPort: number,
  outFile: string,
  run: () => Promise<T>,
): Promise<T> {
  const targets = (await (
    await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)
  ).json()) as InspectorTarget[];
  // Miniflare names the user Worker's isolate "core:user:<name>"; the rest are its own plumbing.
  const target = targets.find((t) => t.title?.includes("core:user:"));
  if (!target) throw new Error(`no user worker among inspector targets: ${targets.map((t) => t.title)}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("error", reject, { once: true });
  });
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  });
  const send = (method: string) =>
    new Promise<unknown>((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ id, method }));
    });
  await send("Profiler.enable");
  await send("Profiler.start");
  try {
    return await run();
  } finally {
    const { profile } = (await send("Profiler.stop")) as { profile: unknown };
    writeFileSync(outFile, JSON.stringify(profile));
    socket.close();
  }
}

export const profilePath = (dir: string, scenario: string) => join(dir, `${scenario}.cpuprofile`);
