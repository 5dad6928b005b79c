import { useEffect, useRef, useState } from "react";
import { CardNote, type Message, Notices } from "./Notices";
import {
  api, ApiError, type BulkResult, type Duplicate, type DupMember, type ResolvePlan, type ResolveRequest,
  type UndoResult,
} from "./api";
import { canTakeFocus, Dialog } from "./Dialog";
import { FolderField, useFolderForm } from "./FolderField";
import {
  focusCard, focusNear, useEmptyPageStep, useFocusAfterStep, useLoad, whileRunning, type Go, type Params,
} from "./hooks";
import {
  actionFailure, camera, displayText, carryNotes, confirmButton, confirmedRequests, decidedKeep, defaultKeep,
  dirname, displayName, displayPath, formatBytes, formatCount, formatSimilarity, formatTakenAt, keepReasonLabel,
  DUPLICATE_PAGE_SIZES, dismissNotice, duplicatesListKey, duplicatesListParams, duplicatesRoute, duplicatesView,
  hiddenDecided, memberMark, memberOutcome, notesOf, pageAfterResize, pageParam, pathInFolder, placeNotes,
  planTotals, plural, undoNotice, undoSummary,
} from "./logic";
import { Pager } from "./Pager";
import { Thumb } from "./Thumb";

interface Props {
  localMode: boolean;
  params: Params;
  go: Go;
}

type Pending =
  | { kind: "one"; dup: Duplicate; plan: ResolvePlan; request: ResolveRequest }
  | { kind: "bulk"; result: BulkResult; requests: ResolveRequest[] }
  | { kind: "undo"; dup: Duplicate; plan: UndoResult };

/** The outcome of an action on one group, shown in its card; when the group has left the
 * list, in a small card of its own at the place it had (`index`). `undo`: the group as
 * decided, for the note's Undo button. */
interface Note {
  note: Message;
  index: number;
  dup: Duplicate;
  undo?: Duplicate;
}

