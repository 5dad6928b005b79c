// The gateway's /api/twinlens/ endpoints (and Immich's asset thumbnails through the same
// gateway). Every request carries Immich's session cookie (same origin) or, when the user
// pasted one, an API key in x-api-key.

export interface JobError {
  path: string;
  error: string;
}

export interface Job {
  service?: string;
  id: string;
  kind: string;
  state: string;
  phase?: string | null;
  trigger?: string | null;
  root?: string | null;
  path?: string | null;
  full?: boolean;
  total: number;
  done: number;
  failed: number;
  bytes_read?: number;
  elapsed_seconds?: number;
  rate?: number;
  bytes_per_second?: number;
  eta_seconds?: number | null;
  /** A scan's walk (core/catalog.py `plan_scan`): files `walked`, `unchanged`, `moved`,
   * `missing`, `revived`, `to_read`, … */
  summary?: Record<string, unknown> | null;
  error?: string | null;
  errors?: JobError[];
  created_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
}

export interface DupMember {
  path: string;
  size?: number | null;
  width?: number | null;
  height?: number | null;
  taken_at?: string | null;
  make?: string | null;
  model?: string | null;
  similarity?: number | null;
  kind?: string | null;
  format?: string | null;
  missing?: boolean;
  assetId?: string | null;
  /** The member's asset when Immich has it only in its trash (then `assetId` is null). */
  trashedAssetId?: string | null;
}

export interface Duplicate {
  id: string;
  type: string;
  status?: string;
  similarity?: number | null;
  keep?: string | null;
  keep_reason?: string | null;
  keepAssetId?: string | null;
  reclaimable_bytes?: number | null;
  created_at?: string | null;
  members: DupMember[];
  /** The decision on a resolved or dismissed group. */
  resolution?: Decision | null;
  /** An open group's last decision, made before a new copy joined and reopened it. */
  previous_resolution?: Decision | null;
}

export interface Decision {
  action?: string;
  keep?: string[];
  /** What a trash decision sent to Immich's trash (null for one recorded before this was
   * kept: then the members not kept). */
  trashed?: { path: string; sha1?: string | null }[] | null;
  created_at?: string;
}

export interface GroupMember {
  path: string;
  kind?: string | null;
  role?: string | null;
  is_primary?: boolean;
  size?: number | null;
  taken_at?: string | null;
  assetId?: string | null;
}

export interface FileGroup {
  id: string;
  type: string;
  primary?: string | null;
  primaryAssetId?: string | null;
  members: GroupMember[];
}

export interface Page<T> {
  items: T[];
  page: number;
  size: number;
  total: number;
}

/** A library file the catalog read with an error (GET /files/errors): unreadable,
 * truncated, empty, not what its name says, or skipped because reading it crashed
 * Twinlens. Listed until a scan reads it without one. */
export interface FileProblem {
  path: string;
  kind?: string | null;
  size?: number | null;
  error: string;
  /** The read failed (I/O, permissions, a crash): later scans read it again by themselves.
   * false: the file itself is bad, and is read again once it changes. */
  retried: boolean;
  /** Not what its name says (a PNG named .jpg): renaming it right gets it read again.
   * Absent from services older than the field. */
  misnamed?: boolean;
  /** When the catalog recorded it (UTC, ISO 8601). */
  since?: string | null;
}

/** A library root (GET /roots): a folder of TWINLENS_LIBRARY_ROOTS, in their order. */
export interface Root {
  /** The catalog's root; null until a scan reached it. */
  id: number | null;
  path: string;
  /** Files cataloged under it. */
  files: number;
  /** True for the demo library `make run` generates when given none (absent otherwise). */
  demo?: boolean;
}

export interface Stats {
  duplicates: Record<string, unknown>;
  groups: { total?: number | null } & Record<string, unknown>;
}

export interface Me {
  user: { id?: string; email?: string; name?: string; isAdmin?: boolean } | null;
  localMode: boolean;
  /** False for an ordinary Immich user while TWINLENS_ADMIN_ONLY is on. */
  canReview: boolean;
}

