import { useEffect, useRef, useState } from "react";
import { CardNote, type Message, Notices } from "./Notices";
import { api, ApiError, type FileGroup, type GroupMember } from "./api";
import { Dialog } from "./Dialog";
import { FolderField, useFolderForm } from "./FolderField";
import { focusCard, useEmptyPageStep, useFocusAfterStep, useLoad, type Go, type Params } from "./hooks";
import {
  actionFailure, canMerge, displayText, carryNotes, dirname, displayName, displayPath, formatBytes, formatCount, formatTakenAt,
  groupPrimary, groupTypeLabel, mergePlan, notesOf, pageFromUrl, pageParam, placeNotes, plural, type Regroup,
  regroupNotice, regroupPlan, regroupWithout, splitButtons, splitNotice, toggled,
  uncatalogedFile,
} from "./logic";
import { Pager } from "./Pager";
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

  const mergeCount = forMerge.length;
  const mergeIds = new Set(forMerge.map((g) => g.id));

  return (
    <div className="groups">
      <h1>Groups</h1>
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
      </form>
      {mergeCount > 0 && (
        <div className="toolbar" role="toolbar" aria-label="Merge groups">
          <span>
            {plural(mergeCount, "group")} selected for merge
            {mergeCount < 2 && <span className="muted"> — select another group to merge with</span>}
          </span>
          <button type="button" className="primary" disabled={!canMerge(mergeCount) || busy}
                  onClick={() => ask({ kind: "merge", groups: forMerge })}>
            Merge {plural(mergeCount, "group")}
          </button>
          <button type="button" onClick={() => setForMerge([])} disabled={busy}>
            Clear selection
          </button>
          {mergeError && (
            <p className="notice error" role="alert">{displayText(mergeError.text)}</p>
          )}
        </div>
      )}
      <Notices message={null} list={list} />
      <ol className="group-list" ref={listRef}>
        {shown.map(({ item, id }) => {
          const g = item ?? cardNotes[id].group;
          return (
            <GroupRow key={id} group={g} gone={item === null} localMode={localMode}
                      busy={busy || list.loading}
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
        <p className="empty">
          {folder ? <>No groups with a file in <span className="path">{displayPath(folder)}</span>.</>
                  : "No groups here."}
        </p>
      )}
      {list.data && (
        <Pager page={page} size={list.data.size || PAGE_SIZE} total={list.data.total}
               onPage={(p) => nav({ page: pageParam(p) })} label="Group pages" />
      )}
      <ConfirmDialog pending={pending} busy={busy} onCancel={() => setPending(null)}
                     onConfirm={confirm} />
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
}

function GroupRow({
  group, gone, note, localMode, busy, picked, onPick, forMerge, onMergePick, onSplit, onDissolve,
  regroup, onRegroup,
}: RowProps) {
  const members = [...group.members].sort((a, b) => Number(isPrimary(group, b)) - Number(isPrimary(group, a)));
  const primary = members.find((m) => isPrimary(group, m)) ?? members[0];
  const titleId = `grp-${group.id}`;
  const hintId = `grp-hint-${group.id}`;
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
