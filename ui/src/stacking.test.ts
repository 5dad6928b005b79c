import { describe, expect, it } from "vitest";
import { ApiError, type BulkStackResult, type FileGroup, type StackResult } from "./api";
import {
  bulkDryRun, bulkStackHeadline, bulkStackLine, chunked, coverHint, knownStack, hasStack, NOTHING_TO_STACK, planRows, reasonKind, stackableMembers,
  stackFailure, stackInChunks, stackNotice, stackSummary,
} from "./stacking";

const group = (type: string, members: [string, string, string?][]): FileGroup => ({
  id: "g", type, primary: members[0][0],
  members: members.map(([path, kind, role]) => ({ path, kind, role: role ?? null })),
});

describe("which groups have anything to stack", () => {
  it("a RAW+JPEG pair and an edit do; a photo with only its sidecars does not", () => {
    const pair = group("raw_jpeg", [["/p/IMG_1.JPG", "image", "primary"], ["/p/IMG_1.CR2", "raw", "raw"],
                                    ["/p/IMG_1.xmp", "sidecar", "sidecar"]]);
    expect(stackableMembers(pair).map((m) => m.path)).toEqual(["/p/IMG_1.JPG", "/p/IMG_1.CR2"]);
    expect(hasStack(pair)).toBe(true);
    expect(hasStack(group("sidecar", [["/p/IMG_2.JPG", "image", "primary"], ["/p/IMG_2.xmp", "sidecar", "sidecar"]])))
      .toBe(false);
  });
  it("a Live Photo's video is never stacked (Immich pairs it with its still itself)", () => {
    const live = group("live_photo", [["/p/IMG_3.HEIC", "image", "primary"], ["/p/IMG_3.MOV", "video", "video"]]);
    expect(hasStack(live)).toBe(false);
    // ... nor an edited Live Photo's video, whatever its role
    const edited = group("live_photo", [["/p/IMG_3.HEIC", "image", "primary"], ["/p/IMG_E3.HEIC", "image", "edit"],
                                        ["/p/IMG_E3.MOV", "video", "edit"]]);
    expect(stackableMembers(edited).map((m) => m.path)).toEqual(["/p/IMG_3.HEIC", "/p/IMG_E3.HEIC"]);
  });
});

const members = [
  { path: "/p/IMG_1.JPG", assetId: "a1", stackId: null },
  { path: "/p/IMG_1.CR2", assetId: "a2", stackId: null },
];

describe("what a stack says", () => {
  it("names the photos and the cover once stacked", () => {
    const r: StackResult = { id: "g", primary: "/p/IMG_1.JPG", members, outcome: "stacked", created: true,
                             assetIds: ["a1", "a2"], stackId: "s1" };
    expect(stackNotice(r)).toBe("Stacked in Immich: 2 photos, cover IMG_1.JPG.");
  });
  it("says a group stacked already is, counting the photos in its stack", () => {
    const r: StackResult = { id: "g", primary: "/p/IMG_1.JPG", outcome: "stacked", created: false, stackId: "s1",
                             members: members.map((m) => ({ ...m, stackId: "s1" })) };
    expect(stackNotice(r)).toBe("Already stacked in Immich: 2 photos.");
  });
  it("gives the reason it was not stacked", () => {
    const why = "fewer than two of its photos are in Immich for you (a sidecar is not an Immich asset)";
    expect(stackNotice({ id: "g", outcome: "skip", reason: why })).toBe(`Not stacked: ${why}.`);
    expect(stackFailure(new ApiError(409, why))).toEqual({ text: `Not stacked: ${why}.`, reload: false });
    // ... a real run refused because its dry run no longer holds, in the gateway's words
    expect(stackFailure(new ApiError(409, "this group changed since its dry run: look at it again")).text)
      .toBe("Not stacked: this group changed since its dry run: look at it again.");
  });
  it("names as cover the one Immich keeps when a stack of part of the group grows", () => {
    const grown: StackResult = { id: "g", primary: "/p/IMG_1.JPG", outcome: "stacked", created: true,
                                 stackId: "s2", assetIds: ["a2", "a1", "a3"],
                                 members: [...members, { path: "/p/IMG_1-edited.JPG", assetId: "a3", stackId: null }] };
    expect(stackNotice(grown)).toBe("Stacked in Immich: 3 photos, cover IMG_1.CR2.");
  });
  it("says when Immich stacked photos outside the group too", () => {
    const r: StackResult = { id: "g", primary: "/p/IMG_1.JPG", members, outcome: "stacked", created: true,
                             assetIds: ["a1", "a2"], outside: ["x"],
                             message: "Immich also stacked 1 photo(s) outside this group (a stack made in Immich meanwhile): look at the stack in Immich" };
    expect(stackNotice(r)).toBe("Stacked in Immich: 2 photos, cover IMG_1.JPG. Immich also stacked 1 photo(s) " +
      "outside this group (a stack made in Immich meanwhile): look at the stack in Immich.");
  });
  it("does not call a failure that may have stacked 'not stacked'", () => {
    const f = stackFailure(new ApiError(502, "Immich did not answer; Immich may have stacked them: look again"));
    expect(f.text).toBe("Stacking failed: Immich did not answer; Immich may have stacked them: look again.");
    // a group gone since the page was read: the list is read again
    expect(stackFailure(new ApiError(404, "no group g")).reload).toBe(true);
  });
});

