// The Files with problems page: how a file's path, problem and next read are shown, and
// what it asks the gateway.
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ApiError, prefixQuery } from "./api";
import {
  canRetry, displayPath, displayText, folderFilter, jobRoots, parseUtc, problemRetryLabel, problemsLinkText,
  resolveFolder, rootHolding,
} from "./logic";
import { Problems } from "./Problems";

describe("a path shown", () => {
  it("is left as it is when it is plain, long or not Latin", () => {
    const long = "/photos/" + "Überlänge ".repeat(40) + "/IMG_1.JPG";
    expect(displayPath(long)).toBe(long);
    expect(displayPath("/photos/東京/写真 (1).jpg")).toBe("/photos/東京/写真 (1).jpg");
    expect(displayPath("/photos/<b>&amp;</b>.jpg")).toBe("/photos/<b>&amp;</b>.jpg");
  });
  it("shows a byte that is not UTF-8 as \\xNN, as the CLI does", () => {
    expect(displayPath("/photos/caf\udce9.jpg")).toBe("/photos/caf\\xe9.jpg");
  });
  it("escapes what would fake a line or reorder the name", () => {
    expect(displayPath("/p/a\nb.jpg")).toBe("/p/a\\x0ab.jpg");
    expect(displayPath("/p/\u202egpj.exe")).toBe("/p/\\u202egpj.exe");
    expect(displayPath("/p/in\u200bvisible\u2066.jpg")).toBe("/p/in\\u200bvisible\\u2066.jpg");
    expect(displayPath("/p/\x1b[31mred")).toBe("/p/\\x1b[31mred");
    expect(displayPath("/p/\ud800x")).toBe("/p/\\ud800x");
  });
});

describe("a message shown", () => {
  it("escapes a file name quoted in it, and only that", () => {
    const said = "'/p/\u202egpj.exe.JPG' is gone from disk: keep another copy";
    expect(displayText(said)).toBe("'/p/\\u202egpj.exe.JPG' is gone from disk: keep another copy");
    expect(displayText("Immich is unreachable")).toBe("Immich is unreachable");
  });
  it("is the same escaped twice (a note may quote a name shown already)", () => {
    for (const t of ["a\nb \u202e c\udce9", "/p/\x1b[31mred", "plain"]) {
      expect(displayText(displayText(t))).toBe(displayText(t));
    }
  });
});

describe("a file with a problem", () => {
  it("says when it is read again", () => {
    expect(problemRetryLabel(true)).toBe("read again at a later scan");
    expect(problemRetryLabel(false)).toBe("read again once the file changes, or by a full rescan");
  });
  it("says a mis-named file is read again once renamed, unless its read failed", () => {
    expect(problemRetryLabel(false, true)).toBe("read again once renamed or changed, or by a full rescan");
    expect(problemRetryLabel(true, true)).toBe("read again at a later scan");
  });
  it("reads the services' UTC times", () => {
    expect(parseUtc("2026-01-02T03:04:05")?.toISOString()).toBe("2026-01-02T03:04:05.000Z");
    expect(parseUtc("2026-01-02T03:04:05.250+00:00")?.toISOString()).toBe("2026-01-02T03:04:05.250Z");
    expect(parseUtc("2026-01-02T03:04:05-02:00")?.toISOString()).toBe("2026-01-02T05:04:05.000Z");
    expect(parseUtc("yesterday")).toBeNull();
    expect(parseUtc(null)).toBeNull();
  });
  it("is counted on the Overview", () => {
    expect(problemsLinkText(0)).toBe("No files with problems");
    expect(problemsLinkText(1)).toBe("1 file with a problem");
    expect(problemsLinkText(1234)).toBe("1,234 files with problems");
  });
});

