// The rules behind what the review pages say after an action, how they recover from a
// failed load, and what the Overview shows of past jobs.
import { describe, expect, it } from "vitest";
import { ApiError, type Job, type ResolvePlan, parseRetryAfter, unreachableMessage } from "./api";
import {
  actionFailure, confirmButton, dismissNotice, hiddenDecided, isFullScan, keepReasonLabel, memberMark, memberOutcome,
  placeNotes, planTotals,
  jobScope, retryDelay, scanOverview, STALE_NOTICE, triggerLabel,
} from "./logic";

describe("where an action's outcome is said", () => {
  const items = ["a", "b", "c"].map((id) => ({ id }));
  it("keeps the note of a card that left the list at the place the card had", () => {
    expect(placeNotes(items.filter((i) => i.id !== "b"), [{ id: "b", index: 1 }]).map((x) => x.id))
      .toEqual(["a", "b", "c"]);
    // a card still listed carries its note itself
    expect(placeNotes(items, [{ id: "b", index: 0 }]).map((x) => [x.id, x.item !== null]))
      .toEqual([["a", true], ["b", true], ["c", true]]);
  });
  it("places several, and one beyond the end of a shorter list last", () => {
    const out = placeNotes([{ id: "c" }], [{ id: "b", index: 1 }, { id: "a", index: 0 }, { id: "z", index: 9 }]);
    expect(out.map((x) => [x.id, x.item === null])).toEqual([["a", true], ["b", true], ["c", false], ["z", true]]);
  });
});

describe("a failed action", () => {
  it("says a group that is gone changed, without the raw id, and reloads", () => {
    expect(actionFailure(new ApiError(404, "no duplicate group 5f3c9a"))).toEqual({ text: STALE_NOTICE, reload: true });
    expect(STALE_NOTICE).toBe(
      "This group changed since the page was loaded (a scan ran, or someone else decided it); " +
      "the list is refreshed.");
  });
  it("says so for a group decided or changed meanwhile (409), and reloads", () => {
    for (const m of [
      "duplicate group 5f3c is already dismissed",
      "this group changed since its dry run: look at it again",
      "duplicate group 5f3c is open: there is no decision to undo",
      "duplicate group 5f3c changed: decision 4 is shown now, not 3; look at it again",
      "a concurrent change to the same files won; try again",
    ]) {
      expect(actionFailure(new ApiError(409, m))).toEqual({ text: STALE_NOTICE, reload: true });
    }
    expect(actionFailure(new ApiError(400, "not members of this group: /p/a.jpg")).text).toBe(STALE_NOTICE);
  });
  it("keeps the words of a refusal that is not about a change, still reloading on 409", () => {
    const off = "Immich's trash is turned off (Administration > Settings > Trash), so ...";
    expect(actionFailure(new ApiError(409, off))).toEqual({ text: off, reload: true });
    expect(actionFailure(new ApiError(403, "Missing required permission: asset.delete")))
      .toEqual({ text: "Missing required permission: asset.delete", reload: false });
    expect(actionFailure(new ApiError(400, "keep must name at least one member")).reload).toBe(false);
  });
});

describe("copies already in Immich's trash", () => {
  const plan = (trash: string[], inImmichTrash: string[]): ResolvePlan => ({
    id: "d", action: "trash", dryRun: true, keep: [{ path: "/k" }],
    trash: trash.map((path) => ({ path, assetId: "x" })), notInImmich: [], inImmichTrash,
  });
  it("can be confirmed when they are all that would go: the decision is recorded", () => {
    const t = planTotals([plan([], ["/a", "/b"])], []);
    expect(t.inImmichTrash).toBe(2);
    expect(confirmButton(t)).toEqual({
      label: "Record decision (the other copies are already in Immich's trash)", enabled: true,
    });
    expect(confirmButton(planTotals([plan([], ["/a"])], [])).label)
      .toBe("Record decision (the other copy is already in Immich's trash)");
  });
  it("moves what is live when there is some, and refuses an empty plan", () => {
    expect(confirmButton(planTotals([plan(["/a"], ["/b"])], []))).toEqual({ label: "Move 1 file to trash", enabled: true });
    expect(confirmButton(planTotals([plan([], [])], []))).toEqual({ label: "Move 0 files to trash", enabled: false });
  });
});