export function Duplicates({ localMode, params, go }: Props) {
  // Kind, status, folder, page and groups per page (20 unless the URL says another offered
  // size: a bigger page reviews more at once, up to the 200 "Accept all suggestions" can
  // send in one call), all in the URL
  const view = duplicatesView(params);
  const { type, status, folder, page, size } = view;
  const listKey = duplicatesListKey(view);
  const list = useLoad(() => api.duplicates(duplicatesListParams(view)), listKey);
  const folderForm = useFolderForm(folder, (f) => nav({ folder: f }));
  const [picks, setPicks] = useState<Record<string, string>>({});
  // Groups decided on this list, hidden until the reload drops them, each with the load on
  // screen when it was decided: a later load that lists it again (another reviewer reopened
  // it) shows it. Only for the list they were decided on: under another filter (e.g. "Not
  // duplicates") they belong in the list.
  type Loaded = typeof list.data;
  const [decided, setDecided] = useState<{ key: string; ids: Map<string, Loaded> }>({
    key: listKey, ids: new Map(),
  });
  const loadedRef = useRef(list.data);
  loadedRef.current = list.data;
  const done = hiddenDecided(decided.key === listKey ? decided.ids : new Map<string, Loaded>(), list.data);
  /** `done` and `add` (decided now, on the load on screen), less `drop`. */
  const decide = (add: string[], drop: string[] = []) => setDecided((s) => {
    const before = s.key === listKey ? s.ids : new Map<string, Loaded>();
    const still = hiddenDecided(before, loadedRef.current);
    const ids = new Map([...before].filter(([id]) => still.has(id)));
    for (const id of add) ids.set(id, loadedRef.current);
    for (const id of drop) ids.delete(id);
    return { key: listKey, ids };
  });
  // `to`: the page the list stepped back to by itself, where the notes show too
  const [notes, setNotes] = useState<{ key: string; to?: string; byId: Record<string, Note> }>({
    key: listKey, byId: {},
  });
  const cardNotes = notesOf(notes, listKey);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  // "Accept all suggestions" under way: leaving the page would lose what it did
  // Page-wide actions ("Accept all suggestions") say how they went at the top, by their button
  const [message, setMessage] = useState<Message | null>(null);
  // After an action the button that had the focus may be gone: the focus goes to the next
  // card when the group left the list, else to the group's own card
  const [focusAfter, setFocusAfter] = useState<{ id: string; next: boolean } | null>(null);
  const listRef = useRef<HTMLOListElement>(null);
  const pageRef = useRef<HTMLDivElement>(null);
  // What opened the dialog (the button, when it had the focus) and the card it is on: a
  // dialog closed by Cancel or Escape gives the keyboard back there. The button is disabled
  // while its dry run runs, so the browser itself has nothing to give it back to.
  const opener = useRef<{ el: Element | null; id: string | null }>({ el: null, id: null });
  const opened = (id: string | null) => {
    opener.current = { el: document.activeElement, id };
  };
  const returnFocus = () => {
    const { el, id } = opener.current;
    if (canTakeFocus(el)) return el;
    // The card, when the button went with what the dialog did (after "Accept all", nothing
    // here: the page's own step takes the keyboard to its notice)
    return id === null ? null
      : ([...(listRef.current?.children ?? [])] as HTMLElement[]).find((c) => c.dataset.id === id);
  };
  // After "Accept all suggestions": 1 until the list is read again, 2 while it is. If that
  // leaves no card to review, the button and cards that had the focus are gone: it goes to
  // the notice saying what happened (else the keyboard would be back at the top of the page)
  const afterBulk = useRef(0);

  // `replace`: a step the list makes by itself (see `Go`)
  // (a filter changed, the folder too, starts from page 1)
  const nav = (p: Record<string, string>, replace = false) =>
    go("duplicates", duplicatesRoute(view, p), { replace });
  // Another page size keeps the first group shown on the page shown
  const resize = (to: number) => {
    const at = pageAfterResize(page, size, to);
    nav({ size: to === DUPLICATE_PAGE_SIZES[0] ? "" : String(to), page: pageParam(at) });
  };

  const items = (list.data?.items ?? []).filter((d) => !done.has(d.id));
  const openItems = items.filter((d) => (d.status ?? "open") === "open");
  const shown = placeNotes(items, Object.entries(cardNotes).map(([id, n]) => ({ id, index: n.index })));
  // A decided group shows the copy that was kept; an open one the user's pick (while it is
  // still a member: a rescan may have changed the group) or the suggestion.
  const pickOf = (d: Duplicate) =>
    d.members.some((m) => m.path === picks[d.id]) ? picks[d.id] : null;
  const keepOf = (d: Duplicate) =>
    ((d.status ?? "open") !== "open" ? decidedKeep(d) : null) ??
    pickOf(d) ?? defaultKeep(d) ?? "";

  // The last page emptied (its groups decided): the list steps back, its notes (and their
  // Undo) first on the page stepped to, the keyboard on the first of them
  const focusAfterStep = useFocusAfterStep(list, listKey, listRef, shown.find((x) => cardNotes[x.id])?.id);
  useEmptyPageStep(list, listKey, page, size, (p) => {
    const to = duplicatesListKey(view, p);
    if (Object.keys(cardNotes).length) {
      setNotes({ key: listKey, to, byId: carryNotes(cardNotes) });
      focusAfterStep(to);
    }
    nav({ page: pageParam(p) }, true);
  });

  useEffect(() => {
    if (afterBulk.current === 0) return;
    if (list.loading) afterBulk.current = 2;
    const focus = document.activeElement;
    const lost = !focus || focus === document.body || !focus.isConnected;
    if (openItems.length === 0 && lost) {
      afterBulk.current = 0;
      const to = pageRef.current?.querySelector<HTMLElement>(":scope > [aria-live] > .notice") ??
        pageRef.current?.querySelector<HTMLElement>("h1");
      to?.focus();
    } else if (!list.loading && afterBulk.current === 2) {
      afterBulk.current = 0;
    }
  });

  useEffect(() => {
    if (focusAfter === null) return;
    if (focusAfter.next) focusNear(listRef.current, focusAfter.id, "li.dup");
    else focusCard(listRef.current, focusAfter.id);
    setFocusAfter(null);
  }, [focusAfter]);

  /** Say `text` in the card of `d` (null: say nothing there any more). */
  const noteOn = (d: Duplicate, note: Message | null, undo?: Duplicate) => {
    const index = Math.max(0, shown.findIndex((x) => x.id === d.id));
    setNotes((s) => {
      const byId = { ...notesOf(s, listKey) };
      if (note) byId[d.id] = { note, index: byId[d.id]?.index ?? index, dup: d, undo };
      else delete byId[d.id];
      return { key: listKey, byId };
    });
  };
  /** An action on `d` starts: the card's earlier note goes (a card that left the list
   * keeps it: it is all that is left of the card). */
  const starting = (d: Duplicate) => {
    setBusy(d.id);
    if (items.some((x) => x.id === d.id)) noteOn(d, null);
  };
  /** An action on `d` is done: `leaves` hides it from this list (under "Any" it stays,
   * with its new status and its own Undo); a group that comes back (undone under "Open")
   * shows again. `undo`: the group as decided, for an Undo in the note of one that left. */
  const finish = (d: Duplicate, text: string, leaves: boolean, undo?: Duplicate) => {
    const hide = leaves && status !== "any";
    if (hide) {
      decide([d.id]);
    } else if (done.has(d.id)) {
      decide([], [d.id]);
    }
    setFocusAfter({ id: d.id, next: hide });
    noteOn(d, { text }, hide ? undo : undefined);
    setPending(null);
    list.reload();
  };
  /** `undo`: the group as decided, when the failure left the decision recorded */
  const fail = (d: Duplicate, e: unknown, undo?: Duplicate) => {
    const f = actionFailure(e);
    noteOn(d, { text: f.text, error: true }, undo);
    // Gone or changed (a scan ran, another reviewer decided): show what the server holds
    if (f.reload) list.reload();
  };

  const previewTrash = async (d: Duplicate) => {
    const request: ResolveRequest = { id: d.id, keep: [keepOf(d)], action: "trash" };
    opened(d.id);
    starting(d);
    try {
      const plan = await api.resolve(request, true);
      setPending({ kind: "one", dup: d, plan, request });
    } catch (e) {
      fail(d, e);
    } finally {
      setBusy(null);
    }
  };

  const dismiss = async (d: Duplicate) => {
    starting(d);
    try {
      await api.resolve({ id: d.id, keep: [], action: "not_duplicate" }, false);
      finish(d, dismissNotice(d.type, displayName(d.members[0]?.path ?? "")),
             true, { ...d, status: "dismissed" });
    } catch (e) {
      fail(d, e);
    } finally {
      setBusy(null);
    }
  };

  const previewUndo = async (d: Duplicate) => {
    opened(d.id);
    starting(d);
    try {
      const plan = await api.undoResolution(d.id, true);
      setPending({ kind: "undo", dup: d, plan });
    } catch (e) {
      fail(d, e);
    } finally {
      setBusy(null);
    }
  };

  const previewBulk = async () => {
    const requests = openItems.map((d) => ({ id: d.id, keep: [keepOf(d)], action: "trash" as const }));
    if (!requests.length) return;
    opened(null);
    setBusy("bulk");
    setMessage(null);
    try {
      const result = await api.resolveBulk(requests, true);
      setPending({ kind: "bulk", result, requests });
    } catch (e) {
      setMessage({ text: actionFailure(e).text, error: true });
    } finally {
      setBusy(null);
    }
  };

  const confirm = async () => {
    if (!pending) return;
    setBusy("confirm");
    try {
      if (pending.kind === "undo") {
        const r = await api.undoResolution(pending.dup.id, false);
        // Open again: it leaves a list of decided groups (and comes back to the open
        // list); a group a new copy had reopened stays where it was.
        const reopened = (pending.dup.status ?? "open") === "open";
        finish(pending.dup, undoNotice(displayName(pending.dup.members[0]?.path ?? pending.dup.id), r),
               !reopened && status !== "open");
      } else if (pending.kind === "one") {
        // Exactly what the dry run showed, or nothing (409 if a scan changed the group).
        const expectTrash = pending.plan.trash.map((t) => t.path);
        const plan = await api.resolve({ ...pending.request, expectTrash }, false);
        const t = planTotals([plan], [pending.dup]);
        finish(pending.dup,
               t.trashFiles === 0
                 ? "Recorded the decision: the other copies were already in Immich's trash."
                 : `Moved ${plural(t.trashFiles, "file")} to Immich's trash ` +
                   `(${formatBytes(t.trashBytes)}).`,
               true, { ...pending.dup, status: "resolved" });
      } else {
        const r = await whileRunning(() => api.resolveBulk(
          confirmedRequests(pending.requests, pending.result.results), false));
        const t = planTotals(r.results, items);
        const ok = r.results.filter((x) => x.status === 200).map((x) => x.id);
        if (status !== "any") decide(ok);
        setMessage({
          text: `Resolved ${r.succeeded} ${r.succeeded === 1 ? "group" : "groups"}: ` +
            `${t.trashFiles} files moved to Immich's trash (${formatBytes(t.trashBytes)}).` +
            (r.failed ? ` ${r.failed} failed: ${t.refused.map((x) => x.message).join("; ")}` : ""),
        });
        setPending(null);
        afterBulk.current = 1;
        list.reload();
      }
    } catch (e) {
      const on = pending.kind === "bulk" ? null : pending.dup;
      setPending(null);
      // Immich failed or did not answer (502/504) after the decision was recorded: it
      // stands (what went stays in Immich's trash), and the note offers its Undo
      const recorded = pending.kind === "one" && e instanceof ApiError &&
        (e.status === 502 || e.status === 504);
      if (on) fail(on, e, recorded ? { ...on, status: "resolved" } : undefined);
      else setMessage({ text: actionFailure(e).text, error: true });
      // A half-done resolution (decision recorded, Immich silent) must show as decided,
      // with its Undo: the list says what the server now holds.
      list.reload();
    } finally {
      setBusy(null);
    }
  };

  return (
    <div className="duplicates" ref={pageRef}>
      <h1 tabIndex={-1}>Duplicates</h1>
      <form className="filters" aria-label="Filter duplicates"
            onSubmit={folderForm.submit}>
        <label>
          Kind
          <select value={type} onChange={(e) => nav({ type: e.target.value })}>
            <option value="">All</option>
            <option value="exact">Exact copies</option>
            <option value="perceptual">Look-alikes (perceptual)</option>
          </select>
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => nav({ status: e.target.value })}>
            <option value="open">Open</option>
            <option value="resolved">Resolved</option>
            <option value="dismissed">Not duplicates</option>
            <option value="any">Any</option>
          </select>
        </label>
        <label>
          Per page
          <select value={size} onChange={(e) => resize(Number(e.target.value))}>
            {DUPLICATE_PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
        <FolderField form={folderForm} folder={folder}
                     onClear={() => nav({ folder: "" })} helpId="duplicates-folder-help"
                     help="A folder of the library, as a full path: only the groups with a copy in it or below are listed." />
        {list.data && (
          <span className="muted" role="status">
            {formatCount(list.data.total)} {list.data.total === 1 ? "group" : "groups"}
          </span>
        )}
        {openItems.length > 0 && (
          <button type="button" className="bulk" onClick={previewBulk}
                  disabled={localMode || busy !== null || list.loading}
                  title={localMode ? "Moving to trash needs Immich" : undefined}>
            Accept all suggestions on this page
          </button>
        )}
      </form>
      {localMode && (
        <p className="notice">
          Local mode: no Immich is configured, so Twinlens cannot move files to a trash. You can
          mark look-alikes as “not duplicates”; Twinlens never deletes files itself.
        </p>
      )}
      <Notices message={message} list={list} />
      <ol className="dup-list" ref={listRef}>
        {shown.map(({ item, id }) => {
          const n = cardNotes[id];
          const d = item ?? n.dup;
          return (
            <DuplicateCard key={id} dup={d} gone={item === null} localMode={localMode}
                           keep={keepOf(d)}
                           onPick={(p) => setPicks((s) => ({ ...s, [d.id]: p }))}
                           busy={busy !== null || list.loading} working={busy === d.id}
                           onTrash={() => previewTrash(d)} onDismiss={() => dismiss(d)}
                           onUndo={() => previewUndo(d)}
                           note={n?.note ?? null}
                           onNoteUndo={n?.undo ? () => previewUndo(n.undo!) : undefined} />
          );
        })}
      </ol>
      {list.data && items.length === 0 && !list.loading && (
        <p className="empty">
          {folder ? <>No duplicate groups with a copy in <span className="path">{displayPath(folder)}</span></>
                  : "No duplicate groups here"}
          {status === "open" ? " — nothing to review" : ""}.
        </p>
      )}
      {list.data && (
        <Pager page={page} size={list.data.size || size} total={list.data.total}
               onPage={(p) => nav({ page: pageParam(p) })} label="Duplicate pages" />
      )}
      <ConfirmDialog pending={pending?.kind === "undo" ? null : pending} items={items} folder={folder}
                     busy={busy === "confirm"} onCancel={() => setPending(null)} onConfirm={confirm}
                     returnFocus={returnFocus} />
      <UndoDialog pending={pending?.kind === "undo" ? pending : null} busy={busy === "confirm"}
                  onCancel={() => setPending(null)} onConfirm={confirm} returnFocus={returnFocus} />
    </div>
  );
}

