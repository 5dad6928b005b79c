// Pure helpers: formatting and the arithmetic behind what the UI promises the user.
import {
  ApiError, type Duplicate, type DupMember, type FileGroup, type Job, type ResolvePlan,
  type ResolveRequest, type Root, type UndoResult,
} from "./api";

export const ACTIVE_STATES = ["queued", "running"];

export function isActive(job: Pick<Job, "state">): boolean {
  return ACTIVE_STATES.includes(job.state);
}

/** Bytes in decimal units (1 kB = 1,000 bytes, 1 MB = 10^6, 1 GB = 10^9), as the terminal
 * says them ("6.3 MB read"), so that both give one figure for one scan. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  const shown = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  let v = n / 1000;
  let i = 0;
  // (999,960 bytes would be "1000 kB": said as "1.0 MB")
  while (Number(shown(v)) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${shown(v)} ${units[i]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return "–";
  }
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (x: number) => String(x).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? "–" : n.toLocaleString("en-US");
}

/** Fraction done in [0, 1]; null while the total is not known yet. */
export function progressFraction(job: Pick<Job, "total" | "done">): number | null {
  if (!job.total || job.total <= 0) return null;
  return Math.min(1, Math.max(0, job.done / job.total));
}

export function basename(path: string): string {
  const i = path.lastIndexOf("/");
  return i >= 0 ? path.slice(i + 1) : path;
}

/** A file's name as it can be shown (see `displayPath`). */
export function displayName(path: string): string {
  return displayPath(basename(path));
}

export function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i > 0 ? path.slice(0, i) : i === 0 ? "/" : "";
}

export function camera(m: Pick<DupMember, "make" | "model">): string {
  const make = (m.make ?? "").trim();
  const model = (m.model ?? "").trim();
  if (!make) return model;
  if (!model) return make;
  // Many cameras repeat the maker in the model tag ("Canon" + "Canon EOS R5").
  return model.toLowerCase().startsWith(make.toLowerCase()) ? model : `${make} ${model}`;
}

export function formatTakenAt(iso: string | null | undefined): string {
  if (!iso) return "";
  // Capture times are camera-local wall-clock times: show them as written, not shifted.
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)/.exec(iso);
  return m ? `${m[1]} ${m[2]}` : iso;
}

export function formatSimilarity(s: number | null | undefined): string {
  if (s === null || s === undefined) return "";
  return `${(s * 100).toFixed(s >= 0.9995 ? 0 : 1)}%`;
}

/** The member the UI keeps unless the user picks another: the suggestion if it is a
 * member, else the first member. */
export function defaultKeep(dup: Pick<Duplicate, "keep" | "members">): string | null {
  if (dup.keep && dup.members.some((m) => m.path === dup.keep)) return dup.keep;
  return dup.members[0]?.path ?? null;
}

/** The copy a "trash" decision kept (for showing a resolved group as it was decided), or
 * null when there is none to show. */
export function decidedKeep(dup: Pick<Duplicate, "resolution" | "members">): string | null {
  const r = dup.resolution;
  if (!r || r.action !== "trash") return null;
  return (r.keep ?? []).find((k) => dup.members.some((m) => m.path === k)) ?? null;
}

export interface PlanTotals {
  groups: number;
  trashFiles: number;
  trashBytes: number;
  keptFiles: number;
  notInImmich: number;
  /** Copies to go that are in Immich's trash already: confirming records the decision. */
  inImmichTrash: number;
  refused: { id: string; message: string }[];
}

/** What a set of dry-run plans would do, with sizes from the groups the user is looking at. */
export function planTotals(plans: ResolvePlan[], dups: Duplicate[]): PlanTotals {
  const sizes = new Map<string, number>();
  for (const d of dups) for (const m of d.members) sizes.set(`${d.id}\u0000${m.path}`, m.size ?? 0);
  const out: PlanTotals = {
    groups: 0, trashFiles: 0, trashBytes: 0, keptFiles: 0, notInImmich: 0, inImmichTrash: 0,
    refused: [],
  };
  for (const p of plans) {
    if (p.status !== undefined && p.status !== 200) {
      out.refused.push({ id: p.id, message: p.message ?? `error ${p.status}` });
      continue;
    }
    out.groups += 1;
    out.keptFiles += p.keep?.length ?? 0;
    out.notInImmich += p.notInImmich?.length ?? 0;
    out.inImmichTrash += p.inImmichTrash?.length ?? 0;
    for (const t of p.trash ?? []) {
      out.trashFiles += 1;
      out.trashBytes += sizes.get(`${p.id}\u0000${t.path}`) ?? 0;
    }
  }
  return out;
}

/** The confirm button of a dry run: what it says, and whether there is anything to
 * confirm. With nothing to move but copies already in Immich's trash, the gateway still
 * records the decision (the group leaves the list; the copies go when that trash is
 * emptied). */
export function confirmButton(t: PlanTotals): { label: string; enabled: boolean } {
  if (t.trashFiles === 0 && t.inImmichTrash > 0) {
    return {
      label: `Record decision (the other ${t.inImmichTrash === 1 ? "copy is" : "copies are"} ` +
        "already in Immich's trash)",
      enabled: true,
    };
  }
  return {
    label: `Move ${plural(t.trashFiles, "file")} to trash`,
    enabled: t.trashFiles > 0,
  };
}

/** Jobs listed by both services share one database, so the same job can appear twice. */
export function uniqueJobs(items: Job[]): Job[] {
  const seen = new Set<string>();
  const out: Job[] = [];
  for (const j of items) {
    if (seen.has(j.id)) continue;
    seen.add(j.id);
    out.push(j);
  }
  return out;
}

