// The Duplicates page's filters: what its URL keeps (reload and Back show the same list) and
// what it asks the gateway for, a folder beside the kind, status and page.
import { describe, expect, it } from "vitest";
import { prefixQuery } from "./api";
import { hashQuery, parseQuery } from "./hooks";
import {
  duplicatesListKey, duplicatesListParams, duplicatesRoute, duplicatesView, folderFilter, pathInFolder,
} from "./logic";

const viewOf = (qs: string) => duplicatesView(parseQuery(qs));
/** The query the page sends for the URL's query string `qs` */
const sent = (qs: string) => prefixQuery(duplicatesListParams(viewOf(qs)));

describe("the Duplicates page's folder filter", () => {
  it("asks for the groups with a copy in the folder, beside the other filters and the page", () => {
    expect(sent("folder=%2Fphotos%2Fbackup")).toBe("?path_prefix=%2Fphotos%2Fbackup&status=open&page=1&size=20");
    expect(sent("type=exact&status=any&folder=%2Fphotos%2Fbackup&size=50&page=3")).toBe(
      "?path_prefix=%2Fphotos%2Fbackup&type=exact&page=3&size=50");
    // the folder as its bytes: a name that is not UTF-8 is asked for as it is on disk
    expect(sent("folder=%2Fphotos%2Fcaf%E9&status=resolved")).toBe(
      "?path_prefix=%2Fphotos%2Fcaf%E9&status=resolved&page=1&size=20");
  });
  it("asks for the whole library without one", () => {
    expect(sent("")).toBe("?status=open&page=1&size=20");
    expect(sent("folder=&type=perceptual")).toBe("?type=perceptual&status=open&page=1&size=20");
  });
  it("is kept in the URL with the other filters, read back as it was", () => {
    const folder = "/photos/caf\udce9/backup 1+1";
    const v = duplicatesView(parseQuery("type=exact&status=dismissed&size=100&page=2"));
    const q = hashQuery(duplicatesRoute(v, { folder }));
    expect(q).toBe("type=exact&status=dismissed&folder=%2Fphotos%2Fcaf%E9%2Fbackup+1%2B1&size=100");
    expect(viewOf(q)).toEqual({ type: "exact", status: "dismissed", folder, page: 1, size: 100 });
  });
  it("starts from page 1 when the folder changes, as another filter does", () => {
    const v = viewOf("folder=%2Fp%2Fbackup&page=4");
    expect(duplicatesRoute(v, { folder: "/p/card" })).toMatchObject({ folder: "/p/card", page: "" });
    expect(duplicatesRoute(v, { folder: "" })).toMatchObject({ folder: "", page: "" });
    expect(duplicatesRoute(v, { type: "exact" })).toMatchObject({ folder: "/p/backup", page: "" });
  });
  it("is kept by the pager, the page size and the step back from an emptied page", () => {
    const v = viewOf("folder=%2Fp%2Fbackup&status=any&page=4");
    expect(hashQuery(duplicatesRoute(v, { page: "3" }))).toBe("status=any&folder=%2Fp%2Fbackup&page=3");
    expect(hashQuery(duplicatesRoute(v, { size: "50", page: "2" }))).toBe(
      "status=any&folder=%2Fp%2Fbackup&size=50&page=2");
    // the notes and decided groups of one folder's list are not another folder's
    expect(duplicatesListKey(v)).not.toBe(duplicatesListKey(viewOf("folder=%2Fp%2Fcard&status=any&page=4")));
    expect(duplicatesListKey(v, 3)).toBe(duplicatesListKey(viewOf("folder=%2Fp%2Fbackup&status=any&page=3")));
  });
  it("writes no defaults in the URL", () => {
    expect(hashQuery(duplicatesRoute(viewOf("")))).toBe("");
    expect(hashQuery(duplicatesRoute(viewOf("status=open&size=20&page=1")))).toBe("");
  });
  it("takes a folder typed relative to the library under its one root", () => {
    const v = viewOf("type=exact");
    const q = hashQuery(duplicatesRoute(v, { folder: folderFilter("backup/", ["/srv/photos"]) }));
    expect(q).toBe("type=exact&folder=%2Fsrv%2Fphotos%2Fbackup");
    expect(sent(q)).toBe("?path_prefix=%2Fsrv%2Fphotos%2Fbackup&type=exact&status=open&page=1&size=20");
  });
});

describe("a copy in the folder filtered to", () => {
  it("is one in the folder or below it, not in a folder whose name starts the same", () => {
    expect(pathInFolder("/p/backup/a.jpg", "/p/backup")).toBe(true);
    expect(pathInFolder("/p/backup/2019/a.jpg", "/p/backup/")).toBe(true);
    expect(pathInFolder("/p/backup-old/a.jpg", "/p/backup")).toBe(false);
    expect(pathInFolder("/p/card/a.jpg", "/p/backup")).toBe(false);
    expect(pathInFolder("/p/a.jpg", "/")).toBe(true);
    expect(pathInFolder("/p/a.jpg", "")).toBe(false);
  });
});