interface CardProps {
  dup: Duplicate;
  /** Left the list (decided, or gone): only its name and the note are shown. */
  gone: boolean;
  localMode: boolean;
  keep: string;
  onPick: (path: string) => void;
  busy: boolean;
  working: boolean;
  onTrash: () => void;
  onDismiss: () => void;
  onUndo: () => void;
  note: Message | null;
  onNoteUndo?: () => void;
}

function DuplicateCard({
  dup, gone, localMode, keep, onPick, busy, working, onTrash, onDismiss, onUndo, note, onNoteUndo,
}: CardProps) {
  const open = (dup.status ?? "open") === "open";
  // Only a trash decision left something to bring back; "not duplicates" moved nothing
  const earlier = dup.previous_resolution?.action === "trash" ? dup.previous_resolution : null;
  const titleId = `dup-${dup.id}`;
  const others = dup.members.filter((m) => m.path !== keep);
  const reclaim = others.reduce((n, m) => n + (m.size ?? 0), 0);
  const name = displayName(dup.members[0]?.path ?? dup.id);
  // The same <li> and note whether the card is whole or gone: the live region in it stays
  // in place (what appears in it is announced), and so does the focus
  return (
    <li className={gone ? "dup-gone" : "dup"} aria-labelledby={titleId} data-id={dup.id}
        data-type={dup.type} tabIndex={-1}>
      {gone ? (
        <p className="dup-gone-head" id={titleId}>
          <span className={`tag tag-${dup.type}`}>{dup.type === "exact" ? "Exact copies" : "Look-alikes"}</span>
          {" "}{name}
        </p>
      ) : (
        <>
          <div className="dup-head">
            <h2 id={titleId}>
              <span className={`tag tag-${dup.type}`}>{dup.type === "exact" ? "Exact copies" : "Look-alikes"}</span>
              <span className="name">{name}</span>
              <span className="muted"> · {dup.members.length} files</span>
              {dup.type !== "exact" && dup.similarity != null && (
                <span className="muted"> · {formatSimilarity(dup.similarity)} similar</span>
              )}
            </h2>
            {!open && <span className="badge">{dup.status === "dismissed" ? "not duplicates" : dup.status}</span>}
          </div>
          <fieldset className="members" disabled={!open || busy}>
            <legend className="sr-only">{open ? "Which copy to keep" : "What the decision did with each copy"}</legend>
            {dup.members.map((m, i) => (
              <MemberCard key={m.path} m={m} groupId={dup.id} index={i} localMode={localMode}
                          mark={memberMark(dup, keep, m.path)} outcome={open ? null : memberOutcome(dup, m) ?? ""}
                          suggested={open && m.path === dup.keep}
                          reason={keepReasonLabel(dup.keep_reason)} showSimilarity={dup.type !== "exact"}
                          onPick={() => onPick(m.path)} />
            ))}
          </fieldset>
          {open && earlier && (
            <p className="notice">
              A new copy joined this group after it was resolved
              {earlier.created_at ? ` on ${earlier.created_at.slice(0, 10)}` : ""}.
              The copies that decision moved to Immich's trash are still there.
            </p>
          )}
          {open && (
            <div className="dup-actions">
              <button type="button" className="danger" onClick={onTrash}
                      disabled={busy || localMode || others.length === 0}
                      title={localMode ? "Moving to trash needs Immich" : undefined}>
                {working ? "Working…" : `Move others to Immich trash (${formatBytes(reclaim)})`}
              </button>
              <button type="button" onClick={onDismiss} disabled={busy}>
                Not duplicates
              </button>
              {earlier && (
                <button type="button" onClick={onUndo} disabled={busy || localMode}
                        title="Bring back what the earlier decision moved to Immich's trash">
                  {working ? "Working…" : "Undo earlier decision"}
                </button>
              )}
            </div>
          )}
          {!open && (
            <div className="dup-actions">
              <button type="button" onClick={onUndo} disabled={busy}
                      title={dup.status === "resolved" ? "Reopen the group; files it moved to Immich's trash come back" : "Reopen the group"}>
                {working ? "Working…" : "Undo decision"}
              </button>
            </div>
          )}
        </>
      )}
      <CardNote note={note}>
        {onNoteUndo && (
          <>
            {" "}
            <button type="button" className="note-action" onClick={onNoteUndo} disabled={busy}
                    title="Reopen the group; files the decision moved to Immich's trash come back">
              {working ? "Working…" : "Undo"}
            </button>
          </>
        )}
      </CardNote>
    </li>
  );
}

