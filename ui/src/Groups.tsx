import { useEffect, useRef, useState } from "react";
import { CardNote, type Message, Notices } from "./Notices";
import { api, ApiError, type FileGroup, type GroupMember, type StackResult } from "./api";
import { canTakeFocus, Dialog } from "./Dialog";
import { FolderField, useFolderForm } from "./FolderField";
import { focusCard, useEmptyPageStep, useFocusAfterStep, useLoad, whileRunning, type Go, type Params } from "./hooks";
import {
  actionFailure, canMerge, displayText, carryNotes, dirname, displayName, displayPath, formatBytes, formatCount, formatTakenAt,
  groupPrimary, groupsEmptyText, groupTypeLabel, mergePlan, notesOf, pageFromUrl, pageParam, placeNotes, plural, type Regroup,
  regroupNotice, regroupPlan, regroupWithout, splitButtons, splitNotice, toggled,
  uncatalogedFile,
} from "./logic";
import { Pager } from "./Pager";
import {
  bulkDryRun, bulkStackHeadline, bulkStackLine, coverHint, hasStack, knownStack, MAX_BULK_STACK, NOTHING_TO_STACK, planRows, stackCover, stackedCount, stackFailure,
  stackInChunks, stackNotice, stackSummary, type ChunkedRun, type KnownStack, type StackSummary,
} from "./stacking";
import { Thumb } from "./Thumb";

const PAGE_SIZE = 30;
const TYPES = ["raw_jpeg", "live_photo", "edited", "sidecar", "manual"];

interface Props {
  localMode: boolean;
  params: Params;
  go: Go;
}

type Pending =
  | { kind: "split"; group: FileGroup; paths: string[] }
  | { kind: "dissolve"; group: FileGroup }
  | { kind: "merge"; groups: FileGroup[] };

/** A stack in Immich waiting for its confirmation, after its dry run: one group's, or
 * every group of the list's (`groups`: each listed, in the order listed; `nothing`: those
 * with fewer than two photos, not asked). */
type StackPending =
  | { kind: "one"; group: FileGroup; plan: StackResult }
  | { kind: "bulk"; groups: FileGroup[]; nothing: string[]; dry: ChunkedRun; summary: StackSummary;
      /** The list it was run on: said in its dialog, which closes when the list shown changes */
      folder: string; type: string };

/** A bulk stack's report: its headline, and what happened to each group listed. */
interface StackReport {
  headline: string;
  error: boolean;
  lines: { id: string; name: string; text: string; error: boolean }[];
}

/** A bulk stack under way: listing the groups, asking Immich (dry run), or stacking. */
interface StackProgress {
  phase: "list" | "dry" | "real";
  done: number;
  total: number | null;
}

/** Groups read per request when a bulk stack lists every group of the list. */
const LIST_CHUNK = MAX_BULK_STACK;

/** The outcome of a correction, in the card of the group it was made on (or, merged, the
 * group it made); once that group has left the list, in a small card at its place. */
interface Note {
  note: Message;
  index: number;
  group: FileGroup;
  /** After a split or dissolve: what "Undo" merges back together. */
  regroup?: Regroup;
}

function groupName(g: FileGroup): string {
  const p = groupPrimary(g);
  return p ? displayName(p) : g.id;
}

function progressText(p: StackProgress): string {
  const of = p.total === null ? "" : ` of ${formatCount(p.total)}`;
  if (p.phase === "list") return `Reading the groups listed… ${formatCount(p.done)}${of}`;
  if (p.phase === "dry") return `Asking Immich what stacking would do… ${formatCount(p.done)}${of} groups`;
  return `Stacking in Immich… ${formatCount(p.done)}${of} groups`;
}