export interface PlannedFile {
  path: string;
  assetId?: string | null;
}

export interface ResolvePlan {
  id: string;
  action: "trash" | "not_duplicate";
  keep: PlannedFile[];
  trash: PlannedFile[];
  notInImmich: string[];
  inImmichTrash?: string[];
  dryRun: boolean;
  status?: number;
  message?: string;
}

export interface BulkResult {
  dryRun: boolean;
  succeeded: number;
  failed: number;
  results: ResolvePlan[];
}

export type Action = "trash" | "not_duplicate";

/** What splitting (or dissolving) a group left: the groups its former members are in now
 * (empty when every one of them is on its own). */
export interface SplitResult {
  groups: FileGroup[];
}

/** Undoing a duplicate decision: the files that come back from Immich's trash (a "trash"
 * decision only) and those Twinlens cannot bring back because Immich does not know them. */
export interface UndoResult {
  id: string;
  action: Action | null;
  restore: PlannedFile[];
  notInImmich: string[];
  dryRun: boolean;
  restored: number | null;
  duplicate: Duplicate | null;
}

export interface ResolveRequest {
  id: string;
  keep: string[];
  action: Action;
  /** The paths the dry run listed under `trash`: the real run refuses (409) any other. */
  expectTrash?: string[];
}

/** A group member as stacking sees it: its Immich asset for you (null: not in Immich for
 * you) and the Immich stack that asset is in now. Only the members that are stacked are
 * listed (no sidecars, no Live Photo video). */
export interface StackMember {
  path: string;
  assetId: string | null;
  stackId: string | null;
}

/** What stacking a file group in Immich did, or would do (`dryRun`): `stack` (would
 * stack `assetIds`, the cover first), `stacked` (one stack now: `created` says whether
 * this call made it) or `skip` (409, with `reason`). In a bulk answer each group also has
 * its `status`; a group that could not be asked has only `id`, `status` and `message`. */
export interface StackResult {
  id: string;
  type?: string;
  primary?: string | null;
  members?: StackMember[];
  outcome?: "stack" | "stacked" | "skip";
  dryRun?: boolean;
  assetIds?: string[];
  stackId?: string | null;
  /** The cover Immich has, once it is one stack (`stacked`). */
  coverAssetId?: string | null;
  created?: boolean;
  reason?: string;
  /** Why it was not stacked, as a code (`too_few`, `no_cover`, `cover_hidden`,
   * `in_other_stack`, `stack_unreadable`; `changed` for a dry run that no longer holds). */
  reasonCode?: string;
  /** Photos outside the group Immich stacked too (a stack made in Immich meanwhile). */
  outside?: string[];
  status?: number;
  message?: string;
}

export interface BulkStackResult {
  dryRun: boolean;
  succeeded: number;
  failed: number;
  results: StackResult[];
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    /** Seconds the server asked to wait before trying again (Retry-After), if it said. */
    public retryAfter: number | null = null,
  ) {
    super(message);
  }
}

/** Retry-After as seconds from `now`: a number of seconds or an HTTP date; null when
 * absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** What a request that never got an answer says. One that acts (not a dry run) may have
 * reached the gateway before the connection broke: the user must not assume it did not. */
export function unreachableMessage(detail: string, acts: boolean): string {
  const head = `Cannot reach the Twinlens gateway (${detail})`;
  return acts ? `${head}: the action may have happened: reload to see.` : `${head}.`;
}

const KEY_STORAGE = "twinlens.apiKey";
export const UNAUTHORIZED_EVENT = "twinlens:unauthorized";

export function getApiKey(): string {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function setApiKey(key: string): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* private mode: the key lives for this page only */
  }
}

export function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { "x-api-key": key } : {};
}

/** A list's query with a folder (`path_prefix`) beside its other filters: the folder as
 * its bytes (see `quotePath`: a folder whose name is not UTF-8 is asked for as it is on
 * disk). null when the folder cannot be a path (leaving it out would list the whole
 * library under its name). */