interface MemberProps {
  m: DupMember;
  groupId: string;
  index: number;
  localMode: boolean;
  /** The copy kept, one that goes, or neither ("not duplicates"). */
  mark: "kept" | "goes" | "";
  /** A decided group: what its decision did with this copy (no pick offered); null while
   * the group is open. */
  outcome: string | null;
  suggested: boolean;
  reason: string;
  showSimilarity: boolean;
  onPick: () => void;
}

function MemberCard({ m, groupId, index, localMode, mark, outcome, suggested, reason, showSimilarity, onPick }: MemberProps) {
  const name = displayName(m.path);
  const kept = mark === "kept";
  const id = `keep-${groupId}-${index}`;
  const cam = camera(m);
  return (
    <div className={`member${mark ? ` ${mark}` : ""}${suggested ? " suggested" : ""}`}>
      {outcome === null ? (
        <label htmlFor={id} className="member-pick">
          <Thumb member={m} localMode={localMode} />
          <span className="pick">
            <input type="radio" id={id} name={`keep-${groupId}`} checked={kept} onChange={onPick} />
            {kept ? "Keep" : "Keep this one"}
          </span>
        </label>
      ) : (
        <div className="member-pick decided">
          <Thumb member={m} localMode={localMode} />
          {outcome && <span className="pick outcome">{outcome}</span>}
        </div>
      )}
      {suggested && (
        <p className="suggestion">
          <strong>Suggested keeper</strong>{reason && <> — {reason}</>}
        </p>
      )}
      <p className="filename" title={displayPath(m.path)}>{name}</p>
      {m.missing && <p className="warn">No longer on disk</p>}
      <p className="dir" title={displayPath(m.path)}>{displayPath(dirname(m.path))}</p>
      <dl className="facts">
        <dt>Size</dt><dd>{formatBytes(m.size)}</dd>
        {m.width && m.height ? <><dt>Resolution</dt><dd>{m.width} × {m.height}</dd></> : null}
        {m.taken_at ? <><dt>Taken</dt><dd>{formatTakenAt(m.taken_at)}</dd></> : null}
        {cam ? <><dt>Camera</dt><dd>{cam}</dd></> : null}
        {m.format ? <><dt>Format</dt><dd>{m.format.toUpperCase()}</dd></> : null}
        {showSimilarity && m.similarity != null ? <><dt>Similarity</dt><dd>{formatSimilarity(m.similarity)}</dd></> : null}
        {!localMode && <><dt>In Immich</dt><dd>{inImmich(m)}</dd></>}
      </dl>
    </div>
  );
}

