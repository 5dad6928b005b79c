// Putting a dissolved (or split) group back together: what "Undo" merges and says.
import { describe, expect, it } from "vitest";
import type { FileGroup } from "./api";
import { regroupNotice, regroupPlan } from "./logic";

const group = (paths: string[], primary?: string): FileGroup => ({
  id: "g1", type: "sidecar", primary,
  members: paths.map((path) => ({ path, is_primary: path === primary })),
});

describe("undoing a dissolve or a split", () => {
  it("merges every file the group had, its primary staying primary", () => {
    const g = group(["/p/IMG_1.xmp", "/p/IMG_1.JPG", "/p/IMG_1.JPG.xmp"], "/p/IMG_1.JPG");
    expect(regroupPlan(g, "dissolve")).toEqual({
      paths: ["/p/IMG_1.xmp", "/p/IMG_1.JPG", "/p/IMG_1.JPG.xmp"],
      primary: "/p/IMG_1.JPG", name: "IMG_1.JPG", kind: "dissolve",
    });
    expect(regroupPlan(g, "split")?.kind).toBe("split");
  });
  it("offers nothing for a group of one file (a merge needs two)", () => {
    expect(regroupPlan(group(["/p/a.jpg"], "/p/a.jpg"), "dissolve")).toBeNull();
  });
  it("says what came back, and that scans keep it", () => {
    const r = regroupPlan(group(["/p/IMG_1.JPG", "/p/IMG_1.xmp"], "/p/IMG_1.JPG"), "dissolve")!;
    expect(regroupNotice(r, group(["/p/IMG_1.JPG", "/p/IMG_1.xmp"]))).toBe(
      "Put the group of IMG_1.JPG back together: 2 files in one manual group " +
      "(primary IMG_1.JPG). Later scans keep it.");
  });
});
