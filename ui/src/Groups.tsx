import { api, type FileGroup, type GroupMember } from "./api";
import { useLoad } from "./hooks";
import { basename, dirname, formatBytes, formatCount, formatTakenAt, groupTypeLabel } from "./logic";
import { Pager } from "./Pager";
import { Thumb } from "./Thumb";

const PAGE_SIZE = 30;
const TYPES = ["raw_jpeg", "live_photo", "edited", "sidecar", "manual"];

interface Props {
  localMode: boolean;
  params: URLSearchParams;
  go: (page: string, params?: Record<string, string>) => void;
}

export function Groups({ localMode, params, go }: Props) {
  const type = params.get("type") ?? "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const list = useLoad(() => api.groups({ type, page, size: PAGE_SIZE }), `${type}|${page}`);
  const nav = (p: Record<string, string>) => go("groups", { type, page: "", ...p });

  return (
    <div className="groups">
      <h1>Groups</h1>
      <p className="muted">
        Files that belong together: RAW+JPEG pairs, Live Photos (still + video), edited versions
        and sidecars. The primary is the file Immich shows.
      </p>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter groups">
        <label>
          Type
          <select value={type} onChange={(e) => nav({ type: e.target.value })}>
            <option value="">All</option>
            {TYPES.map((t) => <option key={t} value={t}>{groupTypeLabel(t)}</option>)}
          </select>
        </label>
        {list.data && (
          <span className="muted" role="status">
            {formatCount(list.data.total)} {list.data.total === 1 ? "group" : "groups"}
          </span>
        )}
      </form>
      {list.error && <p className="notice error" role="alert">{list.error.message}</p>}
      {list.loading && !list.data && <p className="muted" role="status">Loading…</p>}
      {list.data && list.data.items.length === 0 && <p className="empty">No groups here.</p>}
      <ol className="group-list">
        {(list.data?.items ?? []).map((g) => <GroupRow key={g.id} group={g} localMode={localMode} />)}
      </ol>
      {list.data && (
        <Pager page={page} size={list.data.size || PAGE_SIZE} total={list.data.total}
               onPage={(p) => nav({ page: String(p) })} label="Group pages" />
      )}
    </div>
  );
}

function isPrimary(g: FileGroup, m: GroupMember): boolean {
  return m.is_primary ?? m.path === g.primary;
}

function GroupRow({ group, localMode }: { group: FileGroup; localMode: boolean }) {
  const members = [...group.members].sort((a, b) => Number(isPrimary(group, b)) - Number(isPrimary(group, a)));
  const primary = members.find((m) => isPrimary(group, m)) ?? members[0];
  const titleId = `grp-${group.id}`;
  return (
    <li className="grp" aria-labelledby={titleId}>
      {primary && <Thumb member={primary} localMode={localMode} size={256} />}
      <div className="grp-body">
        <h2 id={titleId}>
          <span className={`tag tag-${group.type}`}>{groupTypeLabel(group.type)}</span>
          {primary ? basename(primary.path) : group.id}
        </h2>
        {primary && <p className="dir" title={primary.path}>{dirname(primary.path)}</p>}
        {primary?.taken_at && <p className="muted">Taken {formatTakenAt(primary.taken_at)}</p>}
        <table className="grp-members">
          <caption className="sr-only">Files in this group</caption>
          <thead>
            <tr><th scope="col">File</th><th scope="col">Role</th><th scope="col">Size</th></tr>
          </thead>
          <tbody>
            {members.map((m) => (
              <tr key={m.path} className={isPrimary(group, m) ? "primary" : undefined}>
                <td className="path" title={m.path}>{basename(m.path)}</td>
                <td>{isPrimary(group, m) ? "primary" : m.role ?? m.kind ?? "member"}{m.kind && isPrimary(group, m) ? ` (${m.kind})` : ""}</td>
                <td>{formatBytes(m.size)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </li>
  );
}