/** Numeric breakdowns found in the dedup stats (e.g. {by_type: {exact: 3}}), as rows. */
export function statBreakdowns(
  stats: Record<string, unknown>,
): { name: string; rows: [string, number][] }[] {
  const out: { name: string; rows: [string, number][] }[] = [];
  for (const [name, value] of Object.entries(stats)) {
    if (!value || typeof value !== "object" || Array.isArray(value)) continue;
    const rows = Object.entries(value as Record<string, unknown>).filter(
      (e): e is [string, number] => typeof e[1] === "number",
    );
    if (rows.length) out.push({ name, rows });
  }
  return out;
}

export function humanize(key: string): string {
  const s = key.replace(/^by_/, "by ").replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export const GROUP_TYPES: Record<string, string> = {
  raw_jpeg: "RAW + JPEG",
  live_photo: "Live Photo",
  edited: "Edited version",
  edit: "Edited version",
  sidecar: "Sidecar",
  burst: "Burst",
  manual: "Manual",
};

export function groupTypeLabel(t: string): string {
  return GROUP_TYPES[t] ?? humanize(t);
}

/** What the Overview says of a folder whose figures are all nothing (once all are in):
 * likely a folder typed that holds no file of the library (misspelt, or under another
 * root), which zeros alone would not say. Null while a figure is missing or not nothing. */
export function emptyFolderNote(
  folder: string,
  figures: { open: number; total: number; groups: number } | null,
  problems: number | null,
): string | null {
  if (!folder || !figures || problems === null) return null;
  if (figures.open || figures.total || figures.groups || problems) return null;
  return `Nothing of the library is listed in ${displayPath(folder)}: no duplicate, file group or ` +
    "file with a problem has a file there. If it is not the folder you meant, check its name " +
    "(and the Library folder picked).";
}

/** What a finished scan that read no file did, in words: "Nothing changed (2,524 files
 * already cataloged)" rather than "0 / 0 files", which reads as an empty library. Its own
 * summary (core/catalog.py `plan_scan`: files moved, gone or back) says what changed
 * without a read; `cataloged` is how many files its root (or folder) holds in the catalog
 * (GET /roots), else the files it found unchanged. Null for a scan that read files: its
 * figures say what it did. */
export function unreadScanText(
  job: Pick<Job, "state" | "total" | "summary">, cataloged: number | null,
): string | null {
  if (job.total > 0) return null;
  const s = job.summary ?? {};
  const count = (k: string) => (typeof s[k] === "number" && Number.isFinite(s[k]) ? s[k] as number : 0);
  const files = cataloged ?? (typeof s.unchanged === "number" ? s.unchanged : null);
  const held = files === null ? "" : `${formatCount(files)} ${files === 1 ? "file" : "files"}`;
  if (job.state !== "done") return `No file was read${held && ` (${held} cataloged)`}`;
  const changes = [
    count("moved") && `${formatCount(count("moved"))} moved or renamed`,
    count("missing") && `${formatCount(count("missing"))} gone from disk`,
    count("revived") && `${formatCount(count("revived"))} back on disk`,
  ].filter(Boolean);
  if (!changes.length && files === 0) return "No files found to catalog";
  if (!changes.length) return `Nothing changed${held && ` (${held} already cataloged)`}`;
  return `No file needed reading: ${changes.join(", ")}${held && ` (${held} cataloged)`}`;
}

/** The files of a scan's root (or folder) with a problem, all scans taken together (GET
 * /files/errors), said on a scan that read none: its own count of failed files is then no
 * count of the library's. "Problem", not "cannot be read": the list holds mis-named files
 * too, which were read whole. */
export function scopeProblemsText(total: number | null): string | null {
  if (total === null) return null;
  if (total === 0) return "No file has a problem";
  return `${formatCount(total)} ${total === 1 ? "file has a problem" : "files have problems"}`;
}

/** The command that gives Twinlens the user's own photos instead of the demo. */
export const OWN_LIBRARY_COMMAND = "make run LIBRARY=/path/to/photos";

/** Said when the library shown is the demo `make run` generates when given none (GET
 * /roots names it `demo`): made-up photos, and how to see one's own instead. */
export function demoNote(roots: readonly Pick<Root, "path" | "demo">[]): string | null {
  const demo = roots.filter((r) => r.demo);
  if (!demo.length) return null;
  const where = demo.map((r) => displayPath(r.path)).join(", ");
  return `This is a demo library: Twinlens generated it in ${where} because it was started ` +
    "without a library of yours. Its copies, look-alikes, Live Photos, edits and broken files " +
    "are made up, and cataloged in a database of their own, so nothing of them stays in your " +
    `library's lists. To see your own photos, stop Twinlens (Ctrl-C) and run ${OWN_LIBRARY_COMMAND}.`;
}

/** One row of the Overview's duplicate groups by kind: the open groups, those decided
 * (resolved or not duplicates) and what removing the open ones' copies frees, so that
 * every column but "Decided" is of open groups. `open` is null while unknown (the stats
 * count kinds over every status: the open ones of a kind come from the list). */
export interface KindRow {
  type: string;
  open: number | null;
  decided: number | null;
  reclaimable: number | null;
}

export function duplicateKindRows(
  stats: Record<string, unknown>, openByType: Record<string, number> | null,
): KindRow[] {
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const byType = (stats.by_type ?? {}) as Record<string, unknown>;
  const reclaim = (stats.reclaimable ?? {}) as Record<string, unknown>;
  return Object.keys(byType).map((type) => {
    const all = num(byType[type]);
    const open = num(openByType?.[type]);
    return {
      type,
      open,
      decided: all !== null && open !== null ? Math.max(0, all - open) : null,
      reclaimable: num(reclaim[`${type}_bytes`]),
    };
  });
}

/** What the Groups page says when its list is empty: of the type and folder it lists. */
export function groupsEmptyText(type: string, folder: string): string {
  const what = type ? `${groupTypeLabel(type)} groups` : "groups";
  return folder ? `No ${what} with a file in ${displayPath(folder)}.` : `No ${what} here.`;
}

// Reasons recorded by core/dedup/keeper.py: the first rule that left one candidate.
export const KEEP_REASONS: Record<string, string> = {
  intact: "the only copy not empty, cut short or corrupt",
  resolution: "highest resolution",
  // A copy that still carries its capture date wins; among several, the earliest
  capture_time: "kept its capture date",
  folder: "preferred folder",
  file_group: "belongs with its RAW, Live Photo video or sidecars",
  format: "preferred format",
  jpeg_quality: "encoded at a higher JPEG quality",
  size: "largest file",
  name: "not named as a copy, nor in a backup or Takeout folder",
  // After every rule, the keeper takes the smallest path as a string
  "tie: path": "all equal; first path alphabetically",
  only: "only candidate",
};

export function keepReasonLabel(r: string | null | undefined): string {
  if (!r) return "";
  return KEEP_REASONS[r] ?? r.replace(/_/g, " ");
}

/** How a member card is marked: the copy kept, one that goes, or neither (a group
 * decided "not duplicates" keeps every copy and moves none). A group resolved by a trash
 * decision marks every copy the decision kept as kept. */
export function memberMark(
  dup: Pick<Duplicate, "status" | "resolution">, keep: string, path: string,
): "kept" | "goes" | "" {
  const open = (dup.status ?? "open") === "open";
  if (!open && dup.resolution?.action !== "trash") return "";
  if (!open && (dup.resolution?.keep ?? []).includes(path)) return "kept";
  return path === keep ? "kept" : "goes";
}

/** What a decided group's decision did with one of its members, as its card says it
 * (instead of "Keep this one"); null for an open group, or one with no decision shown.
 * A trash decision records what it sent to Immich's trash (`trashed`); one recorded
 * before that, the members not kept. A member neither kept nor sent was left alone: it
 * was in Immich's trash already, or not in Immich (untouched on disk).
 *
 * What Immich holds now has the last word over what the decision meant to do: a member
 * sent to the trash that Immich shows live (`assetId`: the trash never happened, or the
 * user restored it in Immich) is still in Immich, and a member left alone that Immich
 * shows live now is not "not in Immich". */
export function memberOutcome(
  dup: Pick<Duplicate, "status" | "resolution">,
  m: Pick<DupMember, "path" | "assetId" | "trashedAssetId">,
): string | null {
  const r = dup.resolution;
  if ((dup.status ?? "open") === "open" || !r) return null;
  if (r.action !== "trash") return "Kept: not duplicates";
  if ((r.keep ?? []).includes(m.path)) return "Kept";
  if (!Array.isArray(r.trashed) || r.trashed.some((t) => t.path === m.path)) {
    return m.assetId ? "Still in Immich (not in its trash)" : "Moved to Immich's trash";
  }
  if (m.trashedAssetId) return "Already in Immich's trash";
  return m.assetId ? "Left on disk untouched" : "Left on disk untouched (not in Immich)";
}

/** The note after "Not duplicates": byte-identical copies are copies, not look-alikes. */
export function dismissNotice(type: string, name: string): string {
  return `Marked ${name} and its ${type === "exact" ? "copies" : "look-alikes"} as not duplicates.`;
}

// --- what an action's outcome says ----------------------------------------------------

export const STALE_NOTICE =
  "This group changed since the page was loaded (a scan ran, or someone else decided it); " +
  "the list is refreshed.";

// The refusals that mean "not the group you saw": gone (404), decided meanwhile, changed
// since the dry run, a scan changed its members or won a race.
const STALE_MESSAGES = [
  /^duplicate group \S+ is already /,
  /^duplicate group \S+ changed: /,
  /^duplicate group \S+ is open: there is no decision to (undo|withdraw)/,
  /^this group changed since its dry run/,
  /^a concurrent change to the same files won/,
  /^not members of (this )?group/,
  /^keep names files outside this group/,
];

/** What a failed action says, and whether the list is read again: after a 404 or a 409
 * it may no longer show what the server holds. A refusal that is not about a change
 * (Immich's trash is off, a copy to keep is gone from disk...) keeps its own words. */
export function actionFailure(e: unknown): { text: string; reload: boolean } {
  const message = e instanceof Error ? e.message : String(e);
  const status = e instanceof ApiError ? e.status : null;
  if (status === 404) return { text: STALE_NOTICE, reload: true };
  if ((status === 409 || status === 400) && STALE_MESSAGES.some((r) => r.test(message))) {
    return { text: STALE_NOTICE, reload: true };
  }
  return { text: message, reload: status === 409 };
}

/** Where the notes of cards no longer listed go: each at the place its card had, among
 * the cards listed now (in the order the notes were made). */
export function placeNotes<T extends { id: string }>(
  items: T[], notes: { id: string; index: number }[],
): ({ item: T; id: string } | { item: null; id: string })[] {
  const listed = new Set(items.map((i) => i.id));
  const out: ({ item: T; id: string } | { item: null; id: string })[] =
    items.map((item) => ({ item, id: item.id }));
  const stubs = notes.filter((n) => !listed.has(n.id)).sort((a, b) => a.index - b.index);
  for (const n of stubs) out.splice(Math.min(Math.max(0, n.index), out.length), 0, { item: null, id: n.id });
  return out;
}

/** Notes carried to the page a list stepped back to by itself (its last page emptied): the
 * same notes, first on that page, in the order they had. */
export function carryNotes<N extends { index: number }>(byId: Record<string, N>): Record<string, N> {
  const order = Object.entries(byId).sort(([, a], [, b]) => a.index - b.index);
  return Object.fromEntries(order.map(([id, n], i) => [id, { ...n, index: i }]));
}

/** The notes of a list's `key`: those written on it, or carried to it by a step back. */
export function notesOf<N>(s: { key: string; to?: string; byId: Record<string, N> }, key: string): Record<string, N> {
  return s.key === key || s.to === key ? s.byId : {};
}

/** How long to wait before loading a list again by itself after `e`, in ms, or null: a
 * busy service (503) said how long (Retry-After; 5 s when it did not), at most `max`
 * tries, each wait between 1 s and a minute. */
export function retryDelay(e: unknown, attempt: number, max = 3): number | null {
  if (!(e instanceof ApiError) || e.status !== 503 || attempt >= max) return null;
  const s = e.retryAfter ?? 5;
  return Math.min(60, Math.max(1, s)) * 1000;
}

// --- the Overview's scans ---------------------------------------------------------------

export const TRIGGER_LABEL: Record<string, string> = {
  api: "started from the web UI or the API",
  cli: "started from the command line",
  schedule: "nightly rescan",
  watch: "new or changed files",
  "watch-start": "catching up at start-up",
  scan: "after a scan",
};

export function triggerLabel(t: string | null | undefined): string {
  return t ? TRIGGER_LABEL[t] ?? humanize(t) : "";
}

/** A scan of a whole library root, not of a folder in it. */
export function isFullScan(j: Pick<Job, "kind" | "path" | "root">): boolean {
  return j.kind === "scan" && (!j.path || !j.root || j.path === j.root);
}

export interface ScanOverview {
  /** Of each library root, the newest finished scan of that whole root (its unreadable
   * files are that root's), newest first: with several roots, one root's scan says
   * nothing of another's. */
  full: Job[];
  /** The newest finished folder scan newer than the last whole scan of its root (the
   * watcher's, mostly). */
  folder: Job | null;
  /** Per kind, the newest failed job no later job of its kind finished after, unless
   * shown above. */
  failed: Job[];
}

/** When a job finished (when it was created, for one that says no finish). */
const endedAt = (j: Job) => j.finished_at ?? j.created_at ?? "";

/** Newest finished first: a long job that failed after a shorter, later-created one
 * finished is the newer of the two. */
const newestFirst = (jobs: Job[]) =>
  jobs.map((j, i) => ({ j, i }))
    .sort((a, b) => endedAt(b.j).localeCompare(endedAt(a.j)) || a.i - b.i)
    .map(({ j }) => j);

/** A job over a whole library root (no folder of it named). */
const wholeRoot = (j: Pick<Job, "path" | "root">) => !j.path || !j.root || j.path === j.root;

/** The library root a job went over ("": the whole library, no root named). */
const rootOf = (j: Pick<Job, "path" | "root">) => j.root ?? (wholeRoot(j) ? j.path ?? "" : "");

/** Whether `done`, finished later, makes the failure `failed` of its kind old news: a job
 * over the whole library does, one over a whole root a failure in that root (with one
 * root known, a failure naming none too); a folder's only a failure in that same folder. */
const clears = (done: Job, failed: Job, oneRoot: boolean) => {
  const [d, f] = [rootOf(done), rootOf(failed)];
  return (wholeRoot(done) && (d === "" || d === f || (f === "" && oneRoot))) ||
    (!wholeRoot(failed) && done.path === failed.path && done.root === failed.root);
};

export function scanOverview(jobs: Job[]): ScanOverview {
  const ordered = newestFirst(jobs);
  const finished = ordered.filter((j) => !isActive(j));
  const lastOf = new Map<string, Job>();
  for (const j of finished) {
    if (j.kind === "scan" && isFullScan(j) && !lastOf.has(rootOf(j))) lastOf.set(rootOf(j), j);
  }
  const full = [...lastOf.values()];
  // A folder scan since the last whole scan of its root (or of the whole library)
  const since = (j: Job) => {
    const at = finished.indexOf(j);
    return [lastOf.get(j.root ?? ""), lastOf.get("")].every((f) => !f || at < finished.indexOf(f));
  };
  const folder = finished.find((j) => j.kind === "scan" && !isFullScan(j) && since(j)) ?? null;
  const shown = new Set([...full.map((j) => j.id), folder?.id]);
  const oneRoot = new Set(jobs.map(rootOf).filter(Boolean)).size <= 1;
  const failed: Job[] = [];
  const kinds = [...new Set(finished.map((j) => j.kind))];
  for (const kind of kinds) {
    const own = finished.filter((j) => j.kind === kind);
    const at = own.findIndex((f, i) => f.state === "failed" &&
      !own.slice(0, i).some((j) => j.state === "done" && clears(j, f, oneRoot)));
    if (at < 0) continue;
    if (!shown.has(own[at].id)) failed.push(own[at]);
  }
  return { full, folder, failed };
}

/** What a job went over and who started it: "/photos (whole library, nightly rescan)".
 * `folder`: a scan of one folder (by default, a scan not of a whole root). `severalRoots`:
 * the library has more than one root, so a scan of a whole root is not of the whole
 * library. */
export function jobScope(job: Job, folder = job.kind === "scan" && !isFullScan(job), severalRoots = false): string {
  const what = displayPath(job.path ?? job.root ?? "");
  const whole = severalRoots && what ? "whole library folder" : "whole library";
  const how = [folder ? "one folder" : job.kind === "scan" ? whole : "",
               job.full ? "every file re-read" : "", triggerLabel(job.trigger)].filter(Boolean);
  if (!what) return how.join(", ");
  return how.length ? `${what} (${how.join(", ")})` : what;
}

// --- corrections: splitting, merging and undoing --------------------------------------------

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The group's primary path: the one flagged, else the group's `primary`, else the first. */
export function groupPrimary(g: Pick<FileGroup, "primary" | "members">): string | null {
  const flagged = g.members.find((m) => m.is_primary);
  if (flagged) return flagged.path;
  if (g.primary && g.members.some((m) => m.path === g.primary)) return g.primary;
  return g.members[0]?.path ?? null;
}

export interface SplitButtons {
  /** "Split off selected": some members picked, but not all of them. */
  split: boolean;
  /** "Dissolve group": always, for a group with members. */
  dissolve: boolean;
}

export function splitButtons(memberCount: number, selectedCount: number): SplitButtons {
  return {
    split: selectedCount >= 1 && selectedCount < memberCount,
    dissolve: memberCount > 0,
  };
}

/** Merging needs two groups at least. */
export function canMerge(selectedGroups: number): boolean {
  return selectedGroups >= 2;
}

/** Toggle `id` in an ordered selection: added at the end, so the first pick stays first. */
export function toggled<T>(list: T[], item: T, on: boolean): T[] {
  const without = list.filter((x) => x !== item);
  return on ? [...without, item] : without;
}

export interface MergePlan {
  paths: string[];
  primary: string | null;
}

/** What "Merge N groups" sends: every member path of the groups in the order they were
 * picked (each path once), and the first picked group's primary. */
export function mergePlan(groups: Pick<FileGroup, "primary" | "members">[]): MergePlan {
  const paths: string[] = [];
  const seen = new Set<string>();
  for (const g of groups) {
    for (const m of g.members) {
      if (seen.has(m.path)) continue;
      seen.add(m.path);
      paths.push(m.path);
    }
  }
  return { paths, primary: groups.length ? groupPrimary(groups[0]) : null };
}

/** Where a split left the group's files: those on their own and those still in a group. */
export function splitOutcome(
  members: string[],
  groups: Pick<FileGroup, "members">[],
): { alone: string[]; grouped: string[] } {
  const inGroup = new Set(groups.flatMap((g) => g.members.map((m) => m.path)));
  return {
    alone: members.filter((p) => !inGroup.has(p)),
    grouped: members.filter((p) => inGroup.has(p)),
  };
}

/** The notice after a split or a dissolve. `taken` is null for a dissolve. */
export function splitNotice(
  name: string,
  members: string[],
  taken: string[] | null,
  groups: Pick<FileGroup, "members">[],
): string {
  const { alone, grouped } = splitOutcome(members, groups);
  const head = taken
    ? `Split ${plural(taken.length, "file")} off the group of ${name}.`
    : `Dissolved the group of ${name}.`;
  const parts = [];
  if (alone.length) {
    parts.push(alone.length === 1 ? "1 file is on its own" : `${alone.length} files are on their own`);
  }
  if (grouped.length) {
    parts.push(`${plural(grouped.length, "file is", "files are")} still grouped`);
  }
  return parts.length ? `${head} ${parts.join(", ")}.` : head;
}

/** The dry-run summary of undoing a decision, as the dialog shows it. */
export function undoSummary(r: Pick<UndoResult, "action" | "restore" | "notInImmich">): string {
  if (r.action !== "trash") {
    return "No files come back from Immich's trash: this decision moved none. " +
      "The group becomes open again.";
  }
  const n = r.restore.length;
  const back = `${plural(n, "file comes", "files come")} back from Immich's trash`;
  return r.notInImmich.length
    ? `${back}; ${plural(r.notInImmich.length, "file", "files")} cannot come back through ` +
        "Twinlens (not in Immich). The group becomes open again."
    : `${back}. The group becomes open again.`;
}

/** The notice after undoing a decision for real. */
export function undoNotice(name: string, r: Pick<UndoResult, "action" | "restored">): string {
  const head = `Undid the decision on ${name}: the group is open again`;
  if (r.action !== "trash") return `${head}.`;
  const n = r.restored ?? 0;
  return `${head}; ${plural(n, "file", "files")} restored from Immich's trash.`;
}

/** The requests a bulk confirmation sends after its dry run: only the groups the dry run
 * could resolve (one refused then, Immich slow for a moment, must not be trashed unseen
 * now), each held to the files the dry run listed (the server refuses any other plan). */
export function confirmedRequests(requests: ResolveRequest[], dryRun: ResolvePlan[]): ResolveRequest[] {
  const shown = new Map(dryRun.filter((p) => p.status === undefined || p.status === 200)
    .map((p) => [p.id, p]));
  return requests
    .filter((q) => shown.has(q.id))
    .map((q) => ({ ...q, expectTrash: (shown.get(q.id)?.trash ?? []).map((t) => t.path) }));
}

/** The page to show instead of `page` once it came back empty (its groups were resolved or
 * merged away, or another reviewer emptied it): the last page that still has some, or null
 * to stay. Only an empty page moves: after "Accept all" on a middle page the next groups
 * move up into it. */
export function pageToShow(page: number, total: number, size: number): number | null {
  const last = Math.max(1, Math.ceil(total / Math.max(1, size)));
  return page > last ? last : null;
}

// --- files with problems ------------------------------------------------------------------

// What core/paths.py display() escapes: control characters (a newline would fake a second
// name), line separators, and the invisible ones that reorder or hide what follows
// ("\u202egpj.exe" shows as "exe.jpg").
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/** A path as it can be shown: a byte that is not UTF-8 (a lone surrogate U+DC80-U+DCFF,
 * Python's surrogateescape) as \xNN, as are control characters; bidi and invisible format
 * characters as \uNNNN; any other lone surrogate as \uNNNN too. React escapes HTML; this
 * keeps a name from hiding or disguising what it is. */
export function displayPath(p: string): string {
  let out = "";
  for (const ch of p) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xdc80 && c <= 0xdcff) out += `\\x${(c - 0xdc00).toString(16).padStart(2, "0")}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += `\\u${c.toString(16)}`;
    else out += ch;
  }
  return out.replace(CONTROL, (ch) => {
    const c = ch.codePointAt(0)!;
    return c < 0x100 ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u${c.toString(16).padStart(4, "0")}`;
  });
}

