// Putting a dissolved (or split) group back together: what "Undo" merges and says.
import { describe, expect, it } from "vitest";
import type { FileGroup } from "./api";
import { displayName, groupsEmptyText, jobScope, regroupNotice, regroupPlan, regroupWithout, uncatalogedFile } from "./logic";

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

describe("undoing when a rescan moved or deleted one of the files", () => {
  it("reads the file from the grouping API's refusal (Python's repr of its path)", () => {
    expect(uncatalogedFile("'/p/IMG_1.xmp' is not a cataloged file")).toBe("/p/IMG_1.xmp");
    expect(uncatalogedFile("\"/p/it's.jpg\" is not a cataloged file")).toBe("/p/it's.jpg");
    expect(uncatalogedFile("'/p/caf\\udce9\\\\x\\n.jpg' is not a cataloged file"))
      .toBe("/p/caf\udce9\\x\n.jpg");
    expect(uncatalogedFile("no group 12")).toBeNull();
  });
  it("offers the files left, the primary staying primary while it is one of them", () => {
    const r = regroupPlan(group(["/p/a.JPG", "/p/a.xmp", "/p/a.JPG.xmp"], "/p/a.JPG"), "dissolve")!;
    expect(regroupWithout(r, "/p/a.xmp")).toEqual({
      ...r, paths: ["/p/a.JPG", "/p/a.JPG.xmp"], missing: ["/p/a.xmp"],
    });
    expect(regroupWithout(r, "/p/a.JPG")?.primary).toBeNull();
    expect(regroupWithout(regroupWithout(r, "/p/a.xmp")!, "/p/a.JPG")).toBeNull();
  });
});

describe("a file named to mislead", () => {
  // "\u202egpj.exe" shows as "exe.jpg": every name and path shown is escaped, the paths
  // sent back to the gateway are not
  const evil = "/p/\u202egpj.exe";
  it("is shown escaped by its name", () => {
    expect(displayName(evil)).toBe("\\u202egpj.exe");
    expect(displayName("/p/caf\udce9\n.jpg")).toBe("caf\\xe9\\x0a.jpg");
    expect(displayName("/p/IMG_1.JPG")).toBe("IMG_1.JPG");
  });
  it("is escaped in the notes of putting a group back, but not in what is merged", () => {
    const r = regroupPlan(group([evil, "/p/IMG_1.xmp"], evil), "dissolve")!;
    expect(r.paths).toEqual([evil, "/p/IMG_1.xmp"]);
    expect(r.primary).toBe(evil);
    expect(r.name).toBe("\\u202egpj.exe");
    expect(regroupNotice(r, { members: [{ path: evil }, { path: "/p/IMG_1.xmp" }] }))
      .toBe("Put the group of \\u202egpj.exe back together: 2 files in one manual group " +
            "(primary \\u202egpj.exe). Later scans keep it.");
  });
  it("is escaped in what a job went over", () => {
    expect(jobScope({ id: "j", kind: "scan", state: "done", path: "/p/\u202eni", root: "/p" } as never))
      .toBe("/p/\\u202eni (one folder)");
  });
});

describe("an empty list of groups", () => {
  it("says the type it lists, and the folder", () => {
    expect(groupsEmptyText("live_photo", "/p/2024")).toBe("No Live Photo groups with a file in /p/2024.");
    expect(groupsEmptyText("", "/p/2024")).toBe("No groups with a file in /p/2024.");
    expect(groupsEmptyText("raw_jpeg", "")).toBe("No RAW + JPEG groups here.");
    expect(groupsEmptyText("", "")).toBe("No groups here.");
  });
});