export function Groups({ localMode, params, go }: Props) {
  const type = params.get("type") ?? "";
  const folder = params.get("folder") ?? "";
  const page = pageFromUrl(params.get("page"));
  const listKey = `${type}|${folder}\u0000${page}`;
  const list = useLoad(
    () => api.groups({ type, path_prefix: folder || undefined, page, size: PAGE_SIZE }),
    listKey,
  );
  // `replace`: a step the list makes by itself (see `Go`)
  const nav = (p: Record<string, string>, replace = false) =>
    go("groups", { type, folder, page: "", ...p }, { replace });
  const folderForm = useFolderForm(folder, (f) => nav({ folder: f }));

  // Picked members per group id, and the groups picked for a merge in the order they were
  // picked (kept across pages: the first one's primary becomes the merged group's).
  const [picked, setPicked] = useState<Record<string, string[]>>({});
  const [forMerge, setForMerge] = useState<FileGroup[]>([]);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);
  // A merge's failure, said in the merge toolbar (where it was asked for)
  const [mergeError, setMergeError] = useState<Message | null>(null);
  // `to`: the page the list stepped back to by itself, where the notes show too
  const [notes, setNotes] = useState<{ key: string; to?: string; byId: Record<string, Note> }>({
    key: listKey, byId: {},
  });
  const cardNotes = notesOf(notes, listKey);
  // The card whose note was just written: focus goes there (the dialog's button is gone)
  const [focusOn, setFocusOn] = useState<string | null>(null);
  const listRef = useRef<HTMLOListElement>(null);
  // "Stack in Immich": the dry run waiting for its confirmation, what is running (a
  // group's id, "bulk" or "confirm"), a bulk run's progress and report
  const [stackPending, setStackPending] = useState<StackPending | null>(null);
  const [stacking, setStacking] = useState<string | null>(null);
  const [progress, setProgress] = useState<StackProgress | null>(null);
  const [report, setReport] = useState<StackReport | null>(null);
  // What the stack results said of each group's stack in Immich (its cover), by group id
  const [known, setKnown] = useState<Record<string, KnownStack>>({});
  const learn = (results: StackResult[]) => setKnown((k) => {
    const next = { ...k };
    for (const r of results) {
      const n = knownStack(r, k[r.id]);
      if (n) next[r.id] = n;
    }
    return next;
  });
  const stopRef = useRef(false);
  // The list shown (its type and folder): a bulk run belongs to the list it was asked on
  const scope = `${type}|${folder}`;
  const scopeRef = useRef(scope);
  scopeRef.current = scope;
  // Stop was pressed: said at once ("Stopping…"), though the chunk in flight still runs
  const [stopping, setStopping] = useState(false);
  const stop = () => {
    stopRef.current = true;
    setStopping(true);
  };
  const reportRef = useRef<HTMLDivElement>(null);
  const stopRefButton = useRef<HTMLButtonElement>(null);
  const [focusReport, setFocusReport] = useState(false);
  // What opened a stack's dialog (its button, disabled while the dry run ran) and its card:
  // a dialog closed by Cancel or Escape, or a dry run that needed none, gives it the
  // keyboard back
  const opener = useRef<{ el: Element | null; id: string | null }>({ el: null, id: null });
  const [focusBack, setFocusBack] = useState(false);
  const returnFocus = () => {
    const { el, id } = opener.current;
    if (canTakeFocus(el)) return el;
    return id === null ? null
      : ([...(listRef.current?.children ?? [])] as HTMLElement[]).find((c) => c.dataset.id === id);
  };
  const items = list.data?.items ?? [];
  const shown = placeNotes(items, Object.entries(cardNotes).map(([id, n]) => ({ id, index: n.index })));

  // The last page emptied (its groups corrected away): the list steps back, its notes
  // (and their Undo) first on the page stepped to, the keyboard on the first of them
  const focusAfterStep = useFocusAfterStep(list, listKey, listRef, shown.find((x) => cardNotes[x.id])?.id);
  useEmptyPageStep(list, listKey, page, PAGE_SIZE, (p) => {
    const to = `${type}|${folder}\u0000${p}`;
    if (Object.keys(cardNotes).length) {
      setNotes({ key: listKey, to, byId: carryNotes(cardNotes) });
      focusAfterStep(to);
    }
    nav({ page: pageParam(p) }, true);
  });

  useEffect(() => {
    if (focusOn === null) return;
    focusCard(listRef.current, focusOn);
    setFocusOn(null);
  }, [focusOn]);

  useEffect(() => {
    if (!focusBack) return;
    returnFocus()?.focus();
    setFocusBack(false);
  });

  useEffect(() => {
    if (!focusReport) return;
    reportRef.current?.querySelector<HTMLElement>(".notice")?.focus();
    setFocusReport(false);
  });

  // A bulk stack under way: leaving the page would stop it halfway, unreported

  // Another list shown (Back, another folder or type): a stack waiting for its
  // confirmation is dropped (its dialog spoke of the other list, and would stack its
  // groups), and a bulk dry run under way stops; a real run under way goes on, its dialog
  // saying which list it is of
  useEffect(() => {
    if (stacking === "bulk") stopRef.current = true;
    if (stacking !== "confirm") setStackPending(null);
  }, [scope]);

  // A bulk run's button is disabled while it runs: the keyboard goes to its Stop
  useEffect(() => {
    const at = document.activeElement;
    if (progress && (!at || at === document.body)) stopRefButton.current?.focus();
  });

  // One note at a time: a correction changes groups (and their ids) that earlier notes
  // spoke of. `at`: the group whose place it takes, or the index of that place.
  const noteOn = (g: FileGroup, note: Message, at: string | number = g.id, regroup?: Regroup) => {
    const here = typeof at === "number" ? at : items.findIndex((x) => x.id === at);
    setNotes({
      key: listKey, byId: { [g.id]: { note, index: here < 0 ? 0 : here, group: g, regroup } },
    });
  };

  // "Undo dissolve" / "Undo split": the group's files merged back into one (manual) group,
  // said where the note was
  const regroup = async (from: FileGroup, r: Regroup) => {
    const index = cardNotes[from.id]?.index ?? 0;
    setBusy(true);
    setMergeError(null);
    try {
      const merged = await api.mergeGroups(r.paths, r.primary);
      noteOn(merged, { text: regroupNotice(r, merged) }, index);
      setFocusOn(merged.id);
      setPicked({});
      setForMerge([]);
    } catch (e) {
      const gone = e instanceof ApiError && e.status === 404 ? uncatalogedFile(e.message) : null;
      if (gone !== null && r.paths.includes(gone)) {
        // A rescan found one of its files moved or deleted: a merge of all of them can never
        // work again. Said in the gateway's words; what is left can still go back together.
        const rest = regroupWithout(r, gone);
        noteOn(from, {
          text: `${e instanceof Error ? e.message : String(e)} (a scan found it moved or deleted). ` +
            (rest ? `The other ${plural(rest.paths.length, "file")} can still be put back together.`
                  : "Fewer than two of its files are left: there is no group to put back."),
          error: true,
        }, index, rest ?? undefined);
      } else {
        // The Undo stays offered: a failure may be passing (a scan's grouping won a race)
        noteOn(from, { text: actionFailure(e).text, error: true }, index, r);
      }
      setFocusOn(from.id);
    } finally {
      setBusy(false);
      list.reload();
    }
  };

  // --- Stack in Immich ----------------------------------------------------------------

  /** One group: its dry run; a confirmation when it would stack, else what it said. */
  const previewStack = async (g: FileGroup) => {
    opener.current = { el: document.activeElement, id: g.id };
    const scope = scopeRef.current;
    setMergeError(null);
    setReport(null);
    setStacking(g.id);
    try {
      const plan = await api.stackGroup(g.id, true);
      learn([plan]);
      // Another list shown meanwhile (Back, another folder or type): no dialog over it
      if (scopeRef.current !== scope) return;
      if (plan.outcome === "stack") {
        setStackPending({ kind: "one", group: g, plan });
      } else {
        noteOn(g, { text: stackNotice(plan, known[g.id]) });
        setFocusBack(true);
      }
    } catch (e) {
      if (scopeRef.current !== scope) return; // another list shown: its notes are its own
      const f = stackFailure(e);
      noteOn(g, { text: f.text, error: true });
      setFocusBack(true);
      if (f.reload) list.reload();
    } finally {
      setStacking(null);
    }
  };

  /** Every group of this list (its type and folder, all pages). */
  const listAll = async (): Promise<FileGroup[] | null> => {
    const seen = new Map<string, FileGroup>();
    for (let p = 1; ; p += 1) {
      if (stopRef.current) return null;
      const answer = await api.groups({ type, path_prefix: folder || undefined, page: p, size: LIST_CHUNK });
      for (const g of answer.items) if (!seen.has(g.id)) seen.set(g.id, g);
      setProgress({ phase: "list", done: seen.size, total: answer.total });
      if (answer.items.length < LIST_CHUNK || p * LIST_CHUNK >= answer.total) break;
    }
    return [...seen.values()];
  };

  /** All groups of the list: listed, then a dry run of those with two photos or more,
   * in chunks the gateway takes; then the confirmation says what it would do. */
  const previewBulkStack = async () => {
    opener.current = { el: document.activeElement, id: null };
    const scope = scopeRef.current;
    stopRef.current = false;
    setStopping(false);
    setMergeError(null);
    setReport(null);
    setStacking("bulk");
    setProgress({ phase: "list", done: 0, total: list.data?.total ?? null });
    try {
      const found = await bulkDryRun(listAll, (ids) => api.stackGroups(ids, true), {
        stopped: () => stopRef.current,
        onStart: (total) => setProgress({ phase: "dry", done: 0, total }),
        onProgress: (done, total) => setProgress({ phase: "dry", done, total }),
      });
      if (scopeRef.current !== scope) {
        // Another list is shown now (Back, another folder or type): its dialog would
        // describe one list over another
        setReport({ headline: "Stopped: the list shown changed, nothing was stacked.", error: false, lines: [] });
        return;
      }
      if (found.kind === "stopped") {
        setReport({ headline: "Stopped: nothing was stacked.", error: false, lines: [] });
        setFocusReport(true);
        return;
      }
      setStackPending({ kind: "bulk", groups: found.groups, nothing: found.nothing, dry: found.dry,
                        summary: found.summary, folder, type });
    } catch (e) {
      // The list could not be read: what a stack would do cannot be said
      setReport({ headline: `Nothing was stacked: ${actionFailure(e).text}`, error: true, lines: [] });
      setFocusReport(true);
    } finally {
      setStacking(null);
      setProgress(null);
      setStopping(false);
    }
  };

  const confirmStack = async () => {
    const p = stackPending;
    if (!p) return;
    if (p.kind === "one") {
      setStacking("confirm");
      try {
        // Exactly what the dry run showed, or nothing (409 if Immich or the group changed)
        const r = await api.stackGroup(p.group.id, false, p.plan.assetIds);
        noteOn(p.group, { text: stackNotice(r, known[p.group.id]) });
        learn([r]);
      } catch (e) {
        const f = stackFailure(e);
        noteOn(p.group, { text: f.text, error: true });
        if (f.reload) list.reload();
      } finally {
        setStacking(null);
        setStackPending(null);
        setFocusOn(p.group.id);
      }
      return;
    }
    // Only what the dry run said would stack is sent; the others are reported as it said
    const ids = p.summary.stack.map((r) => r.id);
    stopRef.current = false;
    setStopping(false);
    setStacking("confirm");
    setProgress({ phase: "real", done: 0, total: ids.length });
    const expected = new Map(p.summary.stack.map((r) => [r.id, r.assetIds ?? []]));
    const real = await whileRunning(() => stackInChunks(ids, (chunk) => api.stackGroups(
      chunk, false, Object.fromEntries(chunk.map((id) => [id, expected.get(id) ?? []]))), {
      onProgress: (done, total) => setProgress({ phase: "real", done, total }),
      stopped: () => stopRef.current,
    }));
    const sent = new Set(ids);
    const byId = new Map(real.results.map((r) => [r.id, r]));
    const dryById = new Map(p.dry.results.map((r) => [r.id, r]));
    const notAsked = new Set(real.notAsked);
    const lines = p.groups.map((g) => {
      const name = groupName(g);
      if (notAsked.has(g.id)) {
        return { id: g.id, name, text: "Not stacked: stopped before it was sent.", error: false };
      }
      const r = sent.has(g.id) ? byId.get(g.id) : dryById.get(g.id);
      if (!r) return { id: g.id, name, text: `Not stacked: ${NOTHING_TO_STACK}.`, error: false };
      const ok = r.status === undefined || r.status === 200;
      return { id: g.id, name, text: bulkStackLine(r, !sent.has(g.id), known[g.id]), error: !ok && r.status !== 409 };
    });
    learn([...p.dry.results.filter((r) => !sent.has(r.id)), ...real.results]);
    const summary = stackSummary(
      { results: [...p.dry.results.filter((r) => !sent.has(r.id)), ...real.results], notAsked: real.notAsked,
        stoppedLate: real.stoppedLate },
      p.nothing,
    );
    setReport({ headline: bulkStackHeadline(summary, false), error: summary.failed.length > 0, lines });
    // Each card of this page says its own
    const here = new Map(lines.map((l) => [l.id, l]));
    setNotes({
      key: listKey,
      byId: Object.fromEntries(items.flatMap((g, index) => {
        const l = here.get(g.id);
        return l ? [[g.id, { note: { text: l.text, error: l.error }, index, group: g }]] : [];
      })),
    });
    setStacking(null);
    setProgress(null);
    setStopping(false);
    setStackPending(null);
    setFocusReport(true);
  };

  const pickMember = (g: FileGroup, path: string, on: boolean) =>
    setPicked((s) => ({ ...s, [g.id]: toggled(s[g.id] ?? [], path, on) }));
  const pickGroup = (g: FileGroup, on: boolean) =>
    setForMerge((s) => {
      const without = s.filter((x) => x.id !== g.id);
      return on ? [...without, g] : without;
    });

  const ask = (p: Pending) => {
    setMergeError(null);
    setPending(p);
  };

  const confirm = async () => {
    if (!pending) return;
    setBusy(true);
    try {
      if (pending.kind === "merge") {
        const plan = mergePlan(pending.groups);
        const merged = await api.mergeGroups(plan.paths, plan.primary);
        const primary = groupPrimary(merged);
        // Said in the merged group's card (where the first group picked was on this page)
        const first = pending.groups.find((g) => items.some((x) => x.id === g.id));
        noteOn(merged, {
          text: `Merged ${plural(pending.groups.length, "group")} into one manual group of ` +
            `${plural(merged.members.length, "file")}` +
            (primary ? ` (primary ${displayName(primary)}).` : "."),
        }, first?.id);
        setFocusOn(merged.id);
      } else {
        const g = pending.group;
        const taken = pending.kind === "split" ? pending.paths : null;
        const r = await api.splitGroup(g.id, taken ?? undefined);
        noteOn(g, { text: splitNotice(groupName(g), g.members.map((m) => m.path), taken, r.groups) },
               g.id, regroupPlan(g, pending.kind) ?? undefined);
        setFocusOn(g.id);
      }
      // Group ids change with the groups: start the next correction from a clean slate.
      setPicked({});
      setForMerge([]);
      setPending(null);
      list.reload();
    } catch (e) {
      const f = actionFailure(e);
      if (pending.kind === "merge") setMergeError({ text: f.text, error: true });
      else noteOn(pending.group, { text: f.text, error: true });
      setPending(null);
      // Most failures are a list gone stale (a scan regrouped, ids changed): show what the
      // server holds now, so that the next try is on groups that exist.
      list.reload();
    } finally {
      setBusy(false);
    }
  };

  const anyBusy = busy || stacking !== null;
  const mergeCount = forMerge.length;
  const mergeIds = new Set(forMerge.map((g) => g.id));

  return (
    <div className="groups">
      <h1 tabIndex={-1}>Groups</h1>
      <p className="muted">
        Files that belong together: RAW+JPEG pairs, Live Photos (still + video), edited versions
        and sidecars. The primary is the file Immich shows. Grouped wrongly? Split files off or
        dissolve a group; files that belong together can be merged into a manual group. Later
        scans keep your corrections.
      </p>
      <form className="filters" aria-label="Filter groups"
            onSubmit={folderForm.submit}>
        <label>
          Type
          <select value={type} onChange={(e) => nav({ type: e.target.value })}>
            <option value="">All</option>
            {TYPES.map((t) => <option key={t} value={t}>{groupTypeLabel(t)}</option>)}
          </select>
        </label>
        <FolderField form={folderForm} folder={folder}
                     onClear={() => nav({ folder: "" })} helpId="groups-folder-help"
                     help="A folder of the library, as a full path: only the groups with a file in it or below are listed." />
        {list.data && (
          <span className="muted" role="status">
            {formatCount(list.data.total)} {list.data.total === 1 ? "group" : "groups"}
          </span>
        )}
        {!localMode && (list.data?.total ?? 0) > 0 && (
          <button type="button" className="bulk" onClick={previewBulkStack}
                  disabled={anyBusy || list.loading}
                  title="Each group this list shows, on all its pages: its photos as one stack in Immich, its primary the cover (a dry run first)">
            {stacking === "bulk" ? "Working…" : "Stack all shown groups in Immich"}
          </button>
        )}
      </form>
      {progress && progress.phase !== "real" && (
        <p className="stack-progress">
          <span role="status">{stopping ? "Stopping… (waiting for the request under way)" : progressText(progress)}</span>
          <button type="button" ref={stopRefButton} onClick={stop}
                  title="Nothing is stacked until you confirm">
            {stopping ? "Stopping…" : "Stop"}
          </button>
        </p>
      )}
      {mergeCount > 0 && (
        <div className="toolbar" role="toolbar" aria-label="Merge groups">
          <span>
            {plural(mergeCount, "group")} selected for merge
            {mergeCount < 2 && <span className="muted"> — select another group to merge with</span>}
          </span>
          <button type="button" className="primary" disabled={!canMerge(mergeCount) || anyBusy}
                  onClick={() => ask({ kind: "merge", groups: forMerge })}>
            Merge {plural(mergeCount, "group")}
          </button>
          <button type="button" onClick={() => setForMerge([])} disabled={anyBusy}>
            Clear selection
          </button>
          {mergeError && (
            <p className="notice error" role="alert">{displayText(mergeError.text)}</p>
          )}
        </div>
      )}
      <Notices message={null} list={list} />
      <div aria-live="polite" ref={reportRef}>
        {report && (
          <div className={`notice stack-report ${report.error ? "error" : "ok"}`}
               role={report.error ? "alert" : "status"} tabIndex={-1}>
            <p>{displayText(report.headline)}</p>
            {report.lines.length > 0 && (
              <details>
                <summary>Each group ({formatCount(report.lines.length)})</summary>
                <ul className="plan">
                  {report.lines.map((l) => (
                    <li key={l.id} data-id={l.id} className={l.error ? "stack-failed" : undefined}>
                      <strong className="path">{l.name}</strong>: {displayText(l.text)}
                    </li>
                  ))}
                </ul>
              </details>
            )}
          </div>
        )}
      </div>
      <ol className="group-list" ref={listRef}>
        {shown.map(({ item, id }) => {
          const g = item ?? cardNotes[id].group;
          return (
            <GroupRow key={id} group={g} gone={item === null} localMode={localMode}
                      busy={anyBusy || list.loading}
                      onStack={!localMode && hasStack(g) ? () => previewStack(g) : undefined}
                      known={known[g.id] ?? null}
                      stackWorking={stacking === g.id}
                      picked={picked[g.id] ?? []}
                      onPick={(path, on) => pickMember(g, path, on)}
                      forMerge={mergeIds.has(g.id)} onMergePick={(on) => pickGroup(g, on)}
                      onSplit={(paths) => ask({ kind: "split", group: g, paths })}
                      onDissolve={() => ask({ kind: "dissolve", group: g })}
                      note={cardNotes[id]?.note ?? null}
                      regroup={cardNotes[id]?.regroup ?? null}
                      onRegroup={(r) => regroup(g, r)} />
          );
        })}
      </ol>
      {list.data && list.data.items.length === 0 && (
        <p className="empty">{groupsEmptyText(type, folder)}</p>
      )}
      {list.data && (
        <Pager page={page} size={list.data.size || PAGE_SIZE} total={list.data.total}
               onPage={(p) => nav({ page: pageParam(p) })} label="Group pages" />
      )}
      <ConfirmDialog pending={pending} busy={busy} onCancel={() => setPending(null)}
                     onConfirm={confirm} />
      <StackDialog pending={stackPending} busy={stacking === "confirm"}
                   progress={progress} stopping={stopping} onStop={stop}
                   onCancel={() => setStackPending(null)} onConfirm={confirmStack}
                   returnFocus={returnFocus} />
    </div>
  );
}

