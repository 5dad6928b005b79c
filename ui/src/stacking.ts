// "Stack in Immich" on the Groups page: which groups have anything to stack, what a dry
// run or a stack says in plain words, and a bulk run sent in chunks the gateway takes.
import { ApiError, type BulkStackResult, type FileGroup, type GroupMember, type StackResult } from "./api";
import { actionFailure, displayName, plural } from "./logic";

/** The most groups one `POST /groups/stack` takes (the gateway's MAX_BULK_GROUPS). */
export const MAX_BULK_STACK = 200;

/** The members of `g` that stacking would put in an Immich stack, as the gateway counts
 * them (gateway/stacking.py `stackable`): not sidecars nor other files Immich holds no
 * asset of, nor a Live Photo's video (Immich pairs it with its still itself). */
export function stackableMembers(g: Pick<FileGroup, "type" | "members">): GroupMember[] {
  return g.members.filter((m) =>
    m.kind !== "sidecar" && m.kind !== "other" && m.role !== "video" &&
    !(g.type === "live_photo" && m.kind === "video"));
}

/** Whether a group has two photos or more to stack: only then is "Stack in Immich"
 * offered (whether Immich holds them is for the dry run to say). */
export function hasStack(g: Pick<FileGroup, "type" | "members">): boolean {
  return stackableMembers(g).length >= 2;
}

/** Why a group with fewer than two photos is not sent at all (a bulk run). */
export const NOTHING_TO_STACK =
  "fewer than two photos to stack (a sidecar is not an Immich asset; Immich pairs a Live " +
  "Photo's video with its still itself)";

/** The photos a result stacks or would stack: what it sends (`assetIds`), else the
 * members in its stack, else the members Immich holds. */
export function stackedCount(r: StackResult): number {
  if (r.assetIds?.length) return r.assetIds.length;
  const members = r.members ?? [];
  const inStack = r.stackId ? members.filter((m) => m.stackId === r.stackId).length : 0;
  return inStack || members.filter((m) => m.assetId).length;
}

/** The cover a stack has or would have: the file of the first asset sent (the group's
 * primary, or the cover of a stack of part of the group, which Immich keeps as it grows),
 * else the group's primary. */
export function stackCover(r: Pick<StackResult, "assetIds" | "members" | "primary">): string | null {
  const first = r.assetIds?.[0];
  const m = first ? r.members?.find((x) => x.assetId === first) : undefined;
  return m?.path ?? r.primary ?? null;
}

/** One row of a single group's stack dialog: what its dry run does with that file. */
export interface PlanRow {
  path: string;
  tag: string;
  /** Stacked (the cover or another photo), not left out */
  stacked: boolean;
  /** Why it is left out, for the note under the list: not in Immich for the user, or in
   * Immich but left where it is (archived or hidden) */
  left?: "absent" | "hidden";
}

/** What a dry run (`outcome` `stack`) does with each file of `group`: a photo whose asset
 * is in `assetIds` is stacked (the first the cover); one Immich holds but the plan leaves
 * out (archived, hidden) stays where it is; one without an asset is not in Immich for the
 * user; the group's other files (sidecars, a Live Photo's video) are not stacked at all.
 * From `assetIds`, not from whether a member has an asset: the dry run lists archived
 * photos with theirs. */
export function planRows(plan: Pick<StackResult, "assetIds" | "members">, group: Pick<FileGroup, "members">): PlanRow[] {
  const ids = plan.assetIds ?? [];
  const sent = new Set(ids);
  const members = plan.members ?? [];
  const cover = ids.length ? members.find((m) => m.assetId === ids[0])?.path : undefined;
  const rows: PlanRow[] = members.map((m) => {
    if (!m.assetId) return { path: m.path, tag: "not in Immich: left out", stacked: false, left: "absent" };
    if (!sent.has(m.assetId)) {
      return { path: m.path, tag: "left where it is (archived or hidden in Immich)", stacked: false, left: "hidden" };
    }
    return { path: m.path, tag: m.path === cover ? "cover" : "stacked", stacked: true };
  });
  const listed = new Set(members.map((m) => m.path));
  for (const m of group.members) {
    if (listed.has(m.path)) continue;
    rows.push({ path: m.path, tag: m.kind === "sidecar" ? "sidecar: as it is" : "not stacked", stacked: false });
  }
  return rows;
}

/** What this page knows of a group's stack in Immich: the stack and the cover Immich
 * has (null: not said: a stack found made, whose cover Immich keeps as chosen there), or
 * (`planned`) the cover a dry run would give it. */
export interface KnownStack {
  stackId: string | null;
  cover: string | null;
  planned?: boolean;
}

