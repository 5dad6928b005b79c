// What the Overview says of a job's failed files and of a scan it could not start.
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { Job } from "./api";
import {
  demoNote, duplicateKindRows, emptyFolderNote, failedFilesLabel, phaseLabel, scanButton, scanRefusal,
  scopeProblemsText, staleJobsNotice, unreadScanText,
} from "./logic";
import { DuplicateBreakdown, LastScan } from "./Overview";

describe("a job's failed files", () => {
  it("are counted as listed when the list holds them all", () => {
    expect(failedFilesLabel(3, 3)).toBe("Files that failed (3)");
    expect(failedFilesLabel(1000, 1000)).toBe("Files that failed (1,000)");
    expect(failedFilesLabel(2, undefined)).toBe("Files that failed (2)");
  });
  it("say the API listed only the first 1,000 when the job counted more", () => {
    expect(failedFilesLabel(1000, 4321)).toBe("Files that failed (first 1,000 of 4,321)");
  });
});

describe("a scan that could not start", () => {
  it("with no library root configured, says which setting is missing", () => {
    expect(scanRefusal("path is required when more than one library root is configured")).toBe(
      "path is required when more than one library root is configured. If no library folder " +
      "is configured, configure TWINLENS_LIBRARY_ROOTS (the photo library's folders, separated " +
      "by \":\") and restart Twinlens.");
    // none configured says so already: no "If no library folder is configured" after it
    expect(scanRefusal("no library roots are configured (TWINLENS_LIBRARY_ROOTS)"))
      .toBe("no library roots are configured (TWINLENS_LIBRARY_ROOTS). Configure TWINLENS_LIBRARY_ROOTS " +
        "(the photo library's folders, separated by \":\") and restart Twinlens.");
  });
  it("keeps any other refusal as it is", () => {
    expect(scanRefusal("path is outside the library roots")).toBe("path is outside the library roots");
  });
});

describe("a job's phase", () => {
  it("is said in plain words, not the services' internal names", () => {
    expect(["plan", "catalog", "quick", "full", "finish"].map(phaseLabel))
      .toEqual(["listing files", "reading files", "comparing copies", "comparing copies", "finishing"]);
    expect(phaseLabel("group")).toBe("grouping files");
    expect(["wait", "scope", "cluster", "write"].map(phaseLabel)).toEqual([
      "waiting for grouping to finish", "finding what changed", "comparing pictures", "saving duplicate groups",
    ]);
  });
  it("one it does not know is shown as it is; none is nothing", () => {
    expect(phaseLabel("reticulate")).toBe("reticulate");
    expect(phaseLabel(null)).toBe("");
    expect(phaseLabel(undefined)).toBe("");
  });
});

describe("jobs that could not be read again", () => {
  it("are said to be the last known state, not running now", () => {
    expect(staleJobsNotice("Cannot reach the Twinlens gateway (Failed to fetch).", 1)).toBe(
      "Cannot reach the Twinlens gateway (Failed to fetch). Showing the last known state: these " +
      "jobs may have finished or stopped.");
    expect(staleJobsNotice("502 Bad Gateway", 0)).toBe("502 Bad Gateway.");
  });
  it("do not hold \"Scan now\" as \"Scanning…\"", () => {
    expect(scanButton(true, false, false)).toEqual({ label: "Scanning…", disabled: true });
    expect(scanButton(true, false, true)).toEqual({ label: "Scan now", disabled: false });
    expect(scanButton(false, true, true)).toEqual({ label: "Starting…", disabled: true });
    expect(scanButton(false, false, false)).toEqual({ label: "Scan now", disabled: false });
  });
});

describe("a folder with nothing in it", () => {
  it("says so once every figure is in and none counts anything, rather than zeros alone", () => {
    const none = { open: 0, total: 0, groups: 0 };
    expect(emptyFolderNote("/nas/Photos/2O24", none, 0)).toBe(
      "Nothing of the library is listed in /nas/Photos/2O24: no duplicate, file group or file with a " +
      "problem has a file there. If it is not the folder you meant, check its name (and the Library folder picked).");
    expect(emptyFolderNote("/nas/Photos/2024", { ...none, groups: 1 }, 0)).toBeNull();
    expect(emptyFolderNote("/nas/Photos/2024", none, 2)).toBeNull();
    // ... not while a figure is still loading, nor for the whole library
    expect(emptyFolderNote("/nas/Photos/2O24", none, null)).toBeNull();
    expect(emptyFolderNote("/nas/Photos/2O24", null, 0)).toBeNull();
    expect(emptyFolderNote("", none, 0)).toBeNull();
  });
});