describe("a bulk stack in chunks", () => {
  const ids = Array.from({ length: 450 }, (_, i) => `g${i}`);
  const ok = (chunk: string[]): BulkStackResult => ({
    dryRun: true, succeeded: chunk.length, failed: 0,
    results: chunk.map((id) => ({ id, status: 200, outcome: "stack", assetIds: ["a", "b"] })),
  });

  it("sends at most 200 groups a request, each once, in order", async () => {
    const sent: string[][] = [];
    const run = await stackInChunks(ids, async (chunk) => { sent.push(chunk); return ok(chunk); });
    expect(sent.map((c) => c.length)).toEqual([200, 200, 50]);
    expect(sent.flat()).toEqual(ids);
    expect(run.results.map((r) => r.id)).toEqual(ids);
    expect(chunked([1, 2, 3], 2)).toEqual([[1, 2], [3]]);
  });

  it("a chunk that fails hides none of the others' results", async () => {
    let n = 0;
    const progress: number[] = [];
    const run = await stackInChunks(ids, async (chunk) => {
      n += 1;
      if (n === 2) throw new ApiError(504, "the gateway timed out");
      return ok(chunk);
    }, { onProgress: (done) => progress.push(done) });
    expect(run.results).toHaveLength(450);
    expect(run.results.filter((r) => r.status === 200)).toHaveLength(250);
    const failed = run.results.filter((r) => r.status === 504);
    expect(failed.map((r) => r.id)).toEqual(ids.slice(200, 400));
    expect(failed[0]).toMatchObject({ message: "the gateway timed out", chunkFailed: true });
    expect(progress).toEqual([200, 400, 450]);
    const s = stackSummary(run);
    expect(s.stack).toHaveLength(250);
    expect(s.failed).toEqual([{ message: "the gateway timed out", ids: ids.slice(200, 400) }]);
  });

  it("sends nothing more once stopped", async () => {
    let calls = 0;
    const run = await stackInChunks(ids, async (chunk) => { calls += 1; return ok(chunk); },
                                    { stopped: () => calls >= 1 });
    expect(calls).toBe(1);
    expect(run.notAsked).toEqual(ids.slice(200));
    // ... and the chunk in flight when Stop came was sent all the same: the report says so
    expect(run.stoppedLate).toBe(200);
    expect(bulkStackHeadline(stackSummary({ ...run, results: run.results.map((r) => ({ ...r, outcome: "stacked", created: true })) }), false))
      .toBe("Stacked 200 groups in Immich, 0 already stacked, 0 not stacked, 250 groups not asked (stopped). " +
        "Stop came too late for the 200 groups already sent: they were carried out all the same.");
  });

  it("a Stop during the last chunk of the real run is said, though nothing was left to hold back", async () => {
    let stop = false;
    const run = await stackInChunks(ids.slice(0, 3), async (chunk) => { stop = true; return ok(chunk); },
                                    { stopped: () => stop });
    expect(run.notAsked).toEqual([]);
    expect(run.stoppedLate).toBe(3);
    const unstopped = await stackInChunks(ids.slice(0, 3), async (chunk) => ok(chunk), { stopped: () => false });
    expect(unstopped.stoppedLate).toBeUndefined();
  });

  it("a dry run stopped during its only chunk (or after the list was read) opens no confirmation", async () => {
    const pair = (id: string): FileGroup => ({ ...group("raw_jpeg", [[`/p/${id}.JPG`, "image"], [`/p/${id}.CR2`, "raw"]]), id });
    const groups = [pair("a"), pair("b")];
    let stop = false;
    const stopped = await bulkDryRun(async () => groups, async (chunk) => { stop = true; return ok(chunk); },
                                     { stopped: () => stop });
    expect(stopped.kind).toBe("stopped");
    // Stop pressed while the list was read, the last page in flight: nothing is asked
    let asked = 0;
    stop = false;
    const early = await bulkDryRun(async () => { stop = true; return groups; },
                                   async (chunk) => { asked += 1; return ok(chunk); }, { stopped: () => stop });
    expect([early.kind, asked]).toEqual(["stopped", 0]);
    // ... and not stopped, the confirmation has what it found
    const ready = await bulkDryRun(async () => [...groups, group("sidecar", [["/p/c.JPG", "image"], ["/p/c.xmp", "sidecar"]])],
                                   async (chunk) => ok(chunk), { stopped: () => false });
    expect(ready.kind).toBe("ready");
    if (ready.kind === "ready") {
      expect(ready.summary.stack.map((r) => r.id)).toEqual(["a", "b"]);
      expect(ready.nothing).toEqual(["g"]);
    }
  });
});