export function prefixQuery(
  p: { path_prefix?: string } & Record<string, string | number | undefined>,
): string | null {
  const { path_prefix, ...others } = p;
  const rest = query(others).slice(1);
  const prefix = path_prefix ? quotePath(path_prefix) : "";
  if (prefix === null) return null;
  const parts = [prefix ? `path_prefix=${prefix}` : "", rest].filter(Boolean);
  return parts.length ? `?${parts.join("&")}` : "";
}

const NOT_A_PATH = "That folder is not a file path (it holds an unpaired surrogate).";

/** GET a list filtered by folder (see `prefixQuery`); refused here when the folder
 * cannot be a path. */
function inFolder<T>(path: string, p: { path_prefix?: string } & Record<string, string | number | undefined>) {
  const q = prefixQuery(p);
  return q === null ? Promise.reject(new ApiError(400, NOT_A_PATH)) : request<T>("GET", `${path}${q}`);
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** `acts`: the request changes something (default: any method but GET). */
async function request<T>(
  method: string, path: string, body?: unknown, acts = method !== "GET",
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(`/api/twinlens${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    throw new ApiError(0, unreachableMessage((exc as Error).message, acts));
  }
  const text = await resp.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    if (resp.status === 401) window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    const msg =
      (data && typeof data === "object" && ("message" in data || "error" in data)
        ? String((data as { message?: unknown; error?: unknown }).message ??
            (data as { error?: unknown }).error)
        : "") || `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg, parseRetryAfter(resp.headers.get("Retry-After")));
  }
  return data as T;
}

/** Take `paths` out of group `id` (each on its own); no or empty `paths` dissolves it. */
export function splitGroup(id: string, paths?: string[]): Promise<SplitResult> {
  return request<SplitResult>(
    "POST",
    `/groups/${encodeURIComponent(id)}/split`,
    paths && paths.length ? { paths } : {},
  );
}

/** Put `paths` (two or more) into one manual group; `primary` must be one of them. */
export function mergeGroups(paths: string[], primary?: string | null): Promise<FileGroup> {
  return request<FileGroup>("POST", "/groups/merge", primary ? { paths, primary } : { paths });
}

/** Reopen a resolved or dismissed duplicate group; a dry run only says what would happen. */
export function undoResolution(id: string, dryRun: boolean): Promise<UndoResult> {
  return request<UndoResult>(
    "DELETE",
    `/duplicates/${encodeURIComponent(id)}/resolution${query({ dryRun: dryRun ? "true" : "" })}`,
    undefined,
    !dryRun,
  );
}

export const api = {
  me: () => request<Me>("GET", "/me"),
  stats: () => request<Stats>("GET", "/stats"),
  duplicates: (p: { type?: string; status?: string; path_prefix?: string; page?: number; size?: number }) =>
    inFolder<Page<Duplicate>>("/duplicates", p),
  groups: (p: { type?: string; path_prefix?: string; page?: number; size?: number }) =>
    inFolder<Page<FileGroup>>("/groups", p),
  fileErrors: (p: { path_prefix?: string; page?: number; size?: number }) =>
    inFolder<Page<FileProblem>>("/files/errors", p),
  resolve: (r: ResolveRequest, dryRun: boolean) =>
    request<ResolvePlan>("POST", `/duplicates/${encodeURIComponent(r.id)}/resolve`, {
      keep: r.keep,
      action: r.action,
      dryRun,
      ...(r.expectTrash ? { expectTrash: r.expectTrash } : {}),
    }, !dryRun),
  resolveBulk: (groups: ResolveRequest[], dryRun: boolean) =>
    request<BulkResult>("POST", "/duplicates/resolve", { groups, dryRun }, !dryRun),
  splitGroup,
  mergeGroups,
  /** Stack group `id`'s photos in Immich, its primary the cover (409: not stacked, why).
   * `expect`: the dry run's `assetIds`: nothing is stacked unless it is still exactly that. */
  stackGroup: (id: string, dryRun: boolean, expect?: string[]) =>
    request<StackResult>("POST", `/groups/${encodeURIComponent(id)}/stack`,
                         expect ? { dryRun, expectAssetIds: expect } : { dryRun }, !dryRun),
  /** The same for many groups (at most MAX_BULK_STACK), each with its own status;
   * `expect`: each group's dry run `assetIds`. */
  stackGroups: (ids: string[], dryRun: boolean, expect?: Record<string, string[]>) =>
    request<BulkStackResult>("POST", "/groups/stack",
                             expect ? { ids, dryRun, expectAssetIds: expect } : { ids, dryRun }, !dryRun),
  undoResolution,
  startScan: (body: { full?: boolean } = {}) =>
    request<{ jobs: Job[] }>("POST", "/jobs", body),
  jobs: () => request<{ items: Job[] }>("GET", "/jobs"),
  roots: () => request<{ items: Root[] }>("GET", "/roots"),
  job: (service: string, id: string) =>
    request<Job>("GET", `/jobs/${encodeURIComponent(service)}/${encodeURIComponent(id)}`),
  cancelJob: (service: string, id: string) =>
    request<Job>("DELETE", `/jobs/${encodeURIComponent(service)}/${encodeURIComponent(id)}`),
};