describe("a list that failed to load", () => {
  it("reads Retry-After as seconds or a date", () => {
    expect(parseRetryAfter("10")).toBe(10);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT"))).toBe(30);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
  });
  it("is tried again by itself only when the service was busy, a few times, within bounds", () => {
    const busy = new ApiError(503, "busy", 10);
    expect(retryDelay(busy, 0)).toBe(10_000);
    expect(retryDelay(busy, 2)).toBe(10_000);
    expect(retryDelay(busy, 3)).toBeNull();
    expect(retryDelay(new ApiError(503, "busy", 3600), 0)).toBe(60_000);
    expect(retryDelay(new ApiError(503, "busy", 0), 0)).toBe(1000);
    expect(retryDelay(new ApiError(503, "busy"), 0)).toBe(5000);
    expect(retryDelay(new ApiError(500, "boom", 10), 0)).toBeNull();
    expect(retryDelay(new ApiError(0, "Cannot reach"), 0)).toBeNull();
  });
});

describe("a request that got no answer", () => {
  it("warns that an action may have happened, not a read", () => {
    expect(unreachableMessage("Failed to fetch", true)).toBe(
      "Cannot reach the Twinlens gateway (Failed to fetch): the action may have happened: reload to see.");
    expect(unreachableMessage("Failed to fetch", false)).toBe("Cannot reach the Twinlens gateway (Failed to fetch).");
  });
});

describe("keeper reasons and decided groups", () => {
  it("labels the reasons as core/dedup/keeper.py decides them", () => {
    expect(keepReasonLabel("tie: path")).toBe("all equal; first path alphabetically");
    expect(keepReasonLabel("capture_time")).toBe("kept its capture date");
    expect(keepReasonLabel("intact")).toBe("the only copy not empty, cut short or corrupt");
    expect(keepReasonLabel("jpeg_quality")).toBe("encoded at a higher JPEG quality");
    expect(keepReasonLabel("file_group")).toBe("belongs with its RAW, Live Photo video or sidecars");
    expect(keepReasonLabel("some_new_rule")).toBe("some new rule");
  });
  it("marks no copy kept or going in a group decided as not duplicates", () => {
    const dismissed = { status: "dismissed", resolution: { action: "not_duplicate", keep: [] } };
    expect(memberMark(dismissed, "/a", "/a")).toBe("");
    expect(memberMark(dismissed, "/a", "/b")).toBe("");
    const resolved = { status: "resolved", resolution: { action: "trash", keep: ["/a"] } };
    expect([memberMark(resolved, "/a", "/a"), memberMark(resolved, "/a", "/b")]).toEqual(["kept", "goes"]);
    expect(memberMark({ status: "open" }, "/b", "/a")).toBe("goes");
  });
});

describe("groups decided on a list", () => {
  const load = (...ids: string[]) => ({ items: ids.map((id) => ({ id })) });
  it("stay hidden until a later load lists them again (reopened by another reviewer)", () => {
    const before = load("a", "b", "c");
    const decided = new Map([["a", before], ["b", before]]);
    // the load on screen when they were decided still lists them: hidden
    expect([...hiddenDecided(decided, before)]).toEqual(["a", "b"]);
    // the reload drops them: still hidden (nothing to show)
    const after = load("c");
    expect([...hiddenDecided(decided, after)]).toEqual(["a", "b"]);
    // a later load lists "a" again, open: shown again; "b" stays decided
    expect([...hiddenDecided(decided, load("a", "c"))]).toEqual(["b"]);
    expect([...hiddenDecided(decided, null)]).toEqual(["a", "b"]);
  });
});