/** A message to show (a server's error, a note that may quote a file name): escaped as
 * `displayPath` escapes a path, so that a name quoted in it cannot reorder or hide the text
 * around it. Escaping it again changes nothing. */
export function displayText(text: string): string {
  return displayPath(text);
}

/** A time the services wrote in UTC without a zone ("2026-01-02T03:04:05"), as a Date;
 * null when absent or unreadable. */
export function parseUtc(at: string | null | undefined): Date | null {
  if (!at) return null;
  const when = new Date(at + (/[Zz+]|-\d\d:?\d\d$/.test(at.slice(10)) ? "" : "Z"));
  return Number.isNaN(when.getTime()) ? null : when;
}

/** When a file with a problem is read again, as the Files with problems page says it. A
 * mis-named file is read again once renamed to its right extension (a move that changes
 * the extension is read, core/catalog.py), which is what its user will do. */
export function problemRetryLabel(retried: boolean, misnamed = false): string {
  if (retried) return "read again at a later scan";
  return misnamed ? "read again once renamed or changed, or by a full rescan"
    : "read again once the file changes, or by a full rescan";
}

/** The folder filter as typed: trimmed, without a trailing slash (the root "/" stays);
 * escapes as `displayPath` shows them read back (\xNN from \x80 up: a byte that is not
 * UTF-8, as the page and the CLI show it). A folder typed relative to the library
 * ("2024/shoot-A") is taken under a root as `resolveFolder` takes it; one it cannot place
 * is sent as typed (and refused). */