/** Where a member's picture comes from: Immich's thumbnail when Immich knows the asset,
 * else the gateway's thumbnail of the library file. null when the path names no file. */
export function thumbnailUrl(
  m: { path: string; assetId?: string | null },
  localMode: boolean,
  size = 320,
): string | null {
  if (m.assetId && !localMode) {
    return `/api/assets/${encodeURIComponent(m.assetId)}/thumbnail?size=thumbnail`;
  }
  const path = quotePath(m.path);
  return path === null ? null : `/api/twinlens/thumbnail?path=${path}&size=${size}`;
}

const formEncode = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);

/** A file path for a query string, as its bytes. A name that is not UTF-8 arrives from
 * the API with each such byte as a lone surrogate U+DC80-U+DCFF (Python's
 * surrogateescape): it goes back as that byte (%E9), which the gateway decodes the same
 * way. Any other lone surrogate names no file: null. */
export function quotePath(p: string): string | null {
  let out = "";
  let run = "";
  for (const ch of p) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xdc80 && c <= 0xdcff) {
      out += formEncode(run) + "%" + (c - 0xdc00).toString(16).toUpperCase();
      run = "";
    } else if (c >= 0xd800 && c <= 0xdfff) {
      return null;
    } else {
      run += ch;
    }
  }
  return out + formEncode(run);
}

/** A value of a query string back from its bytes, the way the gateway decodes a path
 * (Python's surrogateescape): what is UTF-8 as its characters, each other byte as a lone
 * surrogate U+DC80-U+DCFF, which `quotePath` sends back as that byte. `+` is a space. */
export function unquotePath(q: string): string {
  const bytes: number[] = [];
  const utf8 = new TextEncoder();
  const s = q.replace(/\+/g, " ");
  for (let i = 0; i < s.length; ) {
    if (s[i] === "%" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const ch = String.fromCodePoint(s.codePointAt(i)!);
      bytes.push(...utf8.encode(ch));
      i += ch.length;
    }
  }
  return decodeSurrogateescape(bytes);
}

function decodeSurrogateescape(bytes: number[]): string {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    const [n, min, lead] = b >= 0xc2 && b <= 0xdf ? [1, 0x80, b & 0x1f]
      : b >= 0xe0 && b <= 0xef ? [2, 0x800, b & 0x0f]
      : b >= 0xf0 && b <= 0xf4 ? [3, 0x10000, b & 0x07] : [0, 0, 0];
    let cp = lead;
    let ok = n > 0 && i + n < bytes.length;
    for (let k = 1; ok && k <= n; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
      out += String.fromCodePoint(cp);
      i += n + 1;
    } else {
      out += String.fromCharCode(0xdc00 + b);
      i += 1;
    }
  }
  return out;
}

