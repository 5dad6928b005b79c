import { describe, expect, it } from "vitest";
import type { Duplicate, FileGroup, ResolvePlan } from "./api";
import { query, quotePath, thumbnailUrl } from "./api";
import {
  basename, camera, canMerge, confirmedRequests, decidedKeep, defaultKeep, dirname, formatBytes, formatDuration,
  formatSimilarity, formatTakenAt, groupPrimary, mergePlan, pageToShow, planTotals, plural,
  progressFraction, splitButtons, splitNotice, splitOutcome, statBreakdowns, toggled,
  undoNotice, undoSummary, uniqueJobs,
} from "./logic";

const dup = (id: string, sizes: Record<string, number>, keep?: string): Duplicate => ({
  id, type: "exact", status: "open", keep,
  members: Object.entries(sizes).map(([path, size]) => ({ path, size })),
});

describe("formatting", () => {
  it("formats bytes in decimal units, as the terminal does (1 MB = 1,000,000 bytes)", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1500)).toBe("1.5 kB");
    // the demo scan's bytes: "6.3 MB read" in the terminal, the same here
    expect(formatBytes(6_263_393)).toBe("6.3 MB");
    expect(formatBytes(5e9)).toBe("5.0 GB");
    expect(formatBytes(300e6)).toBe("300 MB");
    expect(formatBytes(2.5e12)).toBe("2.5 TB");
    // what rounds up to 1,000 of a unit is said in the next one
    expect(formatBytes(999_960)).toBe("1.0 MB");
    expect(formatBytes(999_499)).toBe("999 kB");
    expect(formatBytes(null)).toBe("–");
  });
  it("formats durations as m:ss or h:mm:ss", () => {
    expect(formatDuration(5)).toBe("0:05");
    expect(formatDuration(218)).toBe("3:38");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(null)).toBe("–");
    expect(formatDuration(-1)).toBe("–");
  });
  it("keeps capture times as the camera wrote them", () => {
    expect(formatTakenAt("2024-05-17T10:30:00")).toBe("2024-05-17 10:30:00");
    expect(formatTakenAt("2024-05-17T10:30:00+02:00")).toBe("2024-05-17 10:30:00");
    expect(formatTakenAt(null)).toBe("");
  });
  it("does not repeat the maker in the camera name", () => {
    expect(camera({ make: "Canon", model: "Canon EOS R5" })).toBe("Canon EOS R5");
    expect(camera({ make: "Apple", model: "iPhone 15 Pro" })).toBe("Apple iPhone 15 Pro");
    expect(camera({ make: null, model: "X100V" })).toBe("X100V");
    expect(camera({})).toBe("");
  });
  it("shows similarity as a percentage", () => {
    expect(formatSimilarity(1)).toBe("100%");
    expect(formatSimilarity(0.953)).toBe("95.3%");
    expect(formatSimilarity(undefined)).toBe("");
  });
  it("splits paths", () => {
    expect(basename("/a/b/IMG_1.JPG")).toBe("IMG_1.JPG");
    expect(dirname("/a/b/IMG_1.JPG")).toBe("/a/b");
    expect(dirname("/IMG_1.JPG")).toBe("/");
    expect(dirname("IMG_1.JPG")).toBe("");
  });
});

describe("keeper and plans", () => {
  it("defaults to the suggestion, or the first member when the suggestion is not a member", () => {
    expect(defaultKeep(dup("d", { "/a": 1, "/b": 2 }, "/b"))).toBe("/b");
    expect(defaultKeep(dup("d", { "/a": 1, "/b": 2 }, "/elsewhere"))).toBe("/a");
    expect(defaultKeep(dup("d", { "/a": 1 }))).toBe("/a");
    expect(defaultKeep({ keep: null, members: [] })).toBeNull();
  });

  it("shows the copy a trash decision kept, nothing for other decisions", () => {
    const d = dup("d", { "/a": 1, "/b": 2 }, "/a");
    expect(decidedKeep({ ...d, resolution: { action: "trash", keep: ["/b"] } })).toBe("/b");
    expect(decidedKeep({ ...d, resolution: { action: "trash", keep: ["/gone", "/a"] } })).toBe("/a");
    expect(decidedKeep({ ...d, resolution: { action: "not_duplicate", keep: [] } })).toBeNull();
    expect(decidedKeep({ ...d, resolution: null })).toBeNull();
    expect(decidedKeep(d)).toBeNull();
  });

  it("adds up what a dry run would trash, per group, and lists refusals", () => {
    const d1 = dup("d1", { "/x/a.jpg": 100, "/y/a.jpg": 100, "/z/a.jpg": 100 });
    const d2 = dup("d2", { "/x/a.jpg": 7, "/x/b.jpg": 40 }); // same path in two groups: sizes per group
    const plans: ResolvePlan[] = [
      { id: "d1", action: "trash", dryRun: true, status: 200, keep: [{ path: "/x/a.jpg" }],
        trash: [{ path: "/y/a.jpg", assetId: "1" }], notInImmich: ["/z/a.jpg"] },
      { id: "d2", action: "trash", dryRun: true, keep: [{ path: "/x/b.jpg" }],
        trash: [{ path: "/x/a.jpg", assetId: "2" }], notInImmich: [] },
      { id: "d3", action: "trash", dryRun: true, status: 409, message: "already resolved",
        keep: [], trash: [], notInImmich: [] },
    ];
    expect(planTotals(plans, [d1, d2])).toEqual({
      groups: 2, trashFiles: 2, trashBytes: 107, keptFiles: 2, notInImmich: 1, inImmichTrash: 0,
      refused: [{ id: "d3", message: "already resolved" }],
    });
  });
});