export function folderFilter(typed: string, roots: string[] = [], picked = ""): string {
  const r = resolveFolder(typed, roots, picked);
  return "folder" in r ? r.folder : unescapePath(folderPath(typed.trim()));
}

/** The folder a list is asked for, from what was typed in its Folder field and the
 * library folder picked beside it (`picked`: one of `roots`, or "" for the whole library;
 * the picker is there only with several roots). A full path is taken as it is. Nothing
 * typed is the whole library, or the root picked. A folder typed relative to the library
 * is taken under: the one root, with only one; with several, the root whose own folder
 * name it starts with, when exactly one has that name ("Photos/2019" with /mnt/Photos and
 * /mnt/Phone: /mnt/Photos/2019, whichever is picked), else the root picked. Otherwise the
 * user is asked to pick the root (`choose` says so), rather than the folder guessed under
 * the wrong one. With no root known it goes as typed (and the services refuse it). */
export function resolveFolder(
  typed: string, roots: string[], picked = "",
): { folder: string } | { choose: string } {
  const folder = unescapePath(folderPath(typed.trim()));
  const root = picked && roots.includes(picked) ? folderPath(picked)
    : roots.length === 1 ? folderPath(roots[0]) : "";
  if (!folder) return { folder: picked && root ? root : "" };
  if (folder.startsWith("/") || roots.length === 0) return { folder };
  const rel = folder.replace(/^(\.\/)+/, "");
  const under = (r: string, tail: string) =>
    tail === "" || tail === "." ? r : r === "/" ? `/${tail}` : `${r}/${tail}`;
  const [first, ...rest] = rel.split("/");
  const named = roots.map(folderPath).filter((r) => r !== "/" && basename(r) === first);
  if (roots.length > 1 && named.length === 1) return { folder: under(named[0], rest.join("/")) };
  if (root) return { folder: under(root, rel) };
  return {
    choose: `"${displayPath(rel)}" is relative, and the library has ${roots.length} folders: ` +
      "pick the one it is in as Library folder, or type a full path.",
  };
}