/** What a result says of the group's stack in Immich, given what was known before
 * (`before`). The gateway names the cover Immich has (`coverAssetId`): for a stack made
 * now the first photo sent, for one found made the cover chosen in Immich. Without it (an
 * older gateway) a stack made now has the first photo sent (`assetIds[0]`), and one found
 * made is named only when it is the stack this page saw made (same stack, the cover still
 * in it); a dry run would give the first photo it sends. A skip or failure says nothing. */
export function knownStack(r: StackResult, before?: KnownStack | null): KnownStack | null {
  const ok = r.status === undefined || r.status === 200;
  if (!ok) return before ?? null;
  const pathOf = (id: string | undefined) => (id ? r.members?.find((m) => m.assetId === id)?.path ?? null : null);
  if (r.outcome === "stack") return { stackId: null, cover: pathOf(r.assetIds?.[0]), planned: true };
  if (r.outcome !== "stacked") return before ?? null;
  const stackId = r.stackId ?? null;
  const named = pathOf(r.coverAssetId ?? undefined);
  if (named) return { stackId, cover: named };
  if (r.created) return { stackId, cover: pathOf(r.assetIds?.[0]) };
  const same = before && !before.planned && before.stackId && before.stackId === stackId && before.cover &&
    r.members?.some((m) => m.path === before.cover && m.stackId === stackId);
  return { stackId, cover: same ? before.cover : null };
}

/** The hint beside a group's "Stack in Immich" button: the cover it would have (the
 * group's primary), or once a result said, the cover Immich has (or that it is stacked,
 * its cover as chosen in Immich). */
export function coverHint(primary: string | null, known?: KnownStack | null): string {
  if (known && !known.planned) {
    return known.cover ? `stacked in Immich, cover ${displayName(known.cover)}` : "stacked in Immich";
  }
  const cover = known?.cover ?? primary;
  return cover ? `cover ${displayName(cover)}` : "";
}

/** What a (real) stack of one group did, in plain words. `before`: what was known of its
 * stack, so that a stack found made by this page names its cover again. */
export function stackNotice(r: StackResult, before?: KnownStack | null): string {
  if (r.outcome === "skip") return `Not stacked: ${trimStop(r.reason ?? r.message ?? "no reason given")}.`;
  const n = stackedCount(r);
  if (r.outcome === "stack") {
    // A dry run's answer, or a real one that did not say it stacked (not expected)
    const coverPath = stackCover(r);
    return `Would stack ${plural(n, "photo")} in Immich${coverPath ? `, cover ${displayName(coverPath)}` : ""}.`;
  }
  // The cover Immich has, when the answer (or this page) knows it: never the group's
  // primary by default, which Immich may not have on top
  const coverPath = knownStack(r, before)?.cover;
  const cover = coverPath ? `, cover ${displayName(coverPath)}` : "";
  // Left as it was, its cover too (the user may have chosen another in Immich)
  if (r.outcome === "stacked" && !r.created) return `Already stacked in Immich: ${plural(n, "photo")}${cover}.`;
  // Immich stacked more than planned (a stack made in Immich meanwhile): the gateway says so
  const more = r.outside?.length && r.message ? ` ${trimStop(r.message)}.` : "";
  return `Stacked in Immich: ${plural(n, "photo")}${cover}.${more}`;
}

/** What a failed stack request says: a refusal with its reason (409) is "Not stacked";
 * a group gone says so as the other corrections do; a failure (Immich or the gateway
 * down, 5xx) may have left it stacked or not, and says only what failed. */
export function stackFailure(e: unknown): { text: string; reload: boolean } {
  const status = e instanceof ApiError ? e.status : null;
  // A refusal to stack (409: its reason, or a group changed since its dry run) is said in
  // the gateway's words and changes nothing in the list; a group gone (404) does
  if (status === 409) return { text: `Not stacked: ${trimStop((e as Error).message)}.`, reload: false };
  const f = { ...actionFailure(e), reload: status === 404 };
  if (status !== null && status >= 400 && status < 500) {
    return { text: `Not stacked: ${trimStop(f.text)}.`, reload: f.reload };
  }
  return { text: `Stacking failed: ${trimStop(f.text)}.`, reload: f.reload };
}

function trimStop(s: string): string {
  return s.replace(/[.\s]+$/, "");
}