describe("a bulk stack's dry run, counted", () => {
  const run = {
    notAsked: [],
    results: [
      { id: "a", status: 200, outcome: "stack", assetIds: ["1", "2"], primary: "/p/A.JPG" },
      { id: "b", status: 200, outcome: "stacked", created: false, stackId: "s" },
      { id: "c", status: 409, outcome: "skip", reason: "its cover /p/C.JPG is not in Immich for you (not indexed yet, or another user's): stacked now, another photo would be the cover" },
      { id: "d", status: 409, outcome: "skip", reason: "its cover /p/D.JPG is not in Immich for you (not indexed yet, or another user's): stacked now, another photo would be the cover" },
      { id: "e", status: 409, outcome: "skip", reason: "/p/E.CR2 is in an Immich stack that also holds 3 photo(s) outside this group: unstack it in Immich first" },
      { id: "f", status: 404, message: "no group f" },
    ] as StackResult[],
  };

  it("groups skips by the gateway's code when it gives one, whatever the words", () => {
    const coded = {
      notAsked: [],
      results: [
        { id: "g", status: 409, outcome: "skip", reasonCode: "cover_hidden", reason: "its cover /p/G.JPG is archived…" },
        { id: "h", status: 409, outcome: "skip", reasonCode: "cover_hidden", reason: "reworded by a newer gateway" },
        { id: "i", status: 409, outcome: "skip", reasonCode: "something_new", reason: "a reason the UI has no words for" },
      ] as StackResult[],
    };
    expect(stackSummary(coded).skipped).toEqual([
      { reason: "its cover is archived or hidden in Immich (unarchive it first)", ids: ["g", "h"] },
      { reason: "a reason the UI has no words for", ids: ["i"] },
    ]);
  });

  it("would stack, already stacked, and the skipped grouped by reason (not by file)", () => {
    const s = stackSummary(run, ["x", "y"]);
    expect(s.stack.map((r) => r.id)).toEqual(["a"]);
    expect(s.already.map((r) => r.id)).toEqual(["b"]);
    const tooFew = reasonKind("", "too_few");
    expect(s.skipped).toEqual([
      { reason: tooFew, ids: ["x", "y"] },
      { reason: "its cover is not in Immich for you (not indexed yet, or another user's)", ids: ["c", "d"] },
      { reason: reasonKind(run.results[4].reason!), ids: ["e"] },
    ]);
    expect(s.failed).toEqual([{ message: "no group f", ids: ["f"] }]);
    expect(bulkStackHeadline(s, true))
      .toBe("Dry run: would stack 1 group, 1 already stacked, 5 not stacked, 1 group could not be asked.");
  });

  it("counts the groups not sent and those the gateway found too few photos in as one reason", () => {
    const few = {
      notAsked: [],
      results: [
        { id: "p", status: 409, outcome: "skip", reasonCode: "too_few", reason: "fewer than two of its photos are in Immich's timeline for you (…)" },
        { id: "q", status: 409, outcome: "skip", reason: "fewer than two of its photos are in Immich's timeline for you (an older gateway, no code)" },
      ] as StackResult[],
    };
    const s = stackSummary(few, ["x"]);
    expect(s.skipped).toHaveLength(1);
    expect(s.skipped[0].ids).toEqual(["x", "p", "q"]);
    expect(s.skipped[0].reason).toMatch(/^fewer than two of its photos are in Immich's timeline for you/);
    // each group's own line still says why in its own words
    expect(bulkStackLine({ id: "x" } as StackResult, true)).not.toBe(NOTHING_TO_STACK);
  });

  it("after the real run, counts what this run stacked apart from what already was", () => {
    const real = { notAsked: [], results: [
      { id: "a", status: 200, outcome: "stacked", created: true, assetIds: ["1", "2"], primary: "/p/A.JPG",
        members: [{ path: "/p/A.JPG", assetId: "1", stackId: null }, { path: "/p/A.CR2", assetId: "2", stackId: null }] },
      { id: "b", status: 200, outcome: "stacked", created: false, stackId: "s" },
    ] as StackResult[] };
    const s = stackSummary(real);
    expect(bulkStackHeadline(s, false)).toBe("Stacked 1 group in Immich, 1 already stacked, 0 not stacked.");
    expect(bulkStackLine(real.results[0], false)).toBe("Stacked in Immich: 2 photos, cover A.JPG.");
    expect(bulkStackLine(run.results[5], true)).toBe("Could not be asked: no group f.");
    expect(bulkStackLine({ id: "z", status: 0, message: "Cannot reach the Twinlens gateway (x): the action may have happened: reload to see." }, false))
      .toBe("Stacking failed: Cannot reach the Twinlens gateway (x): the action may have happened: reload to see.");
  });
});

describe("a single group's stack dialog", () => {
  const g = group("edited", [["/p/IMG_0330.JPG", "image", "primary"], ["/p/IMG_0330.CR2", "raw", "raw"],
                             ["/p/IMG_E0330.JPG", "image", "edit"], ["/p/IMG_0330.AAE", "sidecar", "sidecar"]]);
  it("tags from the plan's assetIds: an archived photo with its asset id is left where it is", () => {
    // The gateway's dry run lists the archived edit with its asset id, not in assetIds
    const plan: StackResult = {
      id: "g", primary: "/p/IMG_0330.JPG", outcome: "stack", assetIds: ["a1", "a2"],
      members: [{ path: "/p/IMG_0330.JPG", assetId: "a1", stackId: null },
                { path: "/p/IMG_0330.CR2", assetId: "a2", stackId: null },
                { path: "/p/IMG_E0330.JPG", assetId: "a3", stackId: null }],
    };
    expect(planRows(plan, g).map((r) => [r.path.slice(3), r.tag, r.stacked])).toEqual([
      ["IMG_0330.JPG", "cover", true],
      ["IMG_0330.CR2", "stacked", true],
      ["IMG_E0330.JPG", "left where it is (archived or hidden in Immich)", false],
      ["IMG_0330.AAE", "sidecar: as it is", false],
    ]);
  });
  it("names the cover by the first asset sent, and a photo with no asset not in Immich", () => {
    const plan: StackResult = {
      id: "g", primary: "/p/IMG_0330.JPG", outcome: "stack", assetIds: ["a2", "a1"],
      members: [{ path: "/p/IMG_0330.JPG", assetId: "a1", stackId: null },
                { path: "/p/IMG_0330.CR2", assetId: "a2", stackId: "s" },
                { path: "/p/IMG_E0330.JPG", assetId: null, stackId: null }],
    };
    expect(planRows(plan, g).map((r) => [r.tag, r.left])).toEqual([
      ["stacked", undefined], ["cover", undefined], ["not in Immich: left out", "absent"], ["sidecar: as it is", undefined],
    ]);
  });
});

describe("the cover Immich has, after a stack result", () => {
  // The user's stack of the CR2 and the JPEG (the CR2 its cover) grew to take in the edit
  const grownPlan: StackResult = {
    id: "g", primary: "/p/IMG_0330.JPG", outcome: "stack", assetIds: ["a2", "a1", "a3"],
    members: [{ path: "/p/IMG_0330.JPG", assetId: "a1", stackId: "s0" }, { path: "/p/IMG_0330.CR2", assetId: "a2", stackId: "s0" },
              { path: "/p/IMG_E0330.JPG", assetId: "a3", stackId: null }],
  };
  const grown: StackResult = { ...grownPlan, outcome: "stacked", created: true, stackId: "s1" };
  const again: StackResult = {
    id: "g", primary: "/p/IMG_0330.JPG", outcome: "stacked", created: false, stackId: "s1",
    members: grownPlan.members!.map((m) => ({ ...m, stackId: "s1" })),
  };
  it("names the first photo sent, not the group's primary, beside the button and in the note", () => {
    expect(coverHint("/p/IMG_0330.JPG")).toBe("cover IMG_0330.JPG");
    const planned = knownStack(grownPlan);
    expect(coverHint("/p/IMG_0330.JPG", planned)).toBe("cover IMG_0330.CR2");
    const made = knownStack(grown, planned);
    expect(made).toEqual({ stackId: "s1", cover: "/p/IMG_0330.CR2" });
    expect(coverHint("/p/IMG_0330.JPG", made)).toBe("stacked in Immich, cover IMG_0330.CR2");
    expect(stackNotice(grown, planned)).toBe("Stacked in Immich: 3 photos, cover IMG_0330.CR2.");
    // asked again: the stack this page saw made, its cover named again
    expect(stackNotice(again, made)).toBe("Already stacked in Immich: 3 photos, cover IMG_0330.CR2.");
  });
  it("claims no cover for a stack found made, whose cover the answer does not say", () => {
    expect(stackNotice(again)).toBe("Already stacked in Immich: 3 photos.");
    const found = knownStack(again);
    expect(found).toEqual({ stackId: "s1", cover: null });
    expect(coverHint("/p/IMG_0330.JPG", found)).toBe("stacked in Immich");
    // ... nor one remembered of another stack (unstacked and stacked again in Immich)
    expect(stackNotice({ ...again, stackId: "s9", members: again.members!.map((m) => ({ ...m, stackId: "s9" })) },
                       { stackId: "s1", cover: "/p/IMG_0330.CR2" })).toBe("Already stacked in Immich: 3 photos.");
    // ... and a failure or a skip leaves what was known as it was
    expect(knownStack({ id: "g", status: 502, message: "x" }, found)).toBe(found);
  });
  it("names the cover the gateway says Immich has, for a stack found made too", () => {
    const told: StackResult = { ...again, coverAssetId: "a2" };
    expect(knownStack(told)).toEqual({ stackId: "s1", cover: "/p/IMG_0330.CR2" });
    expect(stackNotice(told)).toBe("Already stacked in Immich: 3 photos, cover IMG_0330.CR2.");
  });
});