/** The library root `folder` is in (the longest that holds it), or "". */
export function rootHolding(folder: string, roots: string[]): string {
  if (!folder) return "";
  return roots.filter((r) => pathInFolder(folderPath(folder), r)).sort((a, b) => b.length - a.length)[0] ?? "";
}

/** A folder without its trailing slashes; the root ("/", or "///") stays "/". */
export function folderPath(folder: string): string {
  return folder.length > 1 ? folder.replace(/\/+$/, "") || "/" : folder;
}

/** The library roots seen in the jobs (each scan names the root it is in), each once, in
 * the order first seen. */
export function jobRoots(jobs: Pick<Job, "root">[]): string[] {
  return [...new Set(jobs.map((j) => j.root).filter((r): r is string => !!r))];
}

/** Whether trying a failed load again can help: not after a refusal of the request itself
 * (400: a folder outside the library, a bad filter; 403, 404...), which says the same
 * again. A login (401) is asked for elsewhere; a timeout, a conflict, "too many requests"
 * and any server error or lost connection may pass. */
export function canRetry(e: unknown): boolean {
  if (!(e instanceof ApiError)) return true;
  return !(e.status >= 400 && e.status < 500 && ![401, 408, 409, 425, 429].includes(e.status));
}

/** A path as `displayPath` shows it, back to what it is: \xNN from \x80 up a byte that
 * is not UTF-8 (a lone surrogate, see `quotePath`), a lower one that character; \uNNNN
 * that character. */
