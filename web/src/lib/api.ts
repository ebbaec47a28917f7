// The pages' one way to the API: same-origin JSON over fetch, errors as RFC 9457 problems branched on
// `code`. A request that never got an answer is a NetworkError, so callers can tell "try again with the
// same Idempotency-Key" apart from "the server said no".

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  code: string;
  [extension: string]: unknown;
}

/** The server answered with an error status. */
export class ApiProblem extends Error {
  readonly problem: Problem;
  readonly elapsedMs: number;

  constructor(problem: Problem, elapsedMs: number) {
    super(problem.detail ?? problem.title ?? problem.code);
    this.name = "ApiProblem";
    this.problem = problem;
    this.elapsedMs = elapsedMs;
  }

  get code(): string {
    return this.problem.code;
  }

  get status(): number {
    return this.problem.status;
  }
}

/** No answer arrived (offline, connection reset): the request may or may not have taken effect. */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super("The network request failed", { cause });
    this.name = "NetworkError";
  }
}

export interface RequestOptions {
  token?: string | null;
  body?: unknown;
  idempotencyKey?: string;
  query?: Record<string, string | undefined>;
  accept?: string;
}

export interface ApiResult<T> {
  status: number;
  data: T;
  headers: Headers;
  /** Round trip as the page measured it, from just before fetch to the parsed body. */
  elapsedMs: number;
}

function urlWithQuery(path: string, query: RequestOptions["query"]): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== "") params.set(name, value);
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/**
 * The newest D1 bookmark this tab was answered (`x-d1-bookmark`), sent with every request: the API then
 * reads at least as fresh as what this tab last wrote or saw, even from a read replica (a buyer lists the
 * order they just made, a gate scans with the session it just opened). Bookmarks sort by time, so only a
 * newer one replaces it. Per tab, like the rest of a page's state.
 */
const BOOKMARK_HEADER = "x-d1-bookmark";
const BOOKMARK_KEY = "passes.d1.bookmark";

function storedBookmark(): string | null {
  try {
    return sessionStorage.getItem(BOOKMARK_KEY);
  } catch {
    return null;
  }
}

function keepBookmark(response: Response): void {
  const bookmark = response.headers.get(BOOKMARK_HEADER);
  if (!bookmark) return;
  const known = storedBookmark();
  try {
    if (!known || bookmark > known) sessionStorage.setItem(BOOKMARK_KEY, bookmark);
  } catch {
    // Storage refused (private mode quota): reads are then only as fresh as the nearest copy.
  }
}

function requestInit(method: string, options: RequestOptions): RequestInit {
  const headers = new Headers({ accept: options.accept ?? "application/json" });
  const bookmark = storedBookmark();
  if (bookmark) headers.set(BOOKMARK_HEADER, bookmark);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  if (options.idempotencyKey) headers.set("idempotency-key", options.idempotencyKey);
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (options.body !== undefined) {
    headers.set("content-type", "application/json");
    init.body = JSON.stringify(options.body);
  }
  return init;
}

async function send(method: string, path: string, options: RequestOptions): Promise<Response> {
  try {
    const response = await fetch(urlWithQuery(path, options.query), requestInit(method, options));
    keepBookmark(response);
    return response;
  } catch (error) {
    throw new NetworkError(error);
  }
}

async function problemOf(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as Partial<Problem>;
    if (typeof body.code === "string") return { ...body, status: response.status, code: body.code };
  } catch {
    // Not problem+json (a proxy's error page, say): described by its status alone.
  }
  return { status: response.status, code: `http_${response.status}`, detail: response.statusText };
}

/** A JSON request; resolves for 2xx, rejects with ApiProblem or NetworkError. */
export async function api<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<ApiResult<T>> {
  const started = performance.now();
  const response = await send(method, path, options);
  if (!response.ok) throw new ApiProblem(await problemOf(response), performance.now() - started);
  let data: T;
  try {
    const text = await response.text();
    data = (text ? JSON.parse(text) : null) as T;
  } catch (error) {
    throw new NetworkError(error);
  }
  return { status: response.status, data, headers: response.headers, elapsedMs: performance.now() - started };
}

/** A file download behind a bearer token: fetched as a blob and handed to the browser to save. */
export async function download(path: string, options: RequestOptions, fallbackName: string): Promise<string> {
  const response = await send("GET", path, options);
  if (!response.ok) throw new ApiProblem(await problemOf(response), 0);
  const disposition = response.headers.get("content-disposition") ?? "";
  const name = disposition.match(/filename="([^"]+)"/)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked on the next task: the click has started the download by then.
  setTimeout(() => URL.revokeObjectURL(url), 0);
  return name;
}

/** A fresh Idempotency-Key: one per attempt at an effect, reused only to retry that same attempt. */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}