describe("the Overview's jobs", () => {
  let n = 0;
  // `at`: minutes past midnight it was created (the newest is the largest)
  const job = (kind: string, state: string, at: number, extra: Partial<Job> = {}): Job => ({
    id: `j${++n}`, kind, state, total: 0, done: 0, failed: 0, root: "/lib", path: "/lib",
    created_at: `2025-01-01T${String(Math.floor(at / 60)).padStart(2, "0")}:${String(at % 60).padStart(2, "0")}:00Z`,
    ...extra,
  });
  it("keeps the last full scan's unreadable files apart from a later folder scan", () => {
    const folder = job("scan", "done", 30, { path: "/lib/2024", trigger: "watch" });
    const full = job("scan", "done", 20, { trigger: "schedule" });
    const older = job("scan", "done", 10);
    const o = scanOverview([folder, full, older]);
    expect(o.full.map((j) => j.id)).toEqual([full.id]);
    expect(o.folder?.id).toBe(folder.id);
    // the order listed does not matter, the time does
    expect(scanOverview([older, full, folder]).folder?.id).toBe(folder.id);
    // a folder scan older than the full scan is not shown
    const oldFolder = job("scan", "done", 5, { path: "/lib/2023" });
    expect(scanOverview([full, oldFolder]).folder).toBeNull();
    expect(isFullScan({ kind: "scan", path: null, root: null })).toBe(true);
    expect(isFullScan({ kind: "scan", path: "/lib/a", root: "/lib" })).toBe(false);
  });
  it("shows the newest failed job of each kind until a later one of that kind finishes", () => {
    const dedupOk = job("dedup", "done", 50);
    const groupFailed = job("group", "failed", 40, { error: "database is locked" });
    const dedupFailed = job("dedup", "failed", 30, { error: "out of memory" });
    const scanFailed = job("scan", "failed", 20, { path: "/lib/x", error: "gone" });
    const full = job("scan", "done", 10);
    const o = scanOverview([dedupOk, groupFailed, dedupFailed, scanFailed, full]);
    // the dedup failure was followed by a dedup that finished; the folder scan's failure
    // is shown as the last folder scan, with its error
    expect(o.failed.map((j) => j.id)).toEqual([groupFailed.id]);
    expect([o.full.map((j) => j.id), o.folder?.id]).toEqual([[full.id], scanFailed.id]);
    // a failed folder scan before the last full scan is neither the last folder scan nor
    // a failure to show: the full scan finished after it
    const later = job("scan", "done", 60);
    const p = scanOverview([later, scanFailed]);
    expect([p.full.map((j) => j.id), p.folder, p.failed]).toEqual([[later.id], null, []]);
  });
  it("orders jobs by when they finished, so a long job that failed last is shown", () => {
    // the dedup created first ran long and failed after a later-created dedup finished
    const long = job("dedup", "failed", 10, { error: "out of memory", finished_at: "2025-01-01T02:00:00Z" });
    const short = job("dedup", "done", 20, { finished_at: "2025-01-01T00:30:00Z" });
    expect(scanOverview([short, long]).failed.map((j) => j.id)).toEqual([long.id]);
  });
  it("lets only a later job over the whole library clear a library-wide failure", () => {
    const wide = job("group", "failed", 10, { error: "database is locked" });
    const folderOk = job("group", "done", 20, { path: "/lib/2024", trigger: "watch" });
    expect(scanOverview([folderOk, wide]).failed.map((j) => j.id)).toEqual([wide.id]);
    const wideOk = job("group", "done", 30);
    expect(scanOverview([wideOk, folderOk, wide]).failed).toEqual([]);
    // a folder's failure: the same folder done, or the whole library, clears it
    const folderFailed = job("group", "failed", 40, { path: "/lib/2024", error: "gone" });
    const otherOk = job("group", "done", 50, { path: "/lib/2023" });
    expect(scanOverview([otherOk, folderFailed]).failed.map((j) => j.id)).toEqual([folderFailed.id]);
    const sameOk = job("group", "done", 60, { path: "/lib/2024" });
    expect(scanOverview([sameOk, otherOk, folderFailed]).failed).toEqual([]);
  });
  it("says a whole-library scan with no path is not one folder", () => {
    const failed = job("scan", "failed", 10, { path: null, root: "/lib", error: "root not mounted" });
    expect(jobScope(failed)).toBe("/lib (whole library)");
    expect(jobScope(job("scan", "failed", 10, { path: "/lib/a" }))).toBe("/lib/a (one folder)");
    expect(jobScope(job("dedup", "failed", 10, { path: null }))).toBe("/lib");
  });
  it("does not repeat a failed scan shown as the last one, and ignores running jobs", () => {
    const running = job("scan", "running", 20);
    const failed = job("scan", "failed", 10, { error: "root not mounted" });
    const o = scanOverview([running, failed]);
    expect(o.full.map((j) => j.id)).toEqual([failed.id]);
    expect(o.failed).toEqual([]);
  });
  it("with two roots, shows the last scan of each, named by its root, and keeps one's failure", () => {
    const photos = job("scan", "failed", 10, { root: "/nas/Photos", path: "/nas/Photos", error: "not mounted" });
    const phone = job("scan", "done", 20, { root: "/usb/Phone", path: "/usb/Phone", trigger: "schedule" });
    const o = scanOverview([phone, photos]);
    // the newest scan of each root, not only the newest of all; Phone's success does not
    // hide Photos' failure (shown as Photos' last scan, with its error)
    expect(o.full.map((j) => j.id)).toEqual([phone.id, photos.id]);
    expect(o.failed).toEqual([]);
    expect(jobScope(phone, false, true)).toBe("/usb/Phone (whole library folder, nightly rescan)");
    expect(jobScope(phone)).toBe("/usb/Phone (whole library, nightly rescan)");
    // an older failure of Photos' dedup is not made good by a later dedup of Phone
    const dedupFailed = job("dedup", "failed", 30, { root: "/nas/Photos", path: "/nas/Photos", error: "locked" });
    const dedupPhone = job("dedup", "done", 40, { root: "/usb/Phone", path: "/usb/Phone" });
    expect(scanOverview([dedupPhone, dedupFailed, phone, photos]).failed.map((j) => j.id)).toEqual([dedupFailed.id]);
    // ... by one over the whole library (no root named), it is
    const dedupAll = job("dedup", "done", 50, { root: null, path: null });
    expect(scanOverview([dedupAll, dedupPhone, dedupFailed]).failed).toEqual([]);
    // a folder scan since its own root's last scan is shown, though older than the other's
    const trip = job("scan", "done", 15, { root: "/nas/Photos", path: "/nas/Photos/trip" });
    expect(scanOverview([phone, trip, photos]).folder?.id).toBe(trip.id);
    const old = job("scan", "done", 5, { root: "/nas/Photos", path: "/nas/Photos/old" });
    expect(scanOverview([phone, photos, old]).folder).toBeNull();
  });
  it("names who started a job", () => {
    expect(triggerLabel("schedule")).toBe("nightly rescan");
    expect(triggerLabel("watch")).toBe("new or changed files");
    expect(triggerLabel("something_else")).toBe("Something else");
    expect(triggerLabel(null)).toBe("");
  });
});

