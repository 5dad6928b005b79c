import { api, type FileProblem } from "./api";
import { type Go, type Params, useEmptyPageStep, useLoad } from "./hooks";
import {
  dirname, displayPath, formatBytes, formatCount, humanize, pageFromUrl, pageParam, parseUtc,
  PROBLEMS_INTRO, problemRetryLabel,
} from "./logic";
import { FolderField, useFolderForm } from "./FolderField";
import { Notices } from "./Notices";
import { Pager } from "./Pager";

const PAGE_SIZE = 50;

interface Props {
  params: Params;
  go: Go;
}

/** The library's files the catalog read with an error or found mis-named, whichever scan
 * read them: unlike a scan's own list (the Overview's), they stay here until a scan reads
 * them without one. */
export function Problems({ params, go }: Props) {
  const folder = params.get("folder") ?? "";
  const page = pageFromUrl(params.get("page"));
  const listKey = `${folder}\u0000${page}`;
  const list = useLoad(
    () => api.fileErrors({ path_prefix: folder || undefined, page, size: PAGE_SIZE }),
    listKey,
  );
  // `replace`: a step the list makes by itself (see `Go`)
  const nav = (p: Record<string, string>, replace = false) =>
    go("problems", { folder, page: "", ...p }, { replace });
  useEmptyPageStep(list, listKey, page, PAGE_SIZE, (p) => nav({ page: pageParam(p) }, true));

  const folderForm = useFolderForm(folder, (f) => nav({ folder: f }));

  const data = list.of === listKey ? list.data : null;
  const items = data?.items ?? [];
  return (
    <div className="problems">
      <h1 tabIndex={-1}>Files with problems</h1>
      <p className="muted">{PROBLEMS_INTRO}</p>
      <form className="filters" onSubmit={folderForm.submit} aria-label="Filter files with problems">
        <FolderField form={folderForm} folder={folder}
                     onClear={() => nav({ folder: "" })} helpId="folder-help"
                     help="A folder of the library, as a full path: only the files in it and below are listed." />
        {data && (
          <span className="muted" role="status">
            {formatCount(data.total)} {data.total === 1 ? "file" : "files"}
          </span>
        )}
      </form>
      <Notices message={null} list={list} />
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="problem-list">
            <caption className="sr-only">
              Files with problems{folder ? ` in ${displayPath(folder)}` : ""}, page {page}
            </caption>
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Problem</th>
                <th scope="col">Next read</th>
                <th scope="col">Kind</th>
                <th scope="col">Size</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody>
              {items.map((f) => (
                <ProblemRow key={f.path} file={f} folder={folder}
                            onFolder={(dir) => nav({ folder: dir })} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && data.total === 0 && !list.loading && (
        <p className="empty">
          {folder
            ? <>Every file in <span className="path">{displayPath(folder)}</span> was read without a problem.</>
            : "Every file in the library was read without a problem."}
        </p>
      )}
      {data && (
        <Pager page={page} size={data.size || PAGE_SIZE} total={data.total}
               onPage={(p) => nav({ page: pageParam(p) })} label="Pages of files with problems" />
      )}
    </div>
  );
}

function ProblemRow({ file, folder, onFolder }: {
  file: FileProblem; folder: string; onFolder: (dir: string) => void;
}) {
  const dir = dirname(file.path);
  const since = parseUtc(file.since);
  return (
    <tr data-path={file.path}>
      <td className="file-cell">
        <span className="path">{displayPath(file.path)}</span>
        {dir && dir !== folder && (
          <button type="button" className="link folder-only" onClick={() => onFolder(dir)}
                  aria-label={`Only the files with problems in ${displayPath(dir)}`}>
            only this folder
          </button>
        )}
      </td>
      <td className="why" data-label="Problem">{displayPath(file.error)}</td>
      <td className={file.retried ? "retried" : undefined} data-label="Next read">
        {problemRetryLabel(file.retried, file.misnamed)}
      </td>
      <td data-label="Kind">{file.kind ? humanize(file.kind) : "–"}</td>
      <td className="num" data-label="Size">{formatBytes(file.size)}</td>
      <td data-label="Since">{since ? since.toLocaleString() : "–"}</td>
    </tr>
  );
}