describe("the folder filter", () => {
  it("takes the folder as typed, without spaces around it or a trailing slash", () => {
    expect(folderFilter("  /photos/2024/ ")).toBe("/photos/2024");
    expect(folderFilter("/")).toBe("/");
    expect(folderFilter("")).toBe("");
  });
  it("takes a folder typed relative to the library under its root, when the library has one", () => {
    const one = ["/srv/photos"];
    expect(folderFilter("2024/shoot-A", one)).toBe("/srv/photos/2024/shoot-A");
    expect(folderFilter(" ./2024/shoot-A/ ", one)).toBe("/srv/photos/2024/shoot-A");
    expect(folderFilter("2024", ["/srv/photos/"])).toBe("/srv/photos/2024");
    expect(folderFilter("2024", ["/"])).toBe("/2024");
    // a full path stays as it is; nothing typed is the whole library
    expect(folderFilter("/srv/photos/2023", one)).toBe("/srv/photos/2023");
    expect(folderFilter("", one)).toBe("");
    // with no root known, or several (which one?), it goes as typed (and is refused)
    expect(folderFilter("2024", [])).toBe("2024");
    expect(folderFilter("2024", ["/a", "/b"])).toBe("2024");
  });
  it("with several roots, takes a relative folder under the root picked beside it", () => {
    const two = ["/mnt/nas/Photos", "/mnt/phone/"];
    expect(resolveFolder("2019/Trip", two, "/mnt/nas/Photos")).toEqual({ folder: "/mnt/nas/Photos/2019/Trip" });
    expect(resolveFolder(" ./2019/Trip/ ", two, "/mnt/phone/")).toEqual({ folder: "/mnt/phone/2019/Trip" });
    expect(folderFilter("2019", two, "/mnt/phone/")).toBe("/mnt/phone/2019");
    // nothing typed: the root picked, or the whole library with none picked
    expect(resolveFolder("", two, "/mnt/phone/")).toEqual({ folder: "/mnt/phone" });
    expect(resolveFolder(" ", two, "")).toEqual({ folder: "" });
    // a full path is what it says, whichever root is picked
    expect(resolveFolder("/mnt/nas/Photos/2020", two, "/mnt/phone/")).toEqual({ folder: "/mnt/nas/Photos/2020" });
    // a root no longer listed is no pick
    expect(resolveFolder("2019", two, "/gone")).toHaveProperty("choose");
  });
  it("with several roots, takes a folder that starts with one root's name under it", () => {
    const two = ["/mnt/nas/Photos", "/mnt/phone"];
    expect(resolveFolder("Photos/2019/Trip", two)).toEqual({ folder: "/mnt/nas/Photos/2019/Trip" });
    expect(resolveFolder("phone/", two)).toEqual({ folder: "/mnt/phone" });
    // two roots of that name: which one? asked, as for any other relative folder
    const same = ["/a/Photos", "/b/Photos"];
    const asked = resolveFolder("Photos/2019", same);
    expect(asked).toEqual({
      choose: "\"Photos/2019\" is relative, and the library has 2 folders: pick the one it is in as " +
        "Library folder, or type a full path.",
    });
    expect(resolveFolder("2019/Trip", two)).toHaveProperty("choose");
    // ... and never guessed into a request: the pure filter sends it as typed (refused)
    expect(folderFilter("2019/Trip", two)).toBe("2019/Trip");
    // ... whichever root is picked: the name typed says which
    expect(resolveFolder("Photos/2019", two, "/mnt/phone")).toEqual({ folder: "/mnt/nas/Photos/2019" });
    expect(resolveFolder("phone", two, "/mnt/phone")).toEqual({ folder: "/mnt/phone" });
    // with one root, the root's own name is a folder of it like any other
    expect(resolveFolder("Photos/2019", ["/mnt/nas/Photos"])).toEqual({ folder: "/mnt/nas/Photos/Photos/2019" });
    // with none known, it goes as typed
    expect(resolveFolder("2019", [])).toEqual({ folder: "2019" });
  });
  it("knows which root a folder is in, the picker's choice on a reload", () => {
    const roots = ["/mnt/nas/Photos", "/mnt/nas/Photos2", "/"];
    expect(rootHolding("/mnt/nas/Photos2/2019", roots)).toBe("/mnt/nas/Photos2");
    expect(rootHolding("/mnt/nas/Photos/", roots)).toBe("/mnt/nas/Photos");
    expect(rootHolding("/etc", ["/mnt/nas/Photos"])).toBe("");
    expect(rootHolding("", roots)).toBe("");
  });
  it("knows the library roots the jobs name, each once", () => {
    expect(jobRoots([{ root: "/a" }, { root: null }, { root: "/b" }, { root: "/a" }, {}])).toEqual(["/a", "/b"]);
    expect(jobRoots([])).toEqual([]);
  });
  it("asks for the folder as its bytes, and for nothing else when there is none", () => {
    expect(prefixQuery({ page: 2, size: 50 })).toBe("?page=2&size=50");
    expect(prefixQuery({ path_prefix: "/photos/a b&c", size: 1 })).toBe("?path_prefix=%2Fphotos%2Fa+b%26c&size=1");
    expect(prefixQuery({ path_prefix: "/photos/caf\udce9" })).toBe("?path_prefix=%2Fphotos%2Fcaf%E9");
    expect(prefixQuery({})).toBe("");
    // the Groups page's folder, beside its other filters
    expect(prefixQuery({ type: "raw_jpeg", path_prefix: "/photos/caf\udce9", page: 2 })).toBe(
      "?path_prefix=%2Fphotos%2Fcaf%E9&type=raw_jpeg&page=2");
    expect(prefixQuery({ type: "", path_prefix: "/photos/\ud800" })).toBeNull();
  });
  it("refuses a folder that cannot be a path rather than list the whole library", () => {
    expect(prefixQuery({ path_prefix: "/photos/\ud800", page: 1 })).toBeNull();
  });
});