describe("a last scan that read no file (a restart over a library cataloged before)", () => {
  const job = (over: Partial<Job> = {}): Job => ({
    id: "j", kind: "scan", state: "done", total: 0, done: 0, failed: 0, bytes_read: 0,
    root: "/photos", summary: { walked: 2524, unchanged: 2524, moved: 0, missing: 0, revived: 0 },
    ...over,
  });
  it("says nothing changed and how many files the library holds, not 0 / 0 files", () => {
    expect(unreadScanText(job(), 2524)).toBe("Nothing changed (2,524 files already cataloged)");
    // the root's count not known (GET /roots failed): the files the scan found unchanged
    expect(unreadScanText(job(), null)).toBe("Nothing changed (2,524 files already cataloged)");
    expect(unreadScanText(job({ summary: null }), null)).toBe("Nothing changed");
    expect(unreadScanText(job(), 1)).toBe("Nothing changed (1 file already cataloged)");
  });
  it("says what changed without a read", () => {
    expect(unreadScanText(job({ summary: { moved: 3, missing: 1, revived: 0 } }), 2524)).toBe(
      "No file needed reading: 3 moved or renamed, 1 gone from disk (2,524 files cataloged)");
    expect(unreadScanText(job({ summary: { revived: 2 } }), 10)).toBe(
      "No file needed reading: 2 back on disk (10 files cataloged)");
  });
  it("says an empty library is empty, and a scan stopped before reading is no 'nothing changed'", () => {
    expect(unreadScanText(job({ summary: { walked: 0, unchanged: 0 } }), 0)).toBe("No files found to catalog");
    expect(unreadScanText(job({ state: "cancelled" }), 2524)).toBe("No file was read (2,524 files cataloged)");
  });
  it("leaves a scan that read files to its own figures", () => {
    expect(unreadScanText(job({ total: 12, done: 12 }), 2524)).toBeNull();
  });
  it("counts the files with a problem library-wide, not the scan's own failures", () => {
    expect(scopeProblemsText(5)).toBe("5 files have problems");
    expect(scopeProblemsText(1)).toBe("1 file has a problem");
    expect(scopeProblemsText(0)).toBe("No file has a problem");
    expect(scopeProblemsText(null)).toBeNull();
  });
  it("is shown so on its card, with the library's figures", () => {
    const html = renderToStaticMarkup(createElement(LastScan, {
      job: job({ bytes_read: 0, elapsed_seconds: 2 }), cataloged: 2524, problems: 5,
    }));
    const text = html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
    expect(text).toContain("Nothing changed (2,524 files already cataloged)");
    expect(text).toContain("5 files have problems");
    expect(text).not.toContain("0 / 0 files");
    expect(text).not.toContain("0 B read");
    expect(text).not.toContain("0 files could not be read");
    expect(html).toContain('href="#/problems"');
  });
  it("a scan that read files keeps its figures", () => {
    const html = renderToStaticMarkup(createElement(LastScan, {
      job: job({ total: 12, done: 12, failed: 1, bytes_read: 6_263_393, elapsed_seconds: 3 }),
      cataloged: 2524, problems: 5,
    }));
    const text = html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
    expect(text).toContain("12 / 12 files");
    expect(text).toContain("6.3 MB read");
    expect(text).toContain("1 file could not be read");
    expect(text).not.toContain("Nothing changed");
  });
});

describe("the demo library", () => {
  it("is named as such, with how to use one's own photos", () => {
    const note = demoNote([{ path: "/home/me/.local/share/twinlens/demo-library", demo: true }]);
    expect(note).toMatch(/^This is a demo library: Twinlens generated it in /);
    expect(note).toContain("/home/me/.local/share/twinlens/demo-library");
    expect(note).toContain("make run LIBRARY=/path/to/photos");
  });
  it("is not said of a library of one's own (nor by a gateway that does not tell)", () => {
    expect(demoNote([{ path: "/photos", demo: false }])).toBeNull();
    expect(demoNote([{ path: "/photos" }])).toBeNull();
    expect(demoNote([])).toBeNull();
  });
});

describe("duplicate groups by kind", () => {
  // One look-alike group, marked "not duplicates": the stats count it by kind (every
  // status) but reclaim only from open groups
  const stats = {
    groups: 2, open: 1, by_type: { exact: 1, perceptual: 1 },
    by_status: { open: 1, resolved: 0, dismissed: 1 },
    reclaimable: { exact_bytes: 4_000_000, perceptual_bytes: 0 },
  };
  it("count open groups beside what they reclaim, and the decided ones apart", () => {
    expect(duplicateKindRows(stats, { exact: 1, perceptual: 0 })).toEqual([
      { type: "exact", open: 1, decided: 0, reclaimable: 4_000_000 },
      { type: "perceptual", open: 0, decided: 1, reclaimable: 0 },
    ]);
    // the open counts not known yet: not guessed
    expect(duplicateKindRows(stats, null)[1]).toEqual(
      { type: "perceptual", open: null, decided: null, reclaimable: 0 });
  });
  it("are shown under headers that say so", () => {
    const html = renderToStaticMarkup(createElement(DuplicateBreakdown, {
      stats, scope: "", openByType: { exact: 1, perceptual: 0 },
    }));
    const rows = [...html.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => m[1].replace(/<[^>]+>/g, "|"));
    expect(rows[0]).toContain("Open");
    expect(rows[0]).toContain("Decided");
    expect(rows[0]).toContain("Reclaimable (open)");
    expect(rows[0]).not.toMatch(/\|Groups\|/);
    expect(rows[2].split("|").filter(Boolean)).toEqual(["Look-alikes", "0", "1", "0 B"]);
  });
});