describe("jobs and stats", () => {
  it("reports progress only once the total is known", () => {
    expect(progressFraction({ total: 0, done: 0 })).toBeNull();
    expect(progressFraction({ total: 200, done: 50 })).toBe(0.25);
    expect(progressFraction({ total: 10, done: 12 })).toBe(1);
  });
  it("lists a job seen through both services once", () => {
    const j = (id: string, service: string) => ({ id, service, kind: "scan", state: "running", total: 0, done: 0, failed: 0 });
    expect(uniqueJobs([j("a", "grouping"), j("b", "grouping"), j("a", "dedup")]).map((x) => x.id))
      .toEqual(["a", "b"]);
  });
  it("finds numeric breakdowns in the dedup stats", () => {
    expect(statBreakdowns({ open: 3, by_type: { exact: 2, perceptual: 1, note: "x" }, list: [1] }))
      .toEqual([{ name: "by_type", rows: [["exact", 2], ["perceptual", 1]] }]);
  });
});

describe("urls", () => {
  it("builds query strings without empty values", () => {
    expect(query({ type: "", status: "open", page: 2, size: undefined })).toBe("?status=open&page=2");
    expect(query({})).toBe("");
  });
  it("uses Immich's thumbnail only when Immich knows the asset", () => {
    expect(thumbnailUrl({ path: "/p/a b.jpg", assetId: "id1" }, false))
      .toBe("/api/assets/id1/thumbnail?size=thumbnail");
    expect(thumbnailUrl({ path: "/p/a b.jpg", assetId: "id1" }, true))
      .toBe("/api/twinlens/thumbnail?path=%2Fp%2Fa+b.jpg&size=320");
    expect(thumbnailUrl({ path: "/p/a.jpg" }, false, 128))
      .toBe("/api/twinlens/thumbnail?path=%2Fp%2Fa.jpg&size=128");
  });
  it("asks for a name that is not UTF-8 by its bytes, never for the wrong file", () => {
    const latin1 = "/p/caf\udce9 x.jpg"; // surrogateescape of byte 0xE9
    expect(thumbnailUrl({ path: latin1 }, true)).toBe("/api/twinlens/thumbnail?path=%2Fp%2Fcaf%E9+x.jpg&size=320");
    expect(quotePath("/p/café 📷.jpg")).toBe("%2Fp%2Fcaf%C3%A9+%F0%9F%93%B7.jpg"); // UTF-8 bytes
    expect(quotePath("\udcff\udc80")).toBe("%FF%80");
    // A lone surrogate that is no escaped byte names no file at all
    expect(thumbnailUrl({ path: "/p/\ud800.jpg" }, true)).toBeNull();
    expect(quotePath("/p/\udc41.jpg")).toBeNull();
  });
});

const grp = (id: string, paths: string[], primary?: string): FileGroup => ({
  id, type: "sidecar", primary, members: paths.map((path) => ({ path })),
});