/** `xs` in runs of at most `n`. */
export function chunked<T>(xs: T[], n = MAX_BULK_STACK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

export interface ChunkedRun {
  /** One per group asked, in the order asked; a group of a chunk that failed as a whole
   * has `status` (0: no answer) and `message`, and `chunkFailed`. */
  results: (StackResult & { chunkFailed?: boolean })[];
  /** Groups not asked because the run was stopped. */
  notAsked: string[];
  /** Groups of the chunk that was in flight when Stop came: sent all the same (0: none,
   * or not stopped). */
  stoppedLate?: number;
}

/** Send `ids` in chunks of at most `size` to `send` (the bulk stack, dry or real), one
 * after the other. A chunk that fails as a whole (the gateway down, a timeout) is reported
 * for each of its groups and the run goes on: it hides none of the others' results.
 * `stopped`: asked before each chunk; once true, the rest is not sent. */
export async function stackInChunks(
  ids: string[],
  send: (ids: string[]) => Promise<BulkStackResult>,
  opts: { size?: number; onProgress?: (done: number, total: number) => void; stopped?: () => boolean } = {},
): Promise<ChunkedRun> {
  const out: ChunkedRun = { results: [], notAsked: [] };
  const parts = chunked(ids, opts.size ?? MAX_BULK_STACK);
  let done = 0;
  for (const [i, part] of parts.entries()) {
    if (opts.stopped?.()) {
      out.notAsked = parts.slice(i).flat();
      break;
    }
    try {
      const answer = await send(part);
      const byId = new Map(answer.results.map((r) => [r.id, r]));
      // Each group of the chunk once, answered or not (an answer that left one out)
      for (const id of part) {
        out.results.push(byId.get(id) ?? { id, status: 0, message: "the gateway did not say", chunkFailed: true });
      }
    } catch (e) {
      const status = e instanceof ApiError ? e.status : 0;
      const message = e instanceof Error ? e.message : String(e);
      for (const id of part) out.results.push({ id, status, message, chunkFailed: true });
    }
    // Stop came while this chunk was on its way: it was sent all the same
    if (opts.stopped?.()) out.stoppedLate = part.length;
    done += part.length;
    opts.onProgress?.(done, ids.length);
  }
  return out;
}

/** What a bulk run's dry run comes to: stopped (nothing to confirm), or what it found. */
export type BulkPreview =
  | { kind: "stopped" }
  | { kind: "ready"; groups: FileGroup[]; nothing: string[]; dry: ChunkedRun; summary: StackSummary };

/** A bulk run's dry run: `list` reads every group of the list (null: stopped while it
 * read), those with two photos or more are asked in chunks (`send`), the others counted.
 * `stopped` is asked between chunks and once more at the end, so that a Stop during the
 * last chunk (or the only one) is not followed by the confirmation all the same. */
export async function bulkDryRun(
  list: () => Promise<FileGroup[] | null>,
  send: (ids: string[]) => Promise<BulkStackResult>,
  opts: { stopped: () => boolean; onStart?: (total: number) => void; onProgress?: (done: number, total: number) => void },
): Promise<BulkPreview> {
  const groups = await list();
  if (groups === null || opts.stopped()) return { kind: "stopped" };
  const ids = groups.filter(hasStack).map((g) => g.id);
  const nothing = groups.filter((g) => !hasStack(g)).map((g) => g.id);
  opts.onStart?.(ids.length);
  const dry = await stackInChunks(ids, send, { onProgress: opts.onProgress, stopped: opts.stopped });
  if (dry.notAsked.length || opts.stopped()) return { kind: "stopped" };
  return { kind: "ready", groups, nothing, dry, summary: stackSummary(dry, nothing) };
}

/** The gateway's skip codes (`reasonCode`), each in words that name no file, so that
 * groups skipped for the same reason count together. */
const REASON_WORDS: Record<string, string> = {
  // Said of the groups the UI does not send too (NOTHING_TO_STACK): one line for both
  too_few:
    "fewer than two of its photos are in Immich's timeline for you (a sidecar is not an Immich asset; " +
    "a Live Photo's video Immich pairs with its still itself; an archived photo is left where it is)",
  no_cover: "its cover is not in Immich for you (not indexed yet, or another user's)",
  cover_hidden: "its cover is archived or hidden in Immich (unarchive it first)",
  in_other_stack:
    "a photo of it is in an Immich stack that holds photos outside the group: unstack it in Immich first",
  stack_unreadable: "one of its photos is in an Immich stack that could not be read",
  changed: "the group changed since its dry run: look at it again",
};

/** A skip reason without the file it names: by its code when the gateway gave one (a
 * code the UI does not know, and a reason without one, by the gateway's own words). */
export function reasonKind(reason: string, code?: string): string {
  if (code && code in REASON_WORDS) return REASON_WORDS[code];
  if (/^fewer than two of its photos are in Immich/s.test(reason)) return REASON_WORDS.too_few;
  if (/^its cover .+ is not in Immich for you/s.test(reason)) return REASON_WORDS.no_cover;
  if (/^its cover .+ is archived or hidden in Immich/s.test(reason)) return REASON_WORDS.cover_hidden;
  if (/ is in an Immich stack that also holds \d+ photo\(s\) outside this group/s.test(reason)) {
    return REASON_WORDS.in_other_stack;
  }
  return reason;
}

export interface StackSummary {
  /** Dry run: would be stacked; real run: stacked by this run. */
  stack: StackResult[];
  /** Stacked already (a real run: by someone else or an earlier run, left as it was). */
  already: StackResult[];
  /** Not stacked, grouped by reason (most groups first). */
  skipped: { reason: string; ids: string[] }[];
  /** Could not be asked or failed, grouped by what was said. */
  failed: { message: string; ids: string[] }[];
  /** Groups not asked (the run was stopped). */
  notAsked: string[];
  /** Groups sent all the same, their chunk in flight when Stop came. */
  stoppedLate: number;
}

function grouped(pairs: [string, string][]): { key: string; ids: string[] }[] {
  const by = new Map<string, string[]>();
  for (const [key, id] of pairs) by.set(key, [...(by.get(key) ?? []), id]);
  return [...by.entries()].map(([key, ids]) => ({ key, ids })).sort((a, b) => b.ids.length - a.ids.length);
}

/** What a bulk run (dry or real) comes to. `nothing`: the groups not sent, having fewer
 * than two photos to stack (counted as skipped). */
export function stackSummary(run: ChunkedRun, nothing: string[] = []): StackSummary {
  const stack: StackResult[] = [];
  const already: StackResult[] = [];
  // The groups not sent count with those the gateway found too few photos in: one reason
  const skips: [string, string][] = nothing.map((id) => [REASON_WORDS.too_few, id]);
  const fails: [string, string][] = [];
  for (const r of run.results) {
    const ok = r.status === undefined || r.status === 200;
    if (ok && r.outcome === "stack") stack.push(r);
    else if (ok && r.outcome === "stacked") (r.created ? stack : already).push(r);
    else if (r.status === 409) {
      skips.push([reasonKind(r.reason ?? r.message ?? "no reason given", r.reasonCode), r.id]);
    }
    else fails.push([r.message ?? `error ${r.status}`, r.id]);
  }
  return {
    stack,
    already,
    skipped: grouped(skips).map(({ key, ids }) => ({ reason: key, ids })),
    failed: grouped(fails).map(({ key, ids }) => ({ message: key, ids })),
    notAsked: run.notAsked,
    stoppedLate: run.stoppedLate ?? 0,
  };
}

const count = (xs: { ids: string[] }[]) => xs.reduce((n, x) => n + x.ids.length, 0);

/** The headline of a bulk run's report. */
export function bulkStackHeadline(s: StackSummary, dryRun: boolean): string {
  const skipped = count(s.skipped);
  const failed = count(s.failed);
  const parts = dryRun
    ? [`would stack ${plural(s.stack.length, "group")}`]
    : [`Stacked ${plural(s.stack.length, "group")} in Immich`];
  parts.push(`${s.already.length} already stacked`);
  parts.push(`${skipped} not stacked`);
  if (failed) parts.push(`${plural(failed, "group")} ${dryRun ? "could not be asked" : "failed"}`);
  if (s.notAsked.length) parts.push(`${plural(s.notAsked.length, "group")} not asked (stopped)`);
  const text = `${dryRun ? "Dry run: " + parts.join(", ") : parts.join(", ")}.`;
  const late = s.stoppedLate;
  if (!late) return text;
  // Stop came while a chunk was on its way: it cannot be called back
  return `${text} Stop came too late for the ${plural(late, "group")} already sent: ` +
    `${late === 1 ? "it was" : "they were"} ${dryRun ? "asked" : "carried out"} all the same.`;
}

/** One group's line in a bulk report. */
export function bulkStackLine(r: StackResult & { chunkFailed?: boolean }, dryRun: boolean, before?: KnownStack | null): string {
  const ok = r.status === undefined || r.status === 200;
  if (ok && r.outcome) return stackNotice(r, before);
  if (r.status === 409) return `Not stacked: ${trimStop(r.reason ?? r.message ?? "no reason given")}.`;
  const msg = trimStop(r.message ?? `error ${r.status}`);
  if (dryRun) return `Could not be asked: ${msg}.`;
  return r.status !== undefined && r.status >= 400 && r.status < 500
    ? `Not stacked: ${msg}.` : `Stacking failed: ${msg}.`;
}
