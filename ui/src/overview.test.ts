// What the Overview says of a job's failed files and of a scan it could not start.
import { describe, expect, it } from "vitest";
import { failedFilesLabel, scanRefusal } from "./logic";

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
