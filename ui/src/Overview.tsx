import { useCallback, useEffect, useRef, useState } from "react";
import { api, type Job, type Stats } from "./api";
import { FolderField, useFolderForm } from "./FolderField";
import { type Go, hashQuery, type Params, useLoad, usePoll } from "./hooks";
import {
  demoNote, displayPath, displayText, duplicateKindRows, emptyFolderNote, failedFilesLabel, jobScope, formatBytes, formatCount,
  formatDuration, humanize, isActive, OWN_LIBRARY_COMMAND, parseUtc, phaseLabel, problemsLinkText, progressFraction, scanButton,
  scanOverview, scanRefusal, scopeProblemsText, staleJobsNotice, statBreakdowns, uniqueJobs, unreadScanText,
} from "./logic";
import { LoadError } from "./Notices";

const KIND_LABEL: Record<string, string> = {
  scan: "Catalog scan",
  group: "Grouping",
  dedup: "Duplicate detection",
};

interface Props {
  localMode: boolean;
  params: Params;
  go: Go;
}

/** A folder's own figures (only totals: one item of each list asked for). */
interface FolderFigures {
  open: number;
  total: number;
  groups: number;
}

/** The open duplicate groups of each kind (only totals); a count that fails is left out. */
function openCounts(types: string[]): Promise<Record<string, number>> {
  return Promise.all(types.map((type) =>
    api.duplicates({ type, status: "open", size: 1 }).then((p) => [type, p.total] as const, () => null),
  )).then((got) => Object.fromEntries(got.filter((x) => x !== null)));
}

/** How many files under each of `paths` ("": the whole library) have a problem (only
 * totals); a count that fails is left out. */
function problemCounts(paths: string[]): Promise<Record<string, number>> {
  return Promise.all(paths.map((path) =>
    api.fileErrors({ path_prefix: path || undefined, size: 1 }).then((p) => [path, p.total] as const, () => null),
  )).then((got) => Object.fromEntries(got.filter((x) => x !== null)));
}

/** The demo library named as such, with the command that shows one's own photos. */
function DemoNote({ text }: { text: string }) {
  const [before, after] = text.split(OWN_LIBRARY_COMMAND);
  return (
    <p className="notice demo-library" role="note">
      {displayText(before)}
      {after !== undefined && <><code>{OWN_LIBRARY_COMMAND}</code>{displayText(after)}</>}
    </p>
  );
}

function folderFigures(folder: string): Promise<FolderFigures> {
  const path_prefix = folder;
  return Promise.all([
    api.duplicates({ status: "open", path_prefix, size: 1 }),
    api.duplicates({ path_prefix, size: 1 }),
    api.groups({ path_prefix, size: 1 }),
  ]).then(([open, all, groups]) => ({ open: open.total, total: all.total, groups: groups.total }));
}

