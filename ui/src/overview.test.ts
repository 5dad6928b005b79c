// What the Overview says of a job's failed files and of a scan it could not start.
import { describe, expect, it } from "vitest";
import { emptyFolderNote, failedFilesLabel, phaseLabel, scanButton, scanRefusal, staleJobsNotice } from "./logic";

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