describe("group corrections", () => {
  it("enables split only for some but not all members, dissolve for any group", () => {
    expect(splitButtons(3, 0)).toEqual({ split: false, dissolve: true });
    expect(splitButtons(3, 1)).toEqual({ split: true, dissolve: true });
    expect(splitButtons(3, 2)).toEqual({ split: true, dissolve: true });
    expect(splitButtons(3, 3)).toEqual({ split: false, dissolve: true });
    expect(splitButtons(2, 1)).toEqual({ split: true, dissolve: true });
    expect(splitButtons(0, 0)).toEqual({ split: false, dissolve: false });
  });

  it("merges two groups or more", () => {
    expect(canMerge(0)).toBe(false);
    expect(canMerge(1)).toBe(false);
    expect(canMerge(2)).toBe(true);
    expect(canMerge(5)).toBe(true);
  });

  it("keeps the order of picks and picks each item once", () => {
    expect(toggled(["a", "b"], "c", true)).toEqual(["a", "b", "c"]);
    expect(toggled(["a", "b"], "a", true)).toEqual(["b", "a"]);
    expect(toggled(["a", "b"], "a", false)).toEqual(["b"]);
    expect(toggled([], "x", false)).toEqual([]);
  });

  it("finds a group's primary: flagged member, then `primary`, then the first", () => {
    const flagged: FileGroup = {
      id: "g", type: "raw_jpeg", primary: "/a.CR3",
      members: [{ path: "/a.CR3" }, { path: "/a.JPG", is_primary: true }],
    };
    expect(groupPrimary(flagged)).toBe("/a.JPG");
    expect(groupPrimary(grp("g", ["/a", "/b"], "/b"))).toBe("/b");
    expect(groupPrimary(grp("g", ["/a", "/b"], "/elsewhere"))).toBe("/a");
    expect(groupPrimary(grp("g", []))).toBeNull();
  });

  it("sends every member of the picked groups once, primary of the first picked", () => {
    const g1 = grp("g1", ["/p/IMG_1.JPG", "/p/IMG_1.JPG.xmp"], "/p/IMG_1.JPG");
    const g2 = grp("g2", ["/q/IMG_2.CR3", "/q/IMG_2.JPG", "/p/IMG_1.JPG.xmp"], "/q/IMG_2.JPG");
    expect(mergePlan([g2, g1])).toEqual({
      paths: ["/q/IMG_2.CR3", "/q/IMG_2.JPG", "/p/IMG_1.JPG.xmp", "/p/IMG_1.JPG"],
      primary: "/q/IMG_2.JPG",
    });
    expect(mergePlan([g1, g2]).primary).toBe("/p/IMG_1.JPG");
    expect(mergePlan([])).toEqual({ paths: [], primary: null });
  });

  it("says where a split left the files", () => {
    const members = ["/a.JPG", "/a.JPG.xmp", "/a.xmp"];
    const after = [grp("g2", ["/a.JPG", "/a.JPG.xmp"])];
    expect(splitOutcome(members, after)).toEqual({
      alone: ["/a.xmp"], grouped: ["/a.JPG", "/a.JPG.xmp"],
    });
    expect(splitNotice("a.JPG", members, ["/a.xmp"], after)).toBe(
      "Split 1 file off the group of a.JPG. 1 file is on its own, 2 files are still grouped.",
    );
    expect(splitNotice("a.JPG", members, null, [])).toBe(
      "Dissolved the group of a.JPG. 3 files are on their own.",
    );
  });

  it("pluralises", () => {
    expect(plural(1, "group")).toBe("1 group");
    expect(plural(2, "group")).toBe("2 groups");
    expect(plural(0, "file comes", "files come")).toBe("0 files come");
  });
});

describe("undoing a duplicate decision", () => {
  it("says how many files come back from Immich's trash and which cannot", () => {
    const restore = [{ path: "/b/a.jpg", assetId: "1" }, { path: "/c/a.jpg", assetId: "2" }];
    expect(undoSummary({ action: "trash", restore, notInImmich: [] })).toBe(
      "2 files come back from Immich's trash. The group becomes open again.",
    );
    expect(undoSummary({ action: "trash", restore: restore.slice(1), notInImmich: ["/d/a.jpg"] }))
      .toBe("1 file comes back from Immich's trash; 1 file cannot come back through Twinlens " +
            "(not in Immich). The group becomes open again.");
    expect(undoSummary({ action: "not_duplicate", restore: [], notInImmich: [] }))
      .toMatch(/^No files come back from Immich's trash/);
  });
  it("reports what was restored", () => {
    expect(undoNotice("a.jpg", { action: "trash", restored: 2 })).toBe(
      "Undid the decision on a.jpg: the group is open again; 2 files restored from Immich's trash.",
    );
    expect(undoNotice("a.jpg", { action: "not_duplicate", restored: null })).toBe(
      "Undid the decision on a.jpg: the group is open again.",
    );
  });
});

describe("bulk confirmation", () => {
  it("sends only the groups the dry run could resolve, each held to what it listed", () => {
    const requests = [
      { id: "a", keep: ["/a/1.jpg"], action: "trash" as const },
      { id: "b", keep: ["/b/1.jpg"], action: "trash" as const },
      { id: "c", keep: ["/c/1.jpg"], action: "trash" as const },
    ];
    const dryRun: ResolvePlan[] = [
      { id: "a", status: 200, action: "trash", keep: [], notInImmich: [], dryRun: true,
        trash: [{ path: "/a/2.jpg", assetId: "2" }, { path: "/a/3.jpg", assetId: "3" }] },
      { id: "b", status: 504, message: "Immich did not answer in time" } as ResolvePlan,
      { id: "c", status: 200, action: "trash", keep: [], notInImmich: ["/c/2.jpg"], trash: [],
        dryRun: true },
    ];
    expect(confirmedRequests(requests, dryRun)).toEqual([
      { id: "a", keep: ["/a/1.jpg"], action: "trash", expectTrash: ["/a/2.jpg", "/a/3.jpg"] },
      { id: "c", keep: ["/c/1.jpg"], action: "trash", expectTrash: [] },
    ]);
  });
});

describe("pageToShow", () => {
  it("moves only off a page past the end, to the last one left", () => {
    expect(pageToShow(3, 40, 20)).toBe(2); // page 3 emptied: 40 groups fill two pages
    expect(pageToShow(3, 41, 20)).toBeNull(); // page 3 still has one: stay
    expect(pageToShow(2, 41, 20)).toBeNull(); // a middle page refilled by the next groups
    expect(pageToShow(4, 0, 20)).toBe(1); // nothing left anywhere: the first page
    expect(pageToShow(1, 0, 20)).toBeNull();
  });
});