function isPrimary(g: FileGroup, m: GroupMember): boolean {
  return m.is_primary ?? m.path === g.primary;
}

interface RowProps {
  group: FileGroup;
  /** Left the list (split up, dissolved, merged away): only its name and the note show. */
  gone: boolean;
  note: Message | null;
  localMode: boolean;
  busy: boolean;
  picked: string[];
  onPick: (path: string, on: boolean) => void;
  forMerge: boolean;
  onMergePick: (on: boolean) => void;
  onSplit: (paths: string[]) => void;
  onDissolve: () => void;
  /** After a split or dissolve: the way back, offered in the note */
  regroup: Regroup | null;
  onRegroup: (r: Regroup) => void;
  /** "Stack in Immich" (its dry run); not offered in local mode, nor for a group with
   * fewer than two photos to stack */
  onStack?: () => void;
  /** What a stack result said of its stack in Immich: the hint names the cover it has */
  known: KnownStack | null;
  stackWorking: boolean;
}

function GroupRow({
  group, gone, note, localMode, busy, picked, onPick, forMerge, onMergePick, onSplit, onDissolve,
  regroup, onRegroup, onStack, known, stackWorking,
}: RowProps) {
  const members = [...group.members].sort((a, b) => Number(isPrimary(group, b)) - Number(isPrimary(group, a)));
  const primary = members.find((m) => isPrimary(group, m)) ?? members[0];
  const titleId = `grp-${group.id}`;
  const hintId = `grp-hint-${group.id}`;
  const coverId = `grp-cover-${group.id}`;
  // Only members still in the group count (a reload may have changed it).
  const selected = members.map((m) => m.path).filter((p) => picked.includes(p));
  const can = splitButtons(members.length, selected.length);
  // The same <li> and note whether the card is whole or gone (see DuplicateCard)
  return (
    <li className={gone ? "grp-gone" : "grp"} aria-labelledby={titleId} data-id={group.id}
        data-type={group.type} tabIndex={-1}>
      {gone ? (
        <p className="grp-gone-head" id={titleId}>
          <span className={`tag tag-${group.type}`}>{groupTypeLabel(group.type)}</span>
          {" "}{primary ? displayName(primary.path) : group.id}
        </p>
      ) : (
        <>
          {primary ? <Thumb member={primary} localMode={localMode} size={256} /> : <div />}
          <div className="grp-body">
            <h2 id={titleId}>
              <span className={`tag tag-${group.type}`}>{groupTypeLabel(group.type)}</span>
              <span className="name">{primary ? displayName(primary.path) : group.id}</span>
            </h2>
            {primary && <p className="dir" title={displayPath(primary.path)}>{displayPath(dirname(primary.path))}</p>}
            {primary?.taken_at && <p className="muted">Taken {formatTakenAt(primary.taken_at)}</p>}
            <table className="grp-members">
              <caption className="sr-only">Files in this group</caption>
              <thead>
                <tr>
                  <th scope="col" className="pick-col"><span className="sr-only">Select</span></th>
                  <th scope="col">File</th><th scope="col">Role</th><th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                {members.map((m, i) => {
                  const id = `grp-${group.id}-m${i}`;
                  return (
                    <tr key={m.path} className={isPrimary(group, m) ? "primary" : undefined}
                        data-path={m.path}>
                      <td className="pick-col">
                        <input type="checkbox" id={id} checked={selected.includes(m.path)}
                               disabled={busy} onChange={(e) => onPick(m.path, e.target.checked)}
                               aria-label={`Select ${displayName(m.path)}`} aria-describedby={hintId} />
                      </td>
                      <td className="path" title={displayPath(m.path)}><label htmlFor={id}>{displayName(m.path)}</label></td>
                      <td>{isPrimary(group, m) ? "primary" : m.role ?? m.kind ?? "member"}{m.kind && isPrimary(group, m) ? ` (${m.kind})` : ""}</td>
                      <td>{formatBytes(m.size)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <p id={hintId} className="sr-only">
              Selected files can be split off this group; each one is then on its own.
            </p>
            <div className="grp-actions">
              {onStack && (
                <span className="stack-action">
                  <button type="button" onClick={onStack} disabled={busy} aria-describedby={coverId}>
                    {stackWorking ? "Working…" : "Stack in Immich"}
                  </button>
                  <span className="muted" id={coverId}>
                    {coverHint(primary?.path ?? null, known) || group.id}
                  </span>
                </span>
              )}
              <button type="button" onClick={() => onSplit(selected)} disabled={busy || !can.split}
                      title={can.split ? undefined : "Select some of the files (not all) first"}>
                Split off selected{selected.length ? ` (${selected.length})` : ""}
              </button>
              <button type="button" className="danger" onClick={onDissolve}
                      disabled={busy || !can.dissolve}>
                Dissolve group
              </button>
              <label className="check merge-pick">
                <input type="checkbox" checked={forMerge} disabled={busy}
                       onChange={(e) => onMergePick(e.target.checked)} aria-describedby={titleId} />
                Select for merge
              </label>
            </div>
          </div>
        </>
      )}
      <CardNote note={note}>
        {regroup && (
          <>
            {" "}
            <button type="button" className="note-action" onClick={() => onRegroup(regroup)}
                    disabled={busy}
                    title={`Merge its ${regroup.paths.length} files back into one manual group`}>
              {regroup.missing?.length ? `Put back the other ${plural(regroup.paths.length, "file")}`
                : regroup.kind === "dissolve" ? "Undo dissolve" : "Undo split"}
            </button>
          </>
        )}
      </CardNote>
    </li>
  );
}

interface ConfirmProps {
  pending: Pending | null;
  busy: boolean;
  onCancel: () => void;
  onConfirm: () => void;
}

function ConfirmDialog({ pending, busy, onCancel, onConfirm }: ConfirmProps) {
  let title = "";
  let action = "";
  let body = null;
  if (pending?.kind === "split") {
    const n = pending.paths.length;
    const left = pending.group.members.length - n;
    title = `Split ${plural(n, "file")} off this group?`;
    action = `Split off ${plural(n, "file")}`;
    body = (
      <>
        <p className="summary">
          {n === 1 ? "This file leaves" : "These files leave"} the group of{" "}
          <strong>{groupName(pending.group)}</strong> and {n === 1 ? "is" : "are each"} on
          {n === 1 ? " its" : " their"} own.
          {left === 1 && " The one file left is on its own too, so the group goes away."}
          {n === 1 ? " Later scans keep it apart" : " Later scans keep them apart"}; to put the
          group back together, use <em>Undo split</em> in the message that follows (the files
          then form one manual group).
        </p>
        <ul className="plan">
          {pending.paths.map((p) => <li key={p} className="path">{displayPath(p)}</li>)}
        </ul>
      </>
    );
  } else if (pending?.kind === "dissolve") {
    const n = pending.group.members.length;
    title = "Dissolve this group?";
    action = "Dissolve group";
    body = (
      <>
        <p className="summary">
          The group of <strong>{groupName(pending.group)}</strong> goes away: its{" "}
          {plural(n, "file")} {n === 1 ? "is" : "are each"} on {n === 1 ? "its" : "their"} own.
          No file is moved or deleted.
        </p>
        <p className="notice">
          Later scans keep these files apart; to put them together again, use{" "}
          <em>Undo dissolve</em> in the message that follows, which merges them into one manual
          group. Once you leave this page, files that are in no group cannot be picked for a
          merge here (the gateway's <code>POST /api/twinlens/groups/merge</code> with their
          paths can).
        </p>
        <ul className="plan">
          {pending.group.members.map((m) => <li key={m.path} className="path">{displayPath(m.path)}</li>)}
        </ul>
      </>
    );
  } else if (pending?.kind === "merge") {
    const plan = mergePlan(pending.groups);
    title = `Merge ${plural(pending.groups.length, "group")}?`;
    action = `Merge ${plural(pending.groups.length, "group")}`;
    body = (
      <>
        <p className="summary">
          These {plural(plan.paths.length, "file")} become one manual group
          {plan.primary && <>, with <strong>{displayName(plan.primary)}</strong> (the primary of the
          first group you selected) as its primary</>}. Later scans keep it. No file is moved or
          deleted.
        </p>
        <ul className="plan">
          {plan.paths.map((p) => (
            <li key={p} className="path">
              {p === plan.primary && <span className="tag">primary</span>} {displayPath(p)}
            </li>
          ))}
        </ul>
      </>
    );
  }
  return (
    <Dialog open={pending !== null} onClose={onCancel} busy={busy} title={title}
            actions={
              <>
                <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
                <button type="button" className={pending?.kind === "merge" ? "primary" : "danger"}
                        onClick={onConfirm} disabled={busy}>
                  {busy ? "Working…" : action}
                </button>
              </>
            }>
      {body}
    </Dialog>
  );
}

interface StackDialogProps {
  pending: StackPending | null;
  busy: boolean;
  progress: StackProgress | null;
  /** Stop was pressed during the real run: said at once */
  stopping: boolean;
  onStop: () => void;
  onCancel: () => void;
  onConfirm: () => void;
  returnFocus: () => HTMLElement | null | undefined;
}

/** The most groups a bulk dry run names one by one (the rest are counted). */
const NAMED = 50;

function StackDialog({
  pending, busy, progress, stopping, onStop, onCancel, onConfirm, returnFocus,
}: StackDialogProps) {
  let title = "";
  let action = "";
  let canGo = true;
  let body = null;
  if (pending?.kind === "one") {
    const { group, plan } = pending;
    const cover = stackCover(plan) ?? group.primary ?? null;
    const primary = plan.primary ?? group.primary ?? null;
    const members = plan.members ?? [];
    const n = stackedCount(plan);
    const sent = new Set(plan.assetIds ?? []);
    const inStack = members.filter((m) => m.stackId && m.assetId && sent.has(m.assetId));
    const rows = planRows(plan, group);
    const left = rows.filter((r) => r.left === "absent");
    const hidden = rows.filter((r) => r.left === "hidden");
    title = "Stack in Immich?";
    action = `Stack ${plural(n, "photo")}`;
    body = (
      <>
        <p className="summary">
          Dry run: Immich will show these {plural(n, "photo")} as one stack, with{" "}
          <strong>{cover ? displayName(cover) : group.id}</strong>{" "}
          {cover === primary ? "(the group's primary)" : "(the cover of the Immich stack it grows from, kept)"} as
          its cover. No file is moved or changed; Immich's own <em>Unstack</em> takes a new stack apart.
        </p>
        {inStack.length > 0 && (
          <p className="notice">
            {inStack.length === 1 ? "One of them is" : `${inStack.length} of them are`} in an
            Immich stack already: it grows to take in the whole group, its cover kept.
          </p>
        )}
        <ul className="plan">
          <li>
            {rows.map((r) => (
              <div key={r.path} className={r.stacked ? "plan-keep" : "plan-skip"}>
                <span className="tag">{r.tag}</span>
                {" "}{displayPath(r.path)}
              </div>
            ))}
          </li>
        </ul>
        {hidden.length > 0 && (
          <p className="muted">
            {plural(hidden.length, "photo")} of the group {hidden.length === 1 ? "is" : "are"} archived
            or hidden in Immich and {hidden.length === 1 ? "stays" : "stay"} where {hidden.length === 1 ? "it is" : "they are"},
            out of the stack.
          </p>
        )}
        {left.length > 0 && (
          <p className="muted">
            {plural(left.length, "photo")} of the group {left.length === 1 ? "is" : "are"} not in
            Immich for you (not indexed yet, or another user's) and {left.length === 1 ? "stays" : "stay"} out
            of the stack.
          </p>
        )}
      </>
    );
  } else if (pending?.kind === "bulk") {
    const { summary: s, folder, type } = pending;
    const names = new Map(pending.groups.map((g) => [g.id, groupName(g)]));
    const named = (ids: string[]) =>
      ids.slice(0, 3).map((id) => names.get(id) ?? id).join(", ") + (ids.length > 3 ? ` and ${formatCount(ids.length - 3)} more` : "");
    const skipped = s.skipped.reduce((n, x) => n + x.ids.length, 0);
    const n = s.stack.length;
    canGo = n > 0;
    title = n ? `Stack ${plural(n, "group")} in Immich?` : "Nothing to stack in Immich";
    action = `Stack ${plural(n, "group")}`;
    body = (
      <>
        <p className="summary">
          Dry run over the {plural(pending.groups.length, "group")} listed
          {type ? <> ({groupTypeLabel(type)})</> : null}
          {folder ? <> with a file in <span className="path">{displayPath(folder)}</span></> : null}, every
          page: <strong>{formatCount(n)}</strong> would be stacked (each group's photos as one
          Immich stack, its primary the cover), <strong>{formatCount(s.already.length)}</strong>{" "}
          {s.already.length === 1 ? "is" : "are"} stacked already (left as {s.already.length === 1 ? "it is" : "they are"}),{" "}
          <strong>{formatCount(skipped)}</strong> would not be stacked. No file is moved or
          changed; Immich's own <em>Unstack</em> takes a stack apart again.
        </p>
        <CountedGroups className="notice stack-skipped" title="Not stacked:" named={named}
          items={s.skipped.map((x) => ({ why: x.reason, ids: x.ids }))} />
        <CountedGroups className="notice error" title="Could not be asked (not stacked):" named={named}
          items={s.failed.map((x) => ({ why: x.message, ids: x.ids }))} />
        {n > 0 && (
          <ul className="plan">
            {s.stack.slice(0, NAMED).map((r) => (
              <li key={r.id}>
                <span className="tag">cover</span> {displayPath(stackCover(r) ?? names.get(r.id) ?? r.id)}
                <span className="muted"> ({plural(stackedCount(r), "photo")})</span>
              </li>
            ))}
            {n > NAMED && <li className="muted">and {formatCount(n - NAMED)} more</li>}
          </ul>
        )}
        {progress?.phase === "real" && (
          <p role="status">
            {stopping ? "Stopping… the groups already sent are being stacked; the rest are not sent." : progressText(progress)}
          </p>
        )}
      </>
    );
  }
  const bulkRunning = pending?.kind === "bulk" && busy;
  return (
    <Dialog open={pending !== null} onClose={onCancel} busy={busy} title={title}
            returnFocus={returnFocus}
            actions={
              <>
                {bulkRunning ? (
                  <button type="button" onClick={onStop}
                          title="The groups already sent stay stacked; the rest are not sent">
                    {stopping ? "Stopping…" : "Stop"}
                  </button>
                ) : (
                  <button type="button" onClick={onCancel} disabled={busy}>{canGo ? "Cancel" : "Close"}</button>
                )}
                {canGo && (
                  <button type="button" className="primary" onClick={onConfirm} disabled={busy}>
                    {busy ? "Working…" : action}
                  </button>
                )}
              </>
            }>
      {body}
    </Dialog>
  );
}

/** Groups counted by why (a skip reason, a failure), each line naming a few of them;
 * nothing when there are none. */
function CountedGroups({ className, title, items, named }: {
  className: string;
  title: string;
  items: { why: string; ids: string[] }[];
  named: (ids: string[]) => string;
}) {
  if (items.length === 0) return null;
  return (
    <div className={className}>
      <p>{title}</p>
      <ul>
        {items.map((x) => (
          <li key={x.why}>
            <strong>{formatCount(x.ids.length)}</strong>: {displayText(x.why)}{" "}
            <span className="muted">({displayText(named(x.ids))})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