describe("a folder in the URL", () => {
  it("is kept as its bytes: a name that is not UTF-8 comes back as it was", async () => {
    const { hashQuery, parseQuery } = await import("./hooks");
    const folder = "/photos/caf\udce9/été 1+1";
    const q = hashQuery({ folder, page: "2", empty: "" });
    expect(q).toBe("folder=%2Fphotos%2Fcaf%E9%2F%C3%A9t%C3%A9+1%2B1&page=2");
    expect(parseQuery(q).get("folder")).toBe(folder);
    expect(parseQuery(q).get("page")).toBe("2");
    expect(parseQuery(q).get("empty")).toBeNull();
  });
  it("reads bytes as Python's surrogateescape does", async () => {
    const { unquotePath } = await import("./api");
    expect(unquotePath("%E9t%C3%A9")).toBe("\udce9té");
    expect(unquotePath("%E2%82")).toBe("\udce2\udc82"); // cut short
    expect(unquotePath("%ED%A0%80")).toBe("\udced\udca0\udc80"); // an encoded surrogate
    expect(unquotePath("%F0%9F%93%B7 a+b%zz")).toBe("📷 a b%zz");
  });
  it("may be typed as shown, a byte that is not UTF-8 as \\xNN", () => {
    expect(folderFilter(" /photos/caf\\xe9/ ")).toBe("/photos/caf\udce9");
    expect(folderFilter("/p/a\\x0ab")).toBe("/p/a\nb");
    expect(folderFilter("/p/\\u202egpj")).toBe("/p/\u202egpj");
  });
});

describe("a list that failed to load", () => {
  it("offers no \"Try again\" after a refusal of the request itself, which would come again", () => {
    expect(canRetry(new ApiError(400, "path '/x' is outside the library roots"))).toBe(false);
    expect(canRetry(new ApiError(403, "Forbidden"))).toBe(false);
    expect(canRetry(new ApiError(404, "Not Found"))).toBe(false);
  });
  it("offers it when trying again may help", () => {
    for (const status of [0, 401, 408, 409, 429, 500, 502, 503, 504]) {
      expect(canRetry(new ApiError(status, "x"))).toBe(true);
    }
    expect(canRetry(new Error("network"))).toBe(true);
  });
});

describe("what the page says of its files", () => {
  const intro = () => {
    const html = renderToStaticMarkup(createElement(Problems, { params: { get: () => null }, go: () => {} }));
    return html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
  };
  it("does not claim they are left out of grouping and duplicate detection", () => {
    // a RAW cut short keeps its preview's picture, and is in its intact twin's look-alike
    // group as "the only copy not empty, cut short or corrupt" is kept
    expect(intro()).not.toMatch(/left out of duplicate detection/);
  });
  it("says what becomes of them: grouped and compared on what could be read, never kept over an intact copy", () => {
    const text = intro();
    expect(text).toContain("still joins its file group by its name");
    expect(text).toContain("found as a duplicate by what could be read of it");
    expect(text).toContain("One found at fault (empty, truncated, corrupt, no picture) is never the copy suggested to keep");
    // ... while a read that failed (a permission, an I/O error) says nothing of the file
    expect(text).toContain("one whose last read failed (a permission, an I/O error, a crash) is judged on what its read before found");
    expect(text).toContain("An empty file, or one of which nothing could ever be read, is in no duplicate group");
  });
});
