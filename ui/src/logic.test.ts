import { describe, expect, it } from "vitest";
import type { Duplicate, ResolvePlan } from "./api";
import { isWellFormed, query, thumbnailUrl } from "./api";
import {
  basename, camera, defaultKeep, dirname, formatBytes, formatDuration, formatSimilarity,
  formatTakenAt, planTotals, progressFraction, statBreakdowns, uniqueJobs,
} from "./logic";

const dup = (id: string, sizes: Record<string, number>, keep?: string): Duplicate => ({
  id, type: "exact", status: "open", keep,
  members: Object.entries(sizes).map(([path, size]) => ({ path, size })),
});

describe("formatting", () => {
  it("formats bytes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5.0 GB");
    expect(formatBytes(300 * 1024 ** 2)).toBe("300 MB");
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
      groups: 2, trashFiles: 2, trashBytes: 107, keptFiles: 2, notInImmich: 1,
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
  it("refuses names that are not valid UTF-8 rather than asking for the wrong file", () => {
    const bad = "/p/caf\udce9.jpg"; // surrogateescape of byte 0xE9
    expect(isWellFormed(bad)).toBe(false);
    expect(isWellFormed("/p/café 📷.jpg")).toBe(true);
    expect(thumbnailUrl({ path: bad }, true)).toBeNull();
  });
});