function inImmich(m: DupMember): string {
  if (m.assetId) return "yes";
  return m.trashedAssetId ? "in Immich's trash" : "no";
}

interface ConfirmProps {
  pending: Exclude<Pending, { kind: "undo" }> | null;
  items: Duplicate[];
  /** The folder the list is filtered to ("" the whole library) */
  folder: string;
  busy: boolean;
  onCancel: () => void;
  onConfirm: () => void;
  returnFocus: () => HTMLElement | null | undefined;
}

function ConfirmDialog({ pending, items, folder, busy, onCancel, onConfirm, returnFocus }: ConfirmProps) {
  const plans = pending ? (pending.kind === "one" ? [pending.plan] : pending.result.results) : [];
  const going = plans.filter((p) => p.status === undefined || p.status === 200);
  // A list of one folder's groups (a backup to clear, say): the groups whose copy kept is
  // the one in that folder, said before they are decided
  const keptInFolder = folder
    ? going.filter((p) => p.keep.some((k) => pathInFolder(k.path, folder))).length : 0;
  const dups = pending?.kind === "one" ? [pending.dup] : items;
  const t = planTotals(plans, dups);
  const go = confirmButton(t);
  const size = (groupId: string, path: string) =>
    dups.find((d) => d.id === groupId)?.members.find((m) => m.path === path)?.size;
  return (
    <Dialog open={pending !== null} onClose={onCancel} busy={busy} returnFocus={returnFocus}
            title={pending?.kind === "bulk" ? "Accept all suggestions on this page?"
                   : t.trashFiles === 0 && go.enabled ? "Record this decision?" : "Move to Immich trash?"}
            actions={
              <>
                <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
                <button type="button" className="danger" onClick={onConfirm}
                        disabled={busy || !go.enabled}>
                  {busy ? "Working…" : go.label}
                </button>
              </>
            }>
      <p className="summary">
        Dry run: <strong>{t.trashFiles}</strong> {t.trashFiles === 1 ? "file" : "files"} would go to
        Immich's trash, reclaiming <strong>{formatBytes(t.trashBytes)}</strong>
        {pending?.kind === "bulk" && <> across {t.groups} {t.groups === 1 ? "group" : "groups"}</>}. {t.keptFiles} kept.
        Immich's trash is recoverable; Twinlens never deletes files itself.
        {pending?.kind === "bulk" && <> Groups where you picked another copy keep your pick.</>}
      </p>
      {t.inImmichTrash > 0 && (
        <p className="notice">
          {plural(t.inImmichTrash, "copy is", "copies are")} already in Immich's trash: confirming
          records the decision, and {t.inImmichTrash === 1 ? "it goes" : "they go"} for good when
          Immich's trash is emptied (restore {t.inImmichTrash === 1 ? "it" : "them"} there to keep{" "}
          {t.inImmichTrash === 1 ? "it" : "them"}).
        </p>
      )}
      {t.notInImmich > 0 && (
        <p className="notice">
          {t.notInImmich} {t.notInImmich === 1 ? "copy is" : "copies are"} not in Immich and will be
          left on disk untouched.
        </p>
      )}
      {pending?.kind === "bulk" && keptInFolder > 0 && (
        <p className="notice kept-in-folder">
          In {plural(keptInFolder, "group")} the copy kept is the one in{" "}
          <span className="path">{displayPath(folder)}</span>: to keep another copy instead, pick
          it in the group's card first.
        </p>
      )}
      {t.refused.length > 0 && (
        <p className="notice error">
          {t.refused.length} {t.refused.length === 1 ? "group" : "groups"} cannot be resolved:{" "}
          {displayText(t.refused.map((r) => r.message).join("; "))}
        </p>
      )}
      <ul className="plan">
        {going.map((p) => (
          <li key={p.id}>
            {p.keep.map((k) => (
              <div key={k.path} className="plan-keep"><span className="tag">keep</span> {displayPath(k.path)}</div>
            ))}
            {p.trash.map((x) => (
              <div key={x.path} className="plan-trash">
                <span className="tag tag-trash">trash</span> {displayPath(x.path)}
                <span className="muted"> ({formatBytes(size(p.id, x.path))})</span>
              </div>
            ))}
            {p.notInImmich.map((x) => (
              <div key={x} className="plan-skip"><span className="tag">left alone</span> {displayPath(x)}</div>
            ))}
            {(p.inImmichTrash ?? []).map((x) => (
              <div key={x} className="plan-skip">
                <span className="tag">already in Immich's trash</span> {displayPath(x)}
              </div>
            ))}
          </li>
        ))}
      </ul>
    </Dialog>
  );
}

