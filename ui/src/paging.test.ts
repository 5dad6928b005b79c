// Paging through long lists: the page size the URL keeps, the pager's first/last steps.
import { describe, expect, it } from "vitest";
import {
  carryNotes, DUPLICATE_PAGE_SIZES, notesOf, pageAfterResize, pageFromUrl, pageParam, pageSizeParam, pagerState,
} from "./logic";

describe("the Duplicates page size", () => {
  it("offers up to as many groups as one bulk resolve takes", () => {
    expect(DUPLICATE_PAGE_SIZES).toEqual([20, 50, 100, 200]);
  });
  it("is what the URL asks for when offered, else 20", () => {
    expect(pageSizeParam("50")).toBe(50);
    expect(pageSizeParam("200")).toBe(200);
    expect(pageSizeParam(null)).toBe(20);
    expect(pageSizeParam("")).toBe(20);
    expect(pageSizeParam("500")).toBe(20);
    expect(pageSizeParam("abc")).toBe(20);
  });
  it("keeps the first group shown on the page shown after a change", () => {
    expect(pageAfterResize(1, 20, 200)).toBe(1);
    expect(pageAfterResize(3, 20, 50)).toBe(1); // groups 41-60: 41 is on page 1 of 50
    expect(pageAfterResize(4, 20, 50)).toBe(2); // 61 is on page 2
    expect(pageAfterResize(2, 200, 20)).toBe(11); // 201 is on page 11 of 20
  });
});

describe("the pager", () => {
  it("says page N of M and where First/Previous and Next/Last lead", () => {
    expect(pagerState(1, 20, 45)).toEqual({ page: 1, pages: 3, back: false, forward: true });
    expect(pagerState(2, 20, 45)).toEqual({ page: 2, pages: 3, back: true, forward: true });
    expect(pagerState(3, 20, 45)).toEqual({ page: 3, pages: 3, back: true, forward: false });
    expect(pagerState(1, 20, 0).pages).toBe(1);
    expect(pagerState(1, 20, 20).pages).toBe(1);
    expect(pagerState(1, 20, 21).pages).toBe(2);
  });
  it("leaves the first page out of the URL", () => {
    expect(pageParam(1)).toBe("");
    // the page read back from the URL is a whole number from 1 (the gateway refuses 1.5)
    expect([pageFromUrl("1.5"), pageFromUrl("3.9"), pageFromUrl("2"), pageFromUrl(null)]).toEqual([1, 3, 2, 1]);
    expect([pageFromUrl("0"), pageFromUrl("-2"), pageFromUrl("x"), pageFromUrl("1e400")]).toEqual([1, 1, 1, 1]);
    expect(pageParam(3)).toBe("3");
  });
});

describe("notes across a step back (the last page emptied)", () => {
  it("go first on the page stepped to, in the order they had", () => {
    const carried = carryNotes({ b: { index: 7, text: "b" }, a: { index: 3, text: "a" } });
    expect(carried).toEqual({ a: { index: 0, text: "a" }, b: { index: 1, text: "b" } });
  });
  it("show on the page they were written on and on the page stepped to, not elsewhere", () => {
    const s = { key: "|open|3|20", to: "|open|2|20", byId: { x: { index: 0 } } };
    expect(notesOf(s, "|open|3|20")).toBe(s.byId);
    expect(notesOf(s, "|open|2|20")).toBe(s.byId);
    expect(notesOf(s, "|open|1|20")).toEqual({});
    expect(notesOf({ key: "a", byId: { x: 1 } }, "b")).toEqual({});
  });
});