export function Overview({ params, go }: Props) {
  // A folder picked (#/overview?folder=): its figures, and Review, Browse and the Files
  // with problems link open that folder's lists, as their own folder filters do
  const folder = params.get("folder") ?? "";
  const folderForm = useFolderForm(folder, (f) => go("overview", { folder: f }));
  const [statsKey, setStatsKey] = useState(0);
  const stats = useLoad(api.stats, String(statsKey));
  const figuresKey = `${statsKey}\u0000${folder}`;
  const figures = useLoad(() => (folder ? folderFigures(folder) : Promise.resolve(null)), figuresKey);
  // A count of this folder, of an earlier read (a scan ended since) until the new one comes
  const ofFolder = (of: string | null) => of !== null && of.endsWith(`\u0000${folder}`);
  // How many of the library's (or the folder's) files have a problem (only the total)
  const problems = useLoad(
    () => api.fileErrors({ path_prefix: folder || undefined, size: 1 }), figuresKey,
  );
  // The stats count duplicate groups by kind over every status: the open ones of each
  // kind (only totals), so that the kinds' table counts what it says it reclaims from
  const types = Object.keys((stats.data?.duplicates?.by_type ?? {}) as Record<string, unknown>);
  const openKey = `${statsKey}\u0000${types.join(",")}`;
  const openByType = useLoad(() => openCounts(types), openKey);
  // The library roots with their files (and which is the demo), read again after a scan
  const roots = useLoad(() => api.roots().then((r) => r.items ?? []), String(statsKey));
  const [jobs, setJobs] = useState<Job[]>([]);
  const [details, setDetails] = useState<Record<string, Job>>({});
  // Why the list of jobs could not be read (cleared by the next list read), and why "Scan
  // now" or "Cancel" failed (until the next of those: a poll must not take it away)
  const [jobsError, setJobsError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const [full, setFull] = useState(false);
  const wasActive = useRef(false);
  // Polls, "Scan now" and "Cancel" all refresh, and their answers can cross: only the
  // latest request's answer is applied (an older one would show a started scan as absent).
  const latest = useRef(0);

  const refresh = useCallback(async () => {
    const mine = ++latest.current;
    try {
      const list = uniqueJobs((await api.jobs()).items);
      // Details (with the files that failed) for running jobs and the last scans shown,
      // fetched together with the list: set apart, a scan listed as done was briefly
      // shown with its details from while it ran (no failed files yet).
      const { full, folder } = scanOverview(list);
      const want = list.filter((j) => isActive(j) || full.includes(j) || j === folder);
      const got = await Promise.all(
        want.map((j) =>
          api.job(j.service ?? "grouping", j.id).then(
            (full) => ({ job: full, fetched: true }),
            () => ({ job: j, fetched: false }),
          ),
        ),
      );
      if (mine !== latest.current) return;
      setJobs(list);
      setJobsError(null);
      setDetails((d) => {
        const next = { ...d };
        for (const { job, fetched } of got) {
          const before = next[job.id];
          // A failed fetch keeps the failed files already shown (the list has none).
          next[job.id] = {
            ...job,
            service: job.service ?? before?.service,
            ...(!fetched && before?.errors ? { errors: before.errors } : {}),
          };
        }
        return next;
      });
      const active = list.some(isActive);
      if (wasActive.current && !active) setStatsKey((k) => k + 1);
      wasActive.current = active;
    } catch (e) {
      if (mine === latest.current) setJobsError((e as Error).message);
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);
  const anyActive = jobs.some(isActive);
  // Every second while a job runs; otherwise every 10 s, so that a scan started by the
  // scheduler, the watcher or another tab shows up without a reload.
  usePoll(refresh, anyActive || starting ? 1000 : 10_000, true);

  const scan = async () => {
    setStarting(true);
    setActionError(null);
    try {
      await api.startScan(full ? { full: true } : {});
      wasActive.current = true;
      await refresh();
    } catch (e) {
      setActionError(scanRefusal((e as Error).message));
    } finally {
      setStarting(false);
    }
  };

  const [cancelling, setCancelling] = useState<string | null>(null);
  const cancel = async (j: Job) => {
    // A full scan of a big share can have run for hours: one stray click must not end it.
    const what = (KIND_LABEL[j.kind] ?? humanize(j.kind)).toLowerCase();
    if (!window.confirm(`Cancel this ${what}? What it has done so far is kept.`)) return;
    setCancelling(j.id);
    setActionError(null);
    try {
      await api.cancelJob(j.service ?? "grouping", j.id);
      await refresh();
    } catch (e) {
      setActionError((e as Error).message);
    } finally {
      setCancelling(null);
    }
  };

  const active = jobs.filter(isActive).map((j) => details[j.id] ?? j);
  // The last scan of the whole library (its unreadable files are the library's), a folder
  // scan since (the watcher's), and failures of any kind no later job made good
  const past = scanOverview(jobs);
  const lasts = past.full.map((j) => details[j.id] ?? j);
  const demo = demoNote(roots.data ?? []);
  const cataloged = (j: Job) => roots.data?.find((r) => r.path === (j.root ?? j.path))?.files ?? null;
  const emptyNote = emptyFolderNote(folder, ofFolder(figures.of) ? figures.data ?? null : null,
                                    ofFolder(problems.of) ? problems.data?.total ?? null : null);
  // Several library roots: each root's last scan, named by its root
  const severalRoots = folderForm.roots.length > 1 || lasts.length > 1;
  const lastFolder = past.folder ? details[past.folder.id] ?? past.folder : null;
  // How many files of each last scan's root (or folder) have a problem, said on a scan
  // that read none (its own count is then no count of the library's)
  const scopes = [...new Set([...lasts.map((j) => j.root ?? j.path ?? ""),
                              ...(lastFolder ? [lastFolder.path ?? ""] : [])])];
  const scopesKey = `${statsKey}\u0000${scopes.join("\u0000")}`;
  const scopeProblems = useLoad(() => problemCounts(scopes), scopesKey);
  const problemsOf = (path: string | null | undefined) =>
    scopeProblems.of === scopesKey ? scopeProblems.data?.[path ?? ""] ?? null : null;
  const runningScan = active.find((j) => j.kind === "scan");
  // The last read of the jobs failed: what is shown is the last known state, and a job
  // shown running may be over; nothing is offered on it until an answer comes
  const stale = jobsError !== null;
  const button = scanButton(Boolean(runningScan), starting, stale);

  return (
    <div className="overview">
      <h1 tabIndex={-1}>Overview</h1>
      {demo && <DemoNote text={demo} />}
      <section aria-labelledby="stats-h">
        <h2 id="stats-h">Library</h2>
        <form className="filters" onSubmit={folderForm.submit} aria-label="Figures of one folder">
          <FolderField form={folderForm} folder={folder} onClear={() => go("overview")}
                       helpId="overview-folder-help"
                       help="A folder of the library, as a full path: the figures, Review, Browse and Files with problems are of that folder and below." />
        </form>
        {folder && (
          <p className="folder-scope">
            Figures of <span className="path">{displayPath(folder)}</span> and the folders in it
          </p>
        )}
        <LoadError list={stats} />
        {folder && <LoadError list={figures} />}
        {stats.data ? (
          <StatsView stats={stats.data} go={go} folder={folder}
                     figures={ofFolder(figures.of) ? figures.data : null}
                     openByType={openByType.of === openKey ? openByType.data : null} />
        ) : !stats.error && (
          <p className="muted" role="status">Loading…</p>
        )}
        <ProblemsLink total={ofFolder(problems.of) ? problems.data?.total ?? null : null}
                      error={problems.error?.message ?? null} folder={folder} />
        {emptyNote && <p className="notice empty-folder" role="status">{displayText(emptyNote)}</p>}
      </section>

      <section aria-labelledby="scan-h">
        <h2 id="scan-h">Scan</h2>
        <div className="scanbar">
          <button type="button" className="primary" onClick={scan} disabled={button.disabled}>
            {button.label}
          </button>
          <label className="check">
            <input type="checkbox" checked={full} onChange={(e) => setFull(e.target.checked)} />
            Re-read every file (full rescan)
          </label>
        </div>
        {actionError && <p className="notice error action-error" role="alert">{displayText(actionError)}</p>}
        {jobsError && (
          <p className="notice error jobs-error" role="alert">
            {displayText(staleJobsNotice(jobsError, active.length))}
          </p>
        )}
        {active.map((j) => (
          <JobProgress key={j.id} job={j} onCancel={() => cancel(j)} busy={cancelling === j.id}
                       stale={stale} />
        ))}
        {lasts.map((j) => (
          <LastScan key={j.id} job={j} severalRoots={severalRoots} cataloged={cataloged(j)}
                    problems={problemsOf(j.root ?? j.path)} />
        ))}
        {lastFolder && <LastScan job={lastFolder} folder severalRoots={severalRoots}
                                 problems={problemsOf(lastFolder.path)} />}
        {past.failed.map((j) => <FailedJob key={j.id} job={j} severalRoots={severalRoots} />)}
        {!active.length && !lasts.length && !lastFolder && !jobsError && !actionError && (
          <p className="muted">No scan has run yet.</p>
        )}
      </section>
    </div>
  );
}

/** "N files with problems", a link to that page; a count that failed says so. */
function ProblemsLink({ total, error, folder }: {
  total: number | null; error: string | null; folder: string;
}) {
  if (total === null && !error) return null;
  const href = `#/problems${folder ? `?${hashQuery({ folder })}` : ""}`;
  return (
    <p className="problems-link">
      <a href={href}>{total === null ? "Files with problems" : problemsLinkText(total)}</a>
      {total === null
        ? <span className="muted"> (could not be counted: {displayText(error ?? "")})</span>
        : total > 0 && <span className="muted"> — files the scans could not read, or not what
            their name says; they stay listed until read without a problem</span>}
    </p>
  );
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The figures: the whole library's, or with `folder` that folder's (`figures`, null
 * while they load); what only the whole library has (bytes to reclaim, the breakdowns)
 * says so. Review and Browse open the lists of the folder shown. */
function StatsView({ stats, go, folder, figures, openByType }: {
  stats: Stats; go: Props["go"]; folder: string; figures: FolderFigures | null;
  openByType: Record<string, number> | null;
}) {
  const d = stats.duplicates ?? {};
  const byStatus = (d.by_status ?? {}) as Record<string, unknown>;
  const open = folder ? figures?.open ?? null : num(d.open) ?? num(byStatus.open);
  const total = folder ? figures?.total ?? null : num(d.groups) ?? num(d.total);
  const reclaim = num(d.reclaimable_bytes);
  const groups = folder ? figures?.groups ?? null : num(stats.groups?.total);
  return (
    <>
      <div className="cards">
        <div className="card">
          <div className="figure">{formatCount(open)}</div>
          <div className="label">open duplicate {open === 1 ? "group" : "groups"}{folder && " with a copy in this folder"}</div>
          {total !== null && <div className="sub">{formatCount(total)} in all</div>}
          <button type="button" className="link" onClick={() => go("duplicates", { folder })}>Review</button>
        </div>
        <div className="card">
          <div className="figure">{formatBytes(reclaim)}</div>
          <div className="label">reclaimable by removing duplicates{folder && " (whole library)"}</div>
        </div>
        <div className="card">
          <div className="figure">{formatCount(groups)}</div>
          <div className="label">
            file {groups === 1 ? "group" : "groups"} (RAW+JPEG, Live Photos, edits, sidecars){folder && " with a file in this folder"}
          </div>
          <button type="button" className="link" onClick={() => go("groups", { folder })}>Browse</button>
        </div>
      </div>
      <DuplicateBreakdown stats={d} scope={folder ? " (whole library)" : ""} openByType={openByType} />
    </>
  );
}

const TYPE_LABEL: Record<string, string> = { exact: "Exact copies", perceptual: "Look-alikes" };
const STATUS_LABEL: Record<string, string> = {
  open: "open", resolved: "resolved", dismissed: "not duplicates",
};
const statusRank = (s: string) => {
  const i = Object.keys(STATUS_LABEL).indexOf(s);
  return i < 0 ? 99 : i;
};
const KNOWN = new Set(["by_type", "by_status", "reclaimable"]);

/** The dedup stats as one table (kind × open groups, decided ones, reclaimable by the open
 * ones: `openByType`, null while unknown) and a status line; any other numeric breakdown
 * the API adds later is shown as a small table of its own. */
export function DuplicateBreakdown({ stats, scope, openByType }: {
  stats: Record<string, unknown>; scope: string; openByType: Record<string, number> | null;
}) {
  const byStatus = (stats.by_status ?? {}) as Record<string, number>;
  const rows = duplicateKindRows(stats, openByType);
  const extra = statBreakdowns(stats).filter((b) => !KNOWN.has(b.name));
  return (
    <div className="breakdowns">
      {rows.length > 0 && (
        <table className="breakdown">
          <caption>Duplicate groups by kind{scope}</caption>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col" title="Groups still to decide">Open</th>
              <th scope="col" title="Groups resolved or marked not duplicates">Decided</th>
              <th scope="col" title="What removing the open groups' extra copies would free">Reclaimable (open)</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.type}>
                <th scope="row">{TYPE_LABEL[r.type] ?? humanize(r.type)}</th>
                <td>{formatCount(r.open)}</td>
                <td>{formatCount(r.decided)}</td>
                <td>{formatBytes(r.reclaimable)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {Object.keys(byStatus).length > 0 && (
        <table className="breakdown">
          <caption>By status{scope}</caption>
          <tbody>
            {Object.entries(byStatus).sort(([a], [b]) => statusRank(a) - statusRank(b)).map(([k, v]) => (
              <tr key={k}><th scope="row">{STATUS_LABEL[k] ?? humanize(k)}</th><td>{formatCount(v)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {extra.map((b) => (
        <table key={b.name} className="breakdown">
          <caption>{humanize(b.name)}{scope}</caption>
          <tbody>
            {b.rows.map(([k, v]) => (
              <tr key={k}>
                <th scope="row">{humanize(k)}</th>
                <td>{k.includes("bytes") ? formatBytes(v) : formatCount(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ))}
    </div>
  );
}

/** A running job's progress. `stale`: the jobs could not be read since; it is shown as
 * last seen, without Cancel. */
function JobProgress({ job, onCancel, busy, stale }: {
  job: Job; onCancel: () => void; busy: boolean; stale: boolean;
}) {
  const frac = progressFraction(job);
  const phase = phaseLabel(job.phase);
  const label = `${KIND_LABEL[job.kind] ?? humanize(job.kind)}${phase ? ` — ${phase}` : ""}`;
  const state = stale ? `${job.state} when last seen` : job.state;
  const id = `job-${job.id}`;
  return (
    <div className={stale ? "job stale" : "job"}>
      {/* Said when it changes: what runs, its state and errors (not the figures, nor the
          failed files, which change every second) */}
      <p className="sr-only job-status" aria-live="polite">
        {`${label}: ${state}, ${formatCount(job.failed)} ${job.failed === 1 ? "error" : "errors"}`}
      </p>
      <div className="job-head">
        <span id={id}>{label}</span>
        <span className="muted">{state}</span>
        <button type="button" className="link" onClick={onCancel} disabled={busy || stale}
                aria-label={`Cancel ${label}`}>{busy ? "Cancelling…" : "Cancel"}</button>
      </div>
      <progress aria-labelledby={id} max={1} value={frac ?? undefined} />
      <div className="job-figures">
        <span>{formatCount(job.done)} / {job.total ? formatCount(job.total) : "?"} files</span>
        {job.rate ? <span>{job.rate.toFixed(1)} files/s</span> : null}
        {job.bytes_per_second ? <span>{formatBytes(job.bytes_per_second)}/s</span> : null}
        <span>ETA {formatDuration(job.eta_seconds)}</span>
        <span className={job.failed ? "warn" : undefined}>
          {formatCount(job.failed)} {job.failed === 1 ? "error" : "errors"}
        </span>
      </div>
      {job.errors && job.errors.length > 0 && <ErrorList errors={job.errors} failed={job.failed} />}
    </div>
  );
}

function finishedAt(job: Job): Date | null {
  return parseUtc(job.finished_at ?? job.created_at);
}

/** A finished scan: the whole library's last one (`.last`, with the files the library has
 * with a problem), or a folder scan since (which read only that folder). One that read
 * no file (a restart over a library cataloged before) says so in words, with how many
 * files its root or folder holds (`cataloged`) and how many of them have a problem
 * (`problems`, whichever scan found them): its own zeros would read as an empty library
 * with no problem. */
export function LastScan({ job, folder = false, severalRoots = false, cataloged = null, problems = null }: {
  job: Job; folder?: boolean; severalRoots?: boolean; cataloged?: number | null; problems?: number | null;
}) {
  const root = job.root ?? job.path;
  const when = finishedAt(job);
  const unread = unreadScanText(job, cataloged);
  const problemsText = unread === null ? null : scopeProblemsText(problems);
  const scope = folder ? job.path ?? "" : severalRoots ? root ?? "" : "";
  const problemsHref = `#/problems${scope ? `?${hashQuery({ folder: scope })}` : ""}`;
  return (
    <div className={`job ${folder ? "last-folder" : "last"} state-${job.state}`} data-job-id={job.id}>
      <div className="job-head">
        <span>
          {folder ? "Last folder scan" : "Last scan"}
          {severalRoots && !folder && root && <> of <span className="path">{displayPath(root)}</span></>}{" "}
          <strong>{job.state}</strong>
          {when && <> at {when.toLocaleString()}</>}
        </span>
      </div>
      <p className="job-scope path">{jobScope(job, folder, severalRoots)}</p>
      <div className="job-figures">
        {unread === null
          ? <span>{formatCount(job.done)} / {formatCount(job.total)} files</span>
          : <span className="unread">{unread}</span>}
        {job.bytes_read !== undefined && (unread === null || job.bytes_read > 0) && (
          <span>{formatBytes(job.bytes_read)} read</span>
        )}
        {job.elapsed_seconds !== undefined && <span>in {formatDuration(job.elapsed_seconds)}</span>}
        {(unread === null || job.failed > 0) && (
          <span className={job.failed ? "warn" : undefined}>
            {formatCount(job.failed)} {job.failed === 1 ? "file" : "files"} could not be read
            {folder && " in this folder"}
          </span>
        )}
        {problemsText && (
          problems ? <a className="warn" href={problemsHref}>{problemsText}</a> : <span>{problemsText}</span>
        )}
      </div>
      {job.error && <p className="notice error">{displayText(job.error)}</p>}
      {job.errors && job.errors.length > 0 && <ErrorList errors={job.errors} failed={job.failed} />}
    </div>
  );
}

/** A grouping, dedup or scan job that failed, with why (until a later one of its kind
 * finishes). */
function FailedJob({ job, severalRoots }: { job: Job; severalRoots: boolean }) {
  const when = finishedAt(job);
  return (
    <div className="job failed-job state-failed" data-job-id={job.id}>
      <div className="job-head">
        <span>
          {KIND_LABEL[job.kind] ?? humanize(job.kind)} <strong>failed</strong>
          {when && <> at {when.toLocaleString()}</>}
        </span>
      </div>
      <p className="job-scope path">{jobScope(job, undefined, severalRoots)}</p>
      <p className="notice error">{job.error || "No reason was recorded."}</p>
    </div>
  );
}

/** A job's failed files: the first 1,000 the API lists (of `failed`, when more). */
function ErrorList({ errors, failed }: { errors: { path: string; error: string }[]; failed: number }) {
  const cut = failed > errors.length;
  // Open while short; once the user opened or closed it, as they left it (a list growing
  // past 10 while a job runs does not close under them).
  const [chosen, setChosen] = useState<boolean | null>(null);
  const open = chosen ?? errors.length <= 10;
  return (
    <details className="errors" open={open}
             onToggle={(e) => { if (e.currentTarget.open !== open) setChosen(e.currentTarget.open); }}>
      <summary>{failedFilesLabel(errors.length, failed)}</summary>
      {cut && (
        <p className="muted">
          The list stops at the first {formatCount(errors.length)};{" "}
          <a href="#/problems">Files with problems</a> pages through every file of the library
          that could not be read, and <code>twinlens scan --json</code> lists all of a scan's.
        </p>
      )}
      <table>
        <thead>
          <tr><th scope="col">File</th><th scope="col">Why</th></tr>
        </thead>
        <tbody>
          {errors.map((e, i) => (
            <tr key={`${e.path}-${i}`}>
              <td className="path">{displayPath(e.path)}</td>
              <td>{displayPath(e.error)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