export function unescapePath(shown: string): string {
  return shown.replace(/\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})/g, (_, x?: string, u?: string) => {
    if (u) return String.fromCharCode(parseInt(u, 16));
    const b = parseInt(x!, 16);
    return String.fromCharCode(b >= 0x80 ? 0xdc00 + b : b);
  });
}

/** The Overview's link to the Files with problems page. */
/** What the Files with problems page says of its files: what really becomes of them
 * (core/grouping/rules.py, core/dedup/queries.py and keeper.py): they are still grouped
 * and compared by what could be read of them, never the copy kept nor a group's cover
 * while an intact one exists. */
export const PROBLEMS_INTRO =
  "Files of the library that Twinlens could not read in full (unreadable, truncated, empty, " +
  "or skipped because reading them crashed Twinlens), and files that are not what their name " +
  "says (a HEIF named .jpg: read whole, listed so that you can rename it). They stay " +
  "listed here until a scan reads them without a problem (the Overview's list is only what " +
  "the last scan read). They are not left out: such a file still joins its file group by its " +
  "name, and is found as a duplicate by what could be read of it (a RAW cut short by its " +
  "preview). One found at fault (empty, truncated, corrupt, no picture) is never the copy " +
  "suggested to keep, nor a file group's cover, while an intact copy is there; one whose " +
  "last read failed (a permission, an I/O error, a crash) is judged on what its read before " +
  "found. An empty file, or one of which nothing could ever be read, is in no duplicate " +
  "group (an empty file in no file group either).";