interface UndoProps {
  pending: Extract<Pending, { kind: "undo" }> | null;
  busy: boolean;
  onCancel: () => void;
  onConfirm: () => void;
  returnFocus: () => HTMLElement | null | undefined;
}

function UndoDialog({ pending, busy, onCancel, onConfirm, returnFocus }: UndoProps) {
  const plan = pending?.plan;
  const back = plan?.restore ?? [];
  const stuck = plan?.notInImmich ?? [];
  return (
    <Dialog open={pending !== null} onClose={onCancel} busy={busy} title="Undo this decision?"
            returnFocus={returnFocus}
            actions={
              <>
                <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
                <button type="button" className="primary" onClick={onConfirm} disabled={busy}>
                  {busy ? "Working…" : "Undo decision"}
                </button>
              </>
            }>
      {plan && (
        <>
          <p className="summary">
            Dry run:{" "}
            {plan.action === "trash" ? "the decision moved copies to Immich's trash. " :
              plan.action === "not_duplicate" ? "the decision was “not duplicates”. " : ""}
            {undoSummary(plan)}
          </p>
          {stuck.length > 0 && (
            <p className="notice">
              {plural(stuck.length, "file", "files")} cannot come back: Immich does not know{" "}
              {stuck.length === 1 ? "it" : "them"} (any more). A copy Immich never knew was left
              untouched on disk when you decided; one whose trash was emptied is gone from Immich.
            </p>
          )}
          {(back.length > 0 || stuck.length > 0) && (
            <ul className="plan">
              <li>
                {back.map((x) => (
                  <div key={x.path} className="plan-keep">
                    <span className="tag">restore</span> {displayPath(x.path)}
                  </div>
                ))}
                {stuck.map((x) => (
                  <div key={x} className="plan-skip">
                    <span className="tag tag-trash">cannot restore</span> {displayPath(x)}
                  </div>
                ))}
              </li>
            </ul>
          )}
        </>
      )}
    </Dialog>
  );
}