describe("a decided group's copies", () => {
  const trashed = (paths: string[] | null) => ({
    status: "resolved",
    resolution: { action: "trash", keep: ["/a"], trashed: paths === null ? null : paths.map((path) => ({ path })) },
  });
  it("say what the decision did with each, not \"Keep this one\"", () => {
    const d = trashed(["/b"]);
    expect(memberOutcome(d, { path: "/a" })).toBe("Kept");
    expect(memberOutcome(d, { path: "/b", trashedAssetId: "t1" })).toBe("Moved to Immich's trash");
    // neither kept nor moved: in Immich's trash before, or never in Immich
    expect(memberOutcome(d, { path: "/c", trashedAssetId: "t2" })).toBe("Already in Immich's trash");
    expect(memberOutcome(d, { path: "/c" })).toBe("Left on disk untouched (not in Immich)");
  });
  it("take a decision that did not record what it moved as having moved the copies not kept", () => {
    expect(memberOutcome(trashed(null), { path: "/b" })).toBe("Moved to Immich's trash");
  });
  it("say a copy sent to the trash that Immich shows live is still in Immich", () => {
    // the trash never happened, or the user restored it in Immich
    expect(memberOutcome(trashed(["/b"]), { path: "/b", assetId: "a2" }))
      .toBe("Still in Immich (not in its trash)");
    expect(memberOutcome(trashed(null), { path: "/b", assetId: "a2" }))
      .toBe("Still in Immich (not in its trash)");
    // the others keep their words
    expect(memberOutcome(trashed(["/b"]), { path: "/a", assetId: "a1" })).toBe("Kept");
    expect(memberOutcome(trashed(["/b"]), { path: "/b", assetId: null, trashedAssetId: "t1" }))
      .toBe("Moved to Immich's trash");
  });
  it("do not call a copy left alone \"not in Immich\" once Immich shows it live", () => {
    expect(memberOutcome(trashed(["/b"]), { path: "/c", assetId: "a3" })).toBe("Left on disk untouched");
  });
  it("are all kept in a group decided as not duplicates; an open group's say nothing", () => {
    const dismissed = { status: "dismissed", resolution: { action: "not_duplicate", keep: [] } };
    expect(memberOutcome(dismissed, { path: "/a" })).toBe("Kept: not duplicates");
    expect(memberOutcome({ status: "open" }, { path: "/a" })).toBeNull();
    expect(memberOutcome({ status: "open", resolution: null }, { path: "/a" })).toBeNull();
  });
  it("mark every copy a trash decision kept as kept", () => {
    const two = { status: "resolved", resolution: { action: "trash", keep: ["/a", "/b"] } };
    expect(["/a", "/b", "/c"].map((p) => memberMark(two, "/a", p))).toEqual(["kept", "kept", "goes"]);
  });
});

describe("\"Not duplicates\" says what was marked", () => {
  it("byte-identical copies as copies, look-alikes as look-alikes", () => {
    expect(dismissNotice("exact", "IMG_1.JPG")).toBe("Marked IMG_1.JPG and its copies as not duplicates.");
    expect(dismissNotice("perceptual", "IMG_1.JPG"))
      .toBe("Marked IMG_1.JPG and its look-alikes as not duplicates.");
  });
});