export function problemsLinkText(total: number): string {
  return total === 0 ? "No files with problems"
    : `${formatCount(total)} ${total === 1 ? "file with a problem" : "files with problems"}`;
}

// --- paging -------------------------------------------------------------------------------

export interface PagerState {
  page: number;
  pages: number;
  /** First and Previous lead somewhere */
  back: boolean;
  /** Next and Last lead somewhere */
  forward: boolean;
}

export function pagerState(page: number, size: number, total: number): PagerState {
  const pages = Math.max(1, Math.ceil(Math.max(0, total) / Math.max(1, size)));
  return { page, pages, back: page > 1, forward: page < pages };
}

/** The page sizes the Duplicates page offers: 200 is as many groups as the gateway
 * resolves in one "Accept all suggestions" call. */
export const DUPLICATE_PAGE_SIZES = [20, 50, 100, 200];

/** The page size a URL asks for, if it is one of `allowed`; else the first of them. */
export function pageSizeParam(raw: string | null, allowed: number[] = DUPLICATE_PAGE_SIZES): number {
  const n = Number(raw);
  return allowed.includes(n) ? n : allowed[0];
}

/** The page that shows the first item of `page` once pages hold `newSize` items. */
export function pageAfterResize(page: number, oldSize: number, newSize: number): number {
  return Math.floor(((Math.max(1, page) - 1) * oldSize) / newSize) + 1;
}

// --- the Duplicates page's filters --------------------------------------------------------

/** What the Duplicates page shows, as its URL says: kind, status ("open" unless it says
 * another; "any" for every one), folder (a full path; "" the whole library), page and
 * page size. Reload and Back keep it. */
export interface DuplicatesView {
  type: string;
  status: string;
  folder: string;
  page: number;
  size: number;
}

export function duplicatesView(params: { get(name: string): string | null }): DuplicatesView {
  return {
    type: params.get("type") ?? "",
    status: params.get("status") || "open",
    folder: params.get("folder") ?? "",
    page: pageFromUrl(params.get("page")),
    size: pageSizeParam(params.get("size")),
  };
}

/** The view's URL parameters (`hashQuery` leaves the empty ones out): the defaults
 * (status open, 20 a page, page 1, the whole library) are not written. `change`: what the
 * user changed; a filter changed (`type`, `status`, `folder`, `size`) starts from page 1
 * unless `change` names the page too. */
export function duplicatesRoute(
  v: DuplicatesView, change: Partial<Record<"type" | "status" | "folder" | "page" | "size", string>> = {},
): Record<string, string> {
  return {
    type: v.type,
    status: v.status === "open" ? "" : v.status,
    folder: v.folder,
    size: v.size === DUPLICATE_PAGE_SIZES[0] ? "" : String(v.size),
    page: "",
    ...change,
  };
}

/** What the page asks `GET /duplicates` for: its folder as `path_prefix` (only the groups
 * with a copy in it or below), beside its kind, status and page. */
export function duplicatesListParams(v: DuplicatesView): {
  type: string; status: string; path_prefix?: string; page: number; size: number;
} {
  return {
    type: v.type,
    status: v.status === "any" ? "" : v.status,
    path_prefix: v.folder || undefined,
    page: v.page,
    size: v.size,
  };
}

/** The key of the list of `v` (its page replaced by `page`, when given): what its notes and
 * the groups decided on it belong to. */
export function duplicatesListKey(v: DuplicatesView, page = v.page): string {
  return `${v.type}|${v.status}|${v.folder}\u0000${page}|${v.size}`;
}

/** Whether `path` is in `folder` or below (a folder, not a string prefix: /p/backup holds
 * /p/backup/a.jpg, not /p/backup-old/a.jpg); every path is in "/". */
export function pathInFolder(path: string, folder: string): boolean {
  if (!folder) return false;
  const f = folderPath(folder);
  return f === "/" ? path.startsWith("/") : path === f || path.startsWith(`${f}/`);
}

/** The groups a list still hides as decided on it: each until a load after its decision
 * lists it again (another reviewer reopened it, say). `decided`: each group's id, with the
 * load on screen when it was decided (which still lists it). */
export function hiddenDecided<L extends { items: { id: string }[] }>(
  decided: Map<string, L | null>, loaded: L | null,
): Set<string> {
  const listed = new Set((loaded?.items ?? []).map((x) => x.id));
  return new Set([...decided].filter(([id, at]) => at === loaded || !listed.has(id)).map(([id]) => id));
}

/** The page the URL asks for: a whole number from 1 (?page=1.5 is page 1, which the
 * gateway takes; a fraction it refuses with a 400), page 1 for anything else. */
export function pageFromUrl(raw: string | null): number {
  const n = Math.floor(Number(raw));
  return Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

/** A page number for the URL: none for the first page (#/duplicates, not ?page=1). */
export function pageParam(page: number): string {
  return page > 1 ? String(page) : "";
}

// --- putting a split or dissolved group back together ----------------------------------------

/** What "Undo dissolve" / "Undo split" merges: every file the group had before, its primary
 * staying primary. The files are in no group (or in what the split left), which the list
 * cannot pick for a merge: this is the way back. */
export interface Regroup {
  paths: string[];
  primary: string | null;
  /** The group's name (its primary's file name), for the notes */
  name: string;
  /** The correction it undoes */
  kind: "split" | "dissolve";
  /** Files of the group a scan has since moved or deleted, left out of `paths` */
  missing?: string[];
}

export function regroupPlan(
  g: Pick<FileGroup, "primary" | "members" | "id">, kind: Regroup["kind"],
): Regroup | null {
  const paths = [...new Set(g.members.map((m) => m.path))];
  if (paths.length < 2) return null; // a merge needs two files
  const primary = groupPrimary(g);
  return { paths, primary, name: primary ? displayName(primary) : g.id, kind };
}

/** The file a merge refused as "'…' is not a cataloged file" (moved or deleted by a rescan):
 * the path inside Python's repr of it, which the grouping API says; null for another answer. */
export function uncatalogedFile(message: string): string | null {
  const m = /^(['"])(.*)\1 is not a cataloged file$/s.exec(message);
  if (!m) return null;
  return m[2].replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[\\'"abfnrtv])/g, (_, e: string) => {
    if (/^[xuU]/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 16));
    return ({ a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" } as Record<string, string>)[e] ?? e;
  });
}

/** After the merge of `r` was refused because `gone` is no longer cataloged: what is left
 * to put back (the primary staying primary if it is still there), or null when fewer than
 * two files are (a merge needs two). */
export function regroupWithout(r: Regroup, gone: string): Regroup | null {
  const paths = r.paths.filter((p) => p !== gone);
  if (paths.length < 2) return null;
  return {
    ...r, paths, primary: r.primary === gone ? null : r.primary,
    missing: [...(r.missing ?? []), gone],
  };
}

/** The note after the group was put back together. */
export function regroupNotice(r: Regroup, merged: Pick<FileGroup, "members">): string {
  const n = merged.members.length;
  return `Put the group of ${r.name} back together: ${plural(n, "file")} in one manual group` +
    (r.primary ? ` (primary ${displayName(r.primary)}).` : ".") +
    " Later scans keep it.";
}

// --- the Overview's small print -----------------------------------------------------------

// The phases a job's progress names (core/catalog.py PHASES, core/grouping/service.py,
// core/dedup/service.py), in plain words
export const PHASE_LABEL: Record<string, string> = {
  plan: "listing files",
  catalog: "reading files",
  quick: "comparing copies",
  full: "comparing copies",
  finish: "finishing",
  group: "grouping files",
  wait: "waiting for grouping to finish",
  scope: "finding what changed",
  cluster: "comparing pictures",
  write: "saving duplicate groups",
  done: "done",
};

/** A job's phase as the Overview says it; one it does not know as it is. */
export function phaseLabel(phase: string | null | undefined): string {
  if (!phase) return "";
  return PHASE_LABEL[phase] ?? phase;
}

/** What the Overview says when the jobs could not be read: the jobs shown are the last
 * known ones (a job shown running may have finished), and nothing on them can be done. */
export function staleJobsNotice(message: string, shown: number): string {
  const said = message.replace(/\.\s*$/, "");
  return shown > 0 ? `${said}. Showing the last known state: these jobs may have finished or stopped.`
    : `${said}.`;
}

/** The "Scan now" button: while the jobs cannot be read, a scan last seen running does
 * not hold it (it may be over; a refused start says why). */
export function scanButton(running: boolean, starting: boolean, stale: boolean): { label: string; disabled: boolean } {
  if (starting) return { label: "Starting…", disabled: true };
  if (running && !stale) return { label: "Scanning…", disabled: true };
  return { label: "Scan now", disabled: false };
}

/** The heading of a job's failed files: how many are listed, and of how many when the list
 * stops short of the job's count (the jobs API lists the first 1,000; `failed` counts all). */
export function failedFilesLabel(listed: number, failed: number | null | undefined): string {
  if (failed !== null && failed !== undefined && failed > listed) {
    return `Files that failed (first ${formatCount(listed)} of ${formatCount(failed)})`;
  }
  return `Files that failed (${formatCount(listed)})`;
}

/** What "Scan now" says when it is refused. With no library root configured the services
 * answer that a path is required "when more than one library root is configured", and
 * nothing else the UI can ask tells how many there are: the way out is added. */
export function scanRefusal(message: string): string {
  const how = "TWINLENS_LIBRARY_ROOTS (the photo library's folders, separated by \":\") and restart Twinlens.";
  const said = message.replace(/\.\s*$/, "");
  // with more than one root, the way out may be to configure one (none may be configured)
  if (/path is required when more than one library root/i.test(message)) {
    return `${said}. If no library folder is configured, configure ${how}`;
  }
  // none configured says so already: only how to configure them
  if (/no library roots are configured/i.test(message)) return `${said}. Configure ${how}`;
  return message;
}
