// Drives the system Chromium through the Twinlens UI and prints what it saw as JSON.
//   node drive.mjs local  BASE_URL SHOT_DIR [--scan]   local mode: review, "Not duplicates"
//   node drive.mjs immich BASE_URL SHOT_DIR API_KEY    Immich mode: log in with a key, trash
//   node drive.mjs immich-undo BASE_URL SHOT_DIR API_KEY DUP_ID   ... undo that decision
//   node drive.mjs immich-user BASE_URL SHOT_DIR API_KEY   an ordinary Immich user: told why not
//   node drive.mjs immich-bulk BASE_URL SHOT_DIR API_KEY   "Accept all suggestions" with a pick,
//     while another reviewer decides one of the groups
//   node drive.mjs immich-refused BASE_URL SHOT_DIR API_KEY   a confirm Immich refuses
//   node drive.mjs immich-in-trash BASE_URL SHOT_DIR API_KEY DUP_ID   a group whose other copy
//     is in Immich's trash already: shown so, and resolved by recording the decision
//   node drive.mjs local-recovery BASE_URL SHOT_DIR   local mode: an action's outcome in its
//     card, a lost connection, a group decided elsewhere, lists that fail to load, no
//     gateway at start-up
//   node drive.mjs overview BASE_URL SHOT_DIR   the Overview's last scans, as shown
//   node drive.mjs corrections BASE_URL SHOT_DIR SPLIT_PATH MERGE_A MERGE_B UNDO_ID
//     local mode: split SPLIT_PATH off its group, merge the groups of MERGE_A and MERGE_B
//     (in that order), undo the decision on duplicate group UNDO_ID
//   node drive.mjs problems BASE_URL SHOT_DIR LIBRARY   the Overview's "N files with problems",
//     the Files with problems page, its folder filter, a folder without any
//   node drive.mjs problems-bytes BASE_URL SHOT_DIR SHOWN_FOLDER   "only this folder" on a
//     folder whose name is not UTF-8 (shown as SHOWN_FOLDER, \xNN), then that folder typed
//   node drive.mjs problems-none BASE_URL SHOT_DIR   that page once every file reads well
//   node drive.mjs paging BASE_URL SHOT_DIR   many duplicate groups: first/last page, page size
//   node drive.mjs immich-lazy BASE_URL SHOT_DIR API_KEY   a short window with an API key:
//     thumbnails are fetched as they come near the viewport, not all at once
//   node drive.mjs overview-capped BASE_URL SHOT_DIR   a scan that failed more files than the
//     1,000 the API lists (its count raised on the way to the page)
//   node drive.mjs no-roots BASE_URL SHOT_DIR   "Scan now" with no library root configured
//   node drive.mjs regroup-gone BASE_URL SHOT_DIR PATH GONE   dissolve the group of PATH,
//     delete its file GONE and rescan, then "Undo dissolve": refused, the rest put back
//   node drive.mjs immich-502 BASE_URL SHOT_DIR API_KEY   a confirm answered 502 after the
//     decision was recorded: the note offers its Undo, which reopens the group
//   node drive.mjs step-back BASE_URL SHOT_DIR   the last page's one group decided: the list
//     steps back a page, the note first on it, with the keyboard; Back after that step (and
//     after one from a bookmark beyond the last page) leaves the list
//   node drive.mjs regroup BASE_URL SHOT_DIR PATH   dissolve the group of PATH, then "Undo
//     dissolve" in its note
//   node drive.mjs immich-escaped BASE_URL SHOT_DIR API_KEY   a copy whose name holds a bidi
//     override: its card and the trash dry runs (it going, then it kept), as shown
//   node drive.mjs immich-dialog-focus BASE_URL SHOT_DIR API_KEY   the trash dry run's dialog
//     closed by Escape, then by Cancel: where the keyboard is then
//   node drive.mjs layout BASE_URL SHOT_DIR   a very long file name on the Duplicates page,
//     then every page at a phone's width: how far each reaches past the window, and a
//     dialog naming that file
//   node drive.mjs duplicates-folder BASE_URL SHOT_DIR LIBRARY   the Duplicates page's folder
//     filter (LIBRARY/backup typed relative to the library) with its pager, a reload, Back,
//     the status filter, the whole library again, a folder outside the library
//   node drive.mjs roots-fresh BASE_URL SHOT_DIR ROOT_A ROOT_B   two library roots, nothing
//     scanned (no job names them): the picker beside Folder, a relative folder with none
//     picked (asked which), then a root picked
//   node drive.mjs roots-overview BASE_URL SHOT_DIR ROOT_A ROOT_B   the Overview narrowed to
//     a folder of ROOT_B (typed as its name and a folder): its figures, then Review, Browse
//     and the Files with problems link, each opening that folder's list
//   node drive.mjs immich-folder-bulk BASE_URL SHOT_DIR API_KEY LIBRARY   "Accept all
//     suggestions on this page" on the groups with a copy in LIBRARY/backup, one of them
//     keeping its backup copy
//   node drive.mjs immich-stack BASE_URL SHOT_DIR API_KEY PATH   "Stack in Immich" on the group
//     of PATH (its dialog closed by Escape, then confirmed, then asked again), then "Stack all
//     shown groups in Immich" on the groups of the library's shoot/ folder (its dialog left
//     by Back first, then asked again and confirmed), at a phone's width
// The pytest side (test_ui.py) asserts on this JSON and on the backend's state.
import { unlinkSync } from "node:fs";
import { chromium } from "playwright-core";

const [scenario, base, shotDir = "/tmp", ...rest] = process.argv.slice(2);
const executablePath = process.env.TWINLENS_CHROMIUM || "/usr/bin/chromium";
const out = { console: [], shots: [] };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(15000);
page.on("console", (m) => m.type() === "error" && out.console.push(m.text()));
page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));

const shot = async (name) => {
  const path = `${shotDir}/twinlens-e2e-${name}.png`;
  await page.screenshot({ path, fullPage: true });
  out.shots.push(path);
};

const groupsOnPage = () =>
  page.$$eval("li.dup", (lis) =>
    lis.map((li) => ({
      id: li.dataset.id,
      type: li.dataset.type,
      files: [...li.querySelectorAll(".member .filename")].map((e) => e.textContent),
      kept: [...li.querySelectorAll(".member.kept .filename")].map((e) => e.textContent),
      suggested: [...li.querySelectorAll(".member.suggested .filename")].map((e) => e.textContent),
      thumbsLoaded: [...li.querySelectorAll(".thumb img")]
        .filter((i) => i.complete && i.naturalWidth > 0).length,
      trashDisabled: li.querySelector("button.danger")?.disabled ?? null,
    })),
  );

// Whether leaving the page now asks first (a beforeunload handler cancels the event)
const leaveWarns = () => page.evaluate(() => {
  const e = new Event("beforeunload", { cancelable: true });
  window.dispatchEvent(e);
  return e.defaultPrevented;
});

// Holds the next real (not dry-run) POST to `path` until released: a bulk run under way
async function holdRealPost(path) {
  let release;
  const held = new Promise((r) => { release = r; });
  let arrive;
  const arrived = new Promise((r) => { arrive = r; });
  const match = (url) => new URL(url).pathname === path;
  await page.route(match, async (route) => {
    if (JSON.parse(route.request().postData() || "{}").dryRun === false) {
      arrive();
      await held;
    }
    await route.continue();
  });
  return { arrived, release: async () => release() };
}

async function waitForDuplicates() {
  await page.locator("li.dup, .empty").first().waitFor();
  // Thumbnails load lazily: wait for those of the first group (in view) to settle.
  await page.waitForFunction(() => {
    const first = document.querySelector("li.dup");
    if (!first) return true;
    const imgs = [...first.querySelectorAll(".thumb img")];
    return first.querySelectorAll(".thumb").length > 0 && imgs.every((i) => i.complete);
  });
}

async function local(flags) {
  // Overview: stats, then (optionally) a full rescan through the button, watched to the end.
  await page.goto(`${base}/#/overview`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator(".card .figure").first().waitFor();
  out.overview = {
    cards: await page.$$eval(".card", (cs) => cs.map((c) => c.innerText.replace(/\s+/g, " ").trim())),
  };
  if (flags.includes("--scan")) {
    // A full rescan re-reads every file, so the unreadable ones are reported again.
    // The library's first scan is already shown as the last one: wait for the new one.
    const before = await page.locator(".job.last").getAttribute("data-job-id", { timeout: 5000 })
      .catch(() => null);
    await page.getByLabel("Re-read every file (full rescan)").check();
    await page.getByRole("button", { name: "Scan now" }).click();
    await page.waitForFunction((old) => {
      const last = document.querySelector(".job.last");
      return last !== null && last.getAttribute("data-job-id") !== old &&
        /Last scan (done|failed|cancelled)/.test(last.textContent ?? "");
    }, before, { timeout: 60000 });
    // Follow-up grouping/dedup passes too: no progress bars left.
    await page.waitForFunction(() => document.querySelectorAll(".job:not(.last)").length === 0,
                               null, { timeout: 60000 });
    out.overview.lastScan = (await page.locator(".job.last").innerText()).replace(/\s+/g, " ");
    // The figures follow the scan without a reload (the test changed the library first).
    await page.waitForFunction((cards) =>
      [...document.querySelectorAll(".card")].some((c, i) =>
        c.innerText.replace(/\s+/g, " ").trim() !== cards[i]),
    out.overview.cards, { timeout: 10000 }).catch(() => null);
    out.overview.cardsAfterScan = await page.$$eval(".card", (cs) =>
      cs.map((c) => c.innerText.replace(/\s+/g, " ").trim()));
    out.overview.failedFiles = await page.$$eval(".errors tbody tr", (rows) =>
      rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
  }
  await shot("overview");

  await page.getByRole("link", { name: "Duplicates" }).click();
  await waitForDuplicates();
  out.before = await groupsOnPage();
  await shot("duplicates");

  // Resolve the look-alike group as "not duplicates"; it must leave the open list.
  const target = out.before.find((g) => g.type === "perceptual") ?? out.before[0];
  out.dismissed = target.id;
  const card = page.locator(`li.dup[data-id="${target.id}"]`);
  await card.getByRole("button", { name: "Not duplicates" }).click();
  await card.waitFor({ state: "detached" });
  await page.locator(".notice.ok").waitFor();
  out.message = await page.locator(".notice.ok").innerText();
  await page.reload();
  await waitForDuplicates();
  out.after = await groupsOnPage();

  // ... and is listed under "Not duplicates".
  await page.getByLabel("Status").selectOption("dismissed");
  await page.locator(`li.dup[data-id="${target.id}"]`).waitFor();
  out.dismissedListed = true;
  await shot("dismissed");

  // Under "Any", a group decided there stays listed, with its new status and its Undo.
  await page.getByLabel("Status").selectOption("any");
  const other = page.locator(`li.dup[data-id="${out.before.find((g) => g.id !== target.id).id}"]`);
  await other.getByRole("button", { name: "Not duplicates" }).click();
  await page.locator(".notice.ok").waitFor();
  await other.locator(".badge").waitFor();
  out.any = {
    listed: await other.count(),
    badge: await other.locator(".badge").innerText(),
    undo: await other.getByRole("button", { name: "Undo decision" }).count(),
    // "not duplicates" keeps every copy: none is shown as kept or going
    kept: await other.locator(".member.kept").count(),
    goes: await other.locator(".member.goes").count(),
  };

  await page.getByRole("link", { name: "Groups" }).click();
  await page.getByRole("heading", { name: "Groups" }).waitFor();
  await page.locator("li.grp, .empty").first().waitFor();
  await page.waitForFunction(() =>
    [...document.querySelectorAll("li.grp .thumb img")].every((i) => i.complete));
  out.groups = await page.$$eval("li.grp", (lis) => lis.map((li) => li.querySelector("h2").textContent));
  out.groupThumbsLoaded = await page.$$eval("li.grp .thumb img", (imgs) =>
    imgs.filter((i) => i.naturalWidth > 0).length);
  await shot("groups");
}

const filesOfGroups = () =>
  page.$$eval("li.grp", (lis) =>
    lis.map((li) => ({
      id: li.dataset.id,
      type: li.dataset.type,
      paths: [...li.querySelectorAll("tr[data-path]")].map((tr) => tr.dataset.path),
    })),
  );

async function waitForGroups() {
  await page.locator("li.grp, .empty").first().waitFor();
}

// The group (li) that lists `path` among its members.
const groupOf = (path) =>
  page.locator("li.grp").filter({ has: page.locator(`tr[data-path="${path}"]`) });

const dialogText = async (dialog) => (await dialog.innerText()).replace(/\s+/g, " ");

// The JSON bodies the page POSTs to the resolve endpoints, in order.
function recordResolves() {
  const bodies = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && /\/api\/twinlens\/duplicates\/(.+\/)?resolve$/.test(new URL(r.url()).pathname)) {
      bodies.push(JSON.parse(r.postData() || "{}"));
    }
  });
  return bodies;
}

// Open the page at `hash` and log in with an API key (the caller waits for what follows).
async function logInWithKey(key, hash = "#/duplicates") {
  await page.goto(`${base}/${hash}`);
  await page.getByRole("button", { name: "Use an API key" }).click();
  await page.getByLabel("Immich API key").fill(key);
  await page.getByRole("button", { name: "Save" }).click();
}

// Keep the copy of this group that is NOT the suggestion; returns its dir/name.
async function pickTheOtherCopy(card) {
  const other = card.locator(".member:not(.suggested)").first();
  const kept = `${await other.locator(".dir").innerText()}/${await other.locator(".filename").innerText()}`;
  await other.getByRole("radio").check();
  return kept;
}

async function corrections([splitPath, mergeA, mergeB, undoId]) {
  await page.goto(`${base}/#/groups`);
  await page.getByRole("heading", { name: "Groups" }).waitFor();
  await waitForGroups();
  out.groupsBefore = await filesOfGroups();
  await shot("groups-before");

  // Folder filter: only the groups with a file in the split file's folder, then the whole
  // library again (the list is read afresh each time: wait until it says so)
  const folder = splitPath.slice(0, splitPath.lastIndexOf("/"));
  const none = folder.replace(/\/2024\/trip$/, "/backup"); // copies only, no groups
  await page.getByLabel("Folder").fill(none);
  await page.getByRole("button", { name: "Show" }).click();
  const empty = page.locator("p.empty");
  await empty.waitFor({ timeout: 10000 }).catch(() => null);
  const emptyText = (await empty.count()) ? await empty.innerText() : null;
  await page.getByLabel("Folder").fill(folder);
  await page.getByRole("button", { name: "Show" }).click();
  await page.waitForFunction((f) => {
    const lis = [...document.querySelectorAll("li.grp")];
    return lis.length > 0 && lis.every((li) =>
      [...li.querySelectorAll("tr[data-path]")].some((tr) => tr.dataset.path.startsWith(f + "/")));
  }, folder, { timeout: 10000 }).catch(() => null);
  out.folderFilter = { folder, none, emptyText, url: page.url(), groups: await filesOfGroups() };
  await page.getByRole("button", { name: "Whole library" }).click();
  await page.waitForFunction((n) => document.querySelectorAll("li.grp").length === n,
    out.groupsBefore.length, { timeout: 10000 }).catch(() => null);
  out.folderFilter.whole = await filesOfGroups();

  // Split: pick one member; the buttons follow the pick.
  const grp = groupOf(splitPath);
  const split = grp.getByRole("button", { name: /^Split off selected/ });
  out.split = { disabledBeforePick: await split.isDisabled() };
  await grp.locator(`tr[data-path="${splitPath}"]`).getByRole("checkbox").check();
  out.split.enabledAfterPick = await split.isEnabled();
  out.split.dissolveEnabled = await grp.getByRole("button", { name: "Dissolve group" }).isEnabled();
  await split.click();
  let dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.split.dialog = await dialogText(dialog);
  await shot("split-dialog");
  const splitId = await grp.getAttribute("data-id");
  await dialog.getByRole("button", { name: "Split off 1 file" }).click();
  await dialog.waitFor({ state: "hidden" });
  // Said in the group's own card (or where it was, if the split ended it), focused
  out.split.notice = await page.locator(`ol.group-list > li[data-id="${splitId}"] .notice.ok`).innerText();
  out.split.focused = (await page.evaluate(() => document.activeElement?.dataset?.id)) === splitId;
  // Reloaded: the file is on its own, so no group lists it any more.
  await page.locator(`tr[data-path="${splitPath}"]`).waitFor({ state: "detached" });
  out.groupsAfterSplit = await filesOfGroups();
  // The backend's groups at this point (the merge below changes them again), straight from
  // the gateway's API rather than the page.
  out.split.backend = await page.evaluate(async () => {
    const r = await fetch("/api/twinlens/groups?size=1000", { headers: { Accept: "application/json" } });
    const body = await r.json();
    return body.items.map((g) => ({ id: g.id, type: g.type, paths: g.members.map((m) => m.path) }));
  });
  await shot("split");

  // Merge: pick two groups for the merge, A first (its primary becomes the merged one's).
  for (const p of [mergeA, mergeB]) {
    await groupOf(p).getByRole("checkbox", { name: "Select for merge", exact: true }).check();
  }
  const toolbar = page.getByRole("toolbar", { name: "Merge groups" });
  out.merge = { toolbar: (await toolbar.innerText()).replace(/\s+/g, " ") };
  await toolbar.getByRole("button", { name: "Merge 2 groups" }).click();
  dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.merge.dialog = await dialogText(dialog);
  await shot("merge-dialog");
  await dialog.getByRole("button", { name: "Merge 2 groups" }).click();
  await dialog.waitFor({ state: "hidden" });
  await page.locator('li.grp[data-type="manual"]').waitFor();
  // Said in the merged group's card
  out.merge.notice = await page.locator('li.grp[data-type="manual"] .notice.ok').innerText();
  out.groupsAfterMerge = await filesOfGroups();
  out.merge.toolbarGone = (await toolbar.count()) === 0;
  await shot("merged");

  // Undo a "Not duplicates" decision: listed under that status, with a dry run first.
  await page.getByRole("link", { name: "Duplicates" }).click();
  await waitForDuplicates();
  await page.getByLabel("Status").selectOption("dismissed");
  const card = page.locator(`li.dup[data-id="${undoId}"]`);
  await card.waitFor();
  await card.getByRole("button", { name: "Undo decision" }).click();
  dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.undo = { dialog: await dialogText(dialog) };
  await shot("undo-dialog");
  await dialog.getByRole("button", { name: "Undo decision" }).click();
  await card.waitFor({ state: "detached" });
  out.undo.notice = await page.locator(".notice.ok").innerText();
  // The list is read again: its count says the group has left "Not duplicates".
  const count = page.locator("form span.muted[role=status]");
  await page.waitForFunction(() =>
    document.querySelector("form span.muted[role=status]")?.textContent === "0 groups",
  null, { timeout: 10000 }).catch(() => null);
  out.undo.countAfter = await count.innerText();
  await page.getByLabel("Status").selectOption("open");
  await card.waitFor();
  out.undo.listedOpen = true;
  out.undo.undoButtonsOnOpen = await card.getByRole("button", { name: "Undo decision" }).count();
  await shot("undone");
}

async function immich([key]) {
  await page.goto(`${base}/#/duplicates`);
  await page.getByRole("heading", { name: "Log in to Immich" }).waitFor();
  out.loginShown = true;
  await shot("login");
  await page.getByRole("button", { name: "Use an API key" }).click();
  await page.getByLabel("Immich API key").fill(key);
  await page.getByRole("button", { name: "Save" }).click();
  await waitForDuplicates();
  out.before = await groupsOnPage();
  out.storedKey = await page.evaluate(() => localStorage.getItem("twinlens.apiKey")) === key;

  // Keep the copy that is NOT the suggestion, preview, then confirm.
  const target = out.before.find((g) => g.type === "exact");
  out.target = target.id;
  const card = page.locator(`li.dup[data-id="${target.id}"]`);
  const other = card.locator(".member:not(.suggested)").first();
  out.keptName = await other.locator(".filename").innerText();
  out.keptDir = await other.locator(".dir").innerText();
  await other.getByRole("radio").check();
  out.resolveBodies = recordResolves();
  await card.getByRole("button", { name: /Move others to Immich trash/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = (await dialog.innerText()).replace(/\s+/g, " ");
  await shot("dry-run");
  // The real run is held a moment: a second click meanwhile must not send it again.
  await page.route("**/api/twinlens/duplicates/*/resolve", async (route) => {
    if (!JSON.parse(route.request().postData() || "{}").dryRun) {
      await new Promise((r) => setTimeout(r, 800));
    }
    await route.continue();
  });
  const move = dialog.getByRole("button", { name: /^Move 1 file to trash$/ });
  await move.click();
  out.confirmDisabledWhileRunning = await dialog.getByRole("button", { name: /Working/ }).isDisabled();
  await card.waitFor({ state: "detached" });
  await page.locator(".notice.ok").waitFor();
  out.message = await page.locator(".notice.ok").innerText();
  // Said where the card was (the group left the list), with Twinlens's own Undo
  const gone = page.locator(`li[data-id="${target.id}"]`);
  out.messageInCard = await gone.locator(".notice.ok").innerText();
  out.otherId = out.before.find((g) => g.id !== target.id).id;
  out.focused = await page.evaluate(() => document.activeElement?.dataset?.id ?? document.activeElement?.tagName);
  await shot("trashed");
  await gone.getByRole("button", { name: "Undo" }).click();
  const undo = page.getByRole("dialog");
  await undo.getByRole("heading", { name: "Undo this decision?" }).waitFor();
  out.noteUndoDialog = await dialogText(undo);
  await undo.getByRole("button", { name: "Cancel" }).click();
  await undo.waitFor({ state: "hidden" });
}

// Change of mind (a new browser, so the key again): "Undo decision" on the resolved group
// shows what comes back from Immich's trash, then brings it back.
async function immichUndo([key, dupId]) {
  await logInWithKey(key, "#/duplicates?status=resolved");
  const card = page.locator(`li.dup[data-id="${dupId}"]`);
  await card.waitFor();
  out.badge = await card.locator(".badge").innerText();
  // A decided group shows the copy that was kept.
  out.shownKept = `${await card.locator(".member.kept .dir").innerText()}/` +
    `${await card.locator(".member.kept .filename").innerText()}`;
  // What the decision did with each copy, instead of a pick
  out.members = await card.locator(".member").evaluateAll((ms) => ms.map((m) => ({
    path: `${m.querySelector(".dir").textContent}/${m.querySelector(".filename").textContent}`,
    outcome: m.querySelector(".outcome")?.textContent ?? null,
    radios: m.querySelectorAll("input[type=radio]").length,
    text: m.innerText,
  })));
  await card.getByRole("button", { name: "Undo decision" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.undoDialog = await dialogText(dialog);
  await shot("undo-trash-dialog");
  await dialog.getByRole("button", { name: "Undo decision" }).click();
  await card.waitFor({ state: "detached" });
  out.undoMessage = await page.locator(".notice.ok").innerText();
  await shot("undo-trash");
}

// A new copy reopened a resolved group: the open card says so and offers "Undo earlier
// decision", which brings back what that decision moved to Immich's trash.
async function immichUndoEarlier([key, dupId]) {
  await logInWithKey(key, "#/duplicates?status=open");
  const card = page.locator(`li.dup[data-id="${dupId}"]`);
  await card.waitFor();
  out.cardNotice = await card.locator(".notice").innerText();
  out.members = await card.locator(".member").count();
  await card.getByRole("button", { name: "Undo earlier decision" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.undoDialog = await dialogText(dialog);
  await shot("undo-earlier-dialog");
  await dialog.getByRole("button", { name: "Undo decision" }).click();
  await page.locator(".notice.ok").waitFor();
  out.undoMessage = await page.locator(".notice.ok").innerText();
  // Still open and listed, with nothing more to undo once the list is reloaded
  await page.waitForFunction(
    (id) => {
      const c = document.querySelector(`li.dup[data-id="${id}"]`);
      return c && ![...c.querySelectorAll("button")].some((b) => b.textContent.includes("Undo"));
    },
    dupId,
  );
  out.stillListed = await card.count();
  await shot("undo-earlier");
}

// "Accept all suggestions on this page" after picking another copy in one group, while
// another reviewer decides a second group in their own browser.
async function immichBulk([key]) {
  await logInWithKey(key);
  await waitForDuplicates();
  const bodies = recordResolves();
  out.before = await groupsOnPage();
  const exact = out.before.find((g) => g.type === "exact");
  const perceptual = out.before.find((g) => g.type === "perceptual");
  out.exactId = exact.id;
  out.perceptualId = perceptual.id;
  out.kept = await pickTheOtherCopy(page.locator(`li.dup[data-id="${exact.id}"]`));
  // The other reviewer says the perceptual pair are two pictures (this page still lists it).
  out.otherReviewer = await page.evaluate(async ([k, id]) => {
    const r = await fetch(`/api/twinlens/duplicates/${id}/resolve`, {
      method: "POST",
      headers: { "x-api-key": k, "Content-Type": "application/json" },
      body: JSON.stringify({ action: "not_duplicate" }),
    });
    return r.status;
  }, [key, perceptual.id]);
  await page.getByRole("button", { name: "Accept all suggestions on this page" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = await dialogText(dialog);
  await shot("bulk-dry-run");
  // While it runs, leaving the page asks first
  out.leaveWarns = [await leaveWarns()];
  const hold = await holdRealPost("/api/twinlens/duplicates/resolve");
  await dialog.getByRole("button", { name: /^Move 1 file to trash$/ }).click();
  await hold.arrived;
  out.leaveWarns.push(await leaveWarns());
  await hold.release();
  await page.locator(`li.dup[data-id="${exact.id}"]`).waitFor({ state: "detached" });
  out.message = await page.locator(".notice.ok").innerText();
  out.leaveWarns.push(await leaveWarns());
  out.bodies = bodies;
  await shot("bulk-done");
  // Once the list is read again no group is left (the other was decided meanwhile): the
  // keyboard is on what says what happened, not back at the top of the page
  await page.locator("li.dup").first().waitFor({ state: "detached" });
  await page.locator(".empty").waitFor();
  out.focusAfter = await page.evaluate(() => {
    const a = document.activeElement;
    if (!a || a === document.body) return "body";
    return `${a.tagName.toLowerCase()}.${[...a.classList].join(".")}: ${a.textContent}`;
  });
}

// A confirm that Immich refuses (the key may not delete assets): the page says why, and
// the group stays open with its buttons.
async function immichRefused([key]) {
  // A short window: the card is scrolled to, as a reviewer far down a long page would
  await page.setViewportSize({ width: 1280, height: 600 });
  await logInWithKey(key);
  await waitForDuplicates();
  const bodies = recordResolves();
  const target = (await groupsOnPage()).find((g) => g.type === "exact");
  out.target = target.id;
  const card = page.locator(`li.dup[data-id="${target.id}"]`);
  const button = card.getByRole("button", { name: /Move others to Immich trash/ });
  await button.scrollIntoViewIfNeeded();
  await button.click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: /^Move 1 file to trash$/ }).click();
  // Said in the card that acted, where the user is looking
  const alert = card.getByRole("alert");
  await alert.waitFor();
  out.alert = await alert.innerText();
  out.alertInView = await alert.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight;
  });
  await dialog.waitFor({ state: "detached" });
  out.stillListed = await card.count();
  // The list is read again after a failed confirm (its buttons wait for that): the
  // group's own button must come back usable.
  await page.waitForFunction((id) => {
    const b = [...document.querySelectorAll(`li.dup[data-id="${id}"] button`)]
      .find((x) => /Move others to Immich trash/.test(x.textContent ?? ""));
    return b !== undefined && !b.disabled;
  }, target.id, { timeout: 10000 }).catch(() => null);
  out.trashEnabled = !(await card.getByRole("button", { name: /Move others to Immich trash/ }).isDisabled());
  out.bodies = bodies;
  await shot("refused");
}

// A confirm the gateway answers 502 (Immich failed after the decision was recorded): the
// note says so and offers Undo, which reopens the group
async function immich502([key]) {
  await logInWithKey(key);
  await waitForDuplicates();
  const target = (await groupsOnPage()).find((g) => g.type === "exact");
  out.target = target.id;
  await page.route("**/api/twinlens/duplicates/*/resolve", async (route) => {
    const body = route.request().postDataJSON();
    if (body?.dryRun !== false) return route.continue();
    await route.fetch(); // the decision is recorded; the answer is lost on the way back
    await route.fulfill({
      status: 502, contentType: "application/json",
      body: JSON.stringify({ message: "Immich did not answer: the decision is recorded; undo it to bring back what went" }),
    });
  });
  const card = page.locator(`ol.dup-list > li[data-id="${target.id}"]`);
  await card.getByRole("button", { name: /Move others to Immich trash/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: /^Move 1 file to trash$/ }).click();
  const alert = card.getByRole("alert");
  await alert.waitFor();
  await dialog.waitFor({ state: "detached" });
  const undo = alert.getByRole("button", { name: "Undo" });
  await undo.waitFor();
  out.alert = (await alert.innerText()).replace(/\s+/g, " ");
  await shot("immich-502");
  await undo.click();
  const undoDialog = page.getByRole("dialog", { name: "Undo this decision?" });
  await undoDialog.getByRole("button", { name: "Undo decision" }).click();
  await undoDialog.waitFor({ state: "detached" });
  await page.locator(`li.dup[data-id="${target.id}"]`).waitFor();
  out.reopened = (await card.locator(".card-note .notice").innerText()).replace(/\s+/g, " ");
}

// An ordinary (non-admin) Immich user logs in with a key: the UI says the review pages are
// for administrators and asks for no Twinlens data.
async function immichUser([key]) {
  const asked = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith("/api/twinlens/")) asked.push(path);
  });
  await logInWithKey(key);
  await page.getByRole("heading", { name: "For Immich administrators" }).waitFor();
  out.notice = (await page.getByRole("alert").innerText()).replace(/\s+/g, " ");
  out.duplicatesShown = await page.locator("li.dup, .empty").count();
  out.asked = asked;
  await shot("not-admin");
}

// A group whose only other copy is in Immich's trash already: its card says so, and the
// dry run offers to record the decision (nothing is left to move).
async function immichInTrash([key, dupId]) {
  await logInWithKey(key);
  await waitForDuplicates();
  const bodies = recordResolves();
  const card = page.locator(`li.dup[data-id="${dupId}"]`);
  out.inImmich = await card.locator(".member").evaluateAll((ms) => ms.map((m) => {
    const dt = [...m.querySelectorAll("dt")].find((x) => x.textContent === "In Immich");
    return [`${m.querySelector(".dir").textContent}/${m.querySelector(".filename").textContent}`,
            dt?.nextElementSibling?.textContent];
  }));
  await card.getByRole("button", { name: /Move others to Immich trash/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = await dialogText(dialog);
  const record = dialog.getByRole("button", { name: /^Record decision/ });
  out.confirmLabel = await record.innerText();
  out.confirmEnabled = await record.isEnabled();
  await shot("in-trash-dry-run");
  await record.click();
  await card.waitFor({ state: "detached" });
  out.message = await page.locator(`li[data-id="${dupId}"] .notice.ok`).innerText();
  out.bodies = bodies;
  await shot("in-trash-recorded");
}

// The list of duplicate groups (not one group, not an action on one)
const isList = (url) => url.pathname === "/api/twinlens/duplicates";

const noteIn = (id) => page.locator(`li[data-id="${id}"] .card-note .notice`);

// Local mode, two groups (A, B): a lost connection during an action, the outcome said in
// the card, the focus after it left, a group decided elsewhere, lists that fail to load and
// come back, and no gateway at start-up.
async function localRecovery() {
  await page.goto(`${base}/#/duplicates`);
  await waitForDuplicates();
  const [a, b] = await groupsOnPage();
  out.ids = [a.id, b.id];
  const cardA = page.locator(`li.dup[data-id="${a.id}"]`);

  // 1. The connection drops as "Not duplicates" is sent: it may have happened
  await page.route("**/api/twinlens/duplicates/*/resolve", (route) => route.abort("connectionreset"));
  await cardA.getByRole("button", { name: "Not duplicates" }).click();
  out.lost = await noteIn(a.id).innerText();
  out.lostRole = await noteIn(a.id).getAttribute("role");
  await page.unroute("**/api/twinlens/duplicates/*/resolve");

  // 2. Again, reaching the gateway: said in A's place, the focus on B (the next card)
  await cardA.getByRole("button", { name: "Not duplicates" }).click();
  await cardA.waitFor({ state: "detached" });
  out.done = await noteIn(a.id).innerText();
  out.doneRole = await noteIn(a.id).getAttribute("role");
  out.focused = await page.evaluate(() => document.activeElement?.dataset?.id ?? document.activeElement?.tagName);
  await shot("recovery-dismissed");

  // 3. B is decided in another browser meanwhile; deciding it here says the list changed
  out.otherReviewer = await page.evaluate(async (id) => {
    const r = await fetch(`/api/twinlens/duplicates/${id}/resolve`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action: "not_duplicate" }),
    });
    return r.status;
  }, b.id);
  await page.locator(`li.dup[data-id="${b.id}"]`).getByRole("button", { name: "Not duplicates" }).click();
  await noteIn(b.id).waitFor();
  out.stale = await noteIn(b.id).innerText();
  // ... and the list was read again: B is no longer listed as open
  await page.locator(`li.dup[data-id="${b.id}"]`).waitFor({ state: "detached" });
  await page.waitForFunction(() =>
    document.querySelector("form span.muted[role=status]")?.textContent === "0 groups", null,
    { timeout: 10000 }).catch(() => null);
  out.countAfterStale = await page.locator("form span.muted[role=status]").innerText();
  await shot("recovery-stale");

  // 4. A busy service (503, Retry-After: 1): the list is read again by itself
  let busy = 1;
  await page.route(isList, async (route) => {
    if (busy > 0) {
      busy -= 1;
      await route.fulfill({ status: 503, headers: { "Retry-After": "1", "Content-Type": "application/json" },
                            body: JSON.stringify({ message: "the dedup service is busy" }) });
    } else {
      await route.continue();
    }
  });
  await page.getByLabel("Status").selectOption("any");
  const loadError = page.locator(".load-error");
  await loadError.waitFor();
  out.busy = (await loadError.innerText()).replace(/\s+/g, " ");
  await page.locator(`li.dup[data-id="${a.id}"]`).waitFor({ timeout: 10000 });
  out.busyRecovered = (await loadError.count()) === 0;
  await page.unroute(isList);

  // 5. A failure that is not "busy": "Try again" reads it again
  let broken = true;
  await page.route(isList, async (route) => {
    if (broken) {
      await route.fulfill({ status: 500, headers: { "Content-Type": "application/json" },
                            body: JSON.stringify({ message: "the dedup service failed" }) });
    } else {
      await route.continue();
    }
  });
  await page.getByLabel("Status").selectOption("dismissed");
  await loadError.waitFor();
  out.failed = (await loadError.innerText()).replace(/\s+/g, " ");
  await page.waitForTimeout(1500);
  out.failedStillShown = (await loadError.count()) === 1;  // no retry by itself
  broken = false;
  await loadError.getByRole("button", { name: "Try again" }).click();
  await page.locator(`li.dup[data-id="${a.id}"]`).waitFor();
  out.failedRecovered = (await loadError.count()) === 0;
  await page.unroute(isList);

  // 6. No gateway at start-up: said as such, and "Try again" connects once it is back
  await page.route("**/api/twinlens/me", (route) => route.abort("connectionrefused"));
  await page.goto(`${base}/#/overview`);
  await page.reload();  // (a new hash alone loads nothing)
  const alert = page.getByRole("alert");
  await alert.waitFor();
  out.startup = (await alert.innerText()).replace(/\s+/g, " ");
  await page.unroute("**/api/twinlens/me");
  await alert.getByRole("button", { name: "Try again" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  out.startupRecovered = true;
  await shot("recovery-startup");
}

// The Overview as it shows past scans (the caller ran them)
async function overview() {
  await page.goto(`${base}/#/overview`);
  await page.locator(".job.last").waitFor();
  // (the details of the scans shown, with their unreadable files, come with the list)
  await page.locator(".job.last .job-figures").waitFor();
  const text = async (sel) => (await page.locator(sel).innerText()).replace(/\s+/g, " ");
  out.last = await text(".job.last");
  out.lastErrors = await page.$$eval(".job.last .errors tbody tr", (rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
  const folder = page.locator(".job.last-folder");
  out.folder = await folder.waitFor({ timeout: 5000 }).then(() => text(".job.last-folder"), () => null);
  out.folderErrors = await page.locator(".job.last-folder .errors tbody tr").count();
  await shot("overview-scans");
}

const problemRows = () =>
  page.$$eval("table.problem-list tbody tr", (rows) => rows.map((tr) => {
    const cells = [...tr.querySelectorAll("td")];
    return {
      path: tr.dataset.path,
      shown: cells[0].querySelector(".path").textContent,
      problem: cells[1].textContent,
      next: cells[2].textContent,
      kind: cells[3].textContent,
    };
  }));

// The list of `folder` ("" for the whole library) is shown, not the one before it: its
// caption or its empty state names it.
/** Type `path` into a list's folder field and submit it; the refusal it gets, as shown. */
async function folderRefused(field, path) {
  await field.fill(path);
  await field.press("Enter");
  await page.locator(".load-error").waitFor();
  return (await page.locator(".load-error").innerText()).replace(/\s+/g, " ");
}

async function problemsShown(folder) {
  await page.waitForFunction((f) => {
    const cap = document.querySelector("table.problem-list caption")?.textContent ?? "";
    const empty = document.querySelector(".problems .empty")?.textContent ?? "";
    return cap.startsWith(`Files with problems${f ? ` in ${f}` : ""},`) ||
      (f ? empty.includes(f) : empty.includes("in the library"));
  }, folder);
}

async function problems([library]) {
  await page.goto(`${base}/#/overview`);
  const link = page.locator(".problems-link a");
  await link.waitFor();
  out.link = await link.innerText();
  out.linkHref = await link.getAttribute("href");
  await link.click();
  await page.getByRole("heading", { name: "Files with problems" }).waitFor();
  await page.locator("table.problem-list tbody tr").first().waitFor();
  out.navCurrent = await page.locator('nav a[aria-current="page"]').innerText();
  out.count = await page.locator(".problems form [role=status]").innerText();
  out.rows = await problemRows();
  await shot("problems");
  // Long names wrap: nothing sticks out of a narrow window
  await page.setViewportSize({ width: 700, height: 900 });
  out.overflow = await page.evaluate(() => {
    const wrap = document.querySelector(".table-wrap");
    return Math.max(document.documentElement.scrollWidth - window.innerWidth,
                    wrap.scrollWidth - wrap.clientWidth);
  });
  await shot("problems-narrow");
  await page.setViewportSize({ width: 1280, height: 900 });

  // One folder (typed, with a trailing slash)
  const folder = page.getByLabel("Folder", { exact: true });
  await folder.fill(`${library}/2024/`);
  await page.getByRole("button", { name: "Show", exact: true }).click();
  await problemsShown(`${library}/2024`);
  out.folderHash = await page.evaluate(() => window.location.hash);
  out.folderRows = (await problemRows()).map((r) => r.path);
  out.folderCount = await page.locator(".problems form [role=status]").innerText();
  // ... and back to the whole library, then "only this folder" from a row
  await page.getByRole("button", { name: "Whole library" }).click();
  await problemsShown("");
  out.wholeAgain = (await problemRows()).length;
  const broken = page.locator("table.problem-list tbody tr").filter({ hasText: "broken.jpg" });
  await broken.getByRole("button", { name: /^Only the files with problems in/ }).click();
  await problemsShown(library);
  out.rootRows = (await problemRows()).length;

  // A folder without any
  await folder.fill(`${library}/backup`);
  await folder.press("Enter");
  await problemsShown(`${library}/backup`);
  out.emptyFolder = await page.locator(".problems .empty").innerText();
  // A folder outside the library: the gateway's refusal, said
  out.outside = await folderRefused(folder, "/etc");
  out.rowsOutside = await page.locator("table.problem-list tbody tr").count();
  // ... a refusal, which the same request would get again: no "Try again"
  out.outsideButtons = await page.locator(".load-error button").count();
  await shot("problems-outside");
  // A folder typed relative to the library (its one root, which the placeholder shows)
  out.placeholder = await folder.getAttribute("placeholder");
  await folder.fill("2024/");
  await folder.press("Enter");
  await problemsShown(`${library}/2024`);
  out.relativeHash = await page.evaluate(() => window.location.hash);
  out.relativeRows = (await problemRows()).length;
}

// Two library roots on a fresh install: the UI knows them from GET /roots (no job yet)
async function rootsFresh([rootA, rootB]) {
  const lists = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.pathname === "/api/twinlens/files/errors") lists.push(url.search);
  });
  await page.goto(`${base}/#/problems`);
  await page.getByRole("heading", { name: "Files with problems" }).waitFor();
  const picker = page.getByLabel("Library folder");
  await picker.waitFor();
  const folder = page.getByLabel("Folder", { exact: true });
  out.options = await picker.locator("option").allInnerTexts();
  out.picked = await picker.inputValue();
  out.placeholder = await folder.getAttribute("placeholder");
  // A folder relative to the library, with no root picked: asked which, nothing listed
  await page.locator(".problems .empty").waitFor();
  const before = lists.length;
  await folder.fill("2024/trip");
  await folder.press("Enter");
  const choose = page.locator(".folder-choose");
  await choose.waitFor();
  out.choose = await choose.innerText();
  await page.waitForTimeout(300);
  out.chooseHash = await page.evaluate(() => window.location.hash);
  out.chooseRequests = lists.length - before;
  await shot("roots-choose");
  // ... then the second root picked: that folder of it, the note gone
  await picker.selectOption(rootB);
  await page.waitForFunction((h) => window.location.hash === h,
    `#/problems?folder=${formEncoded(`${rootB}/2024/trip`)}`);
  await problemsShown(`${rootB}/2024/trip`);
  out.pickedHash = await page.evaluate(() => window.location.hash);
  out.pickedTyped = await folder.inputValue();
  out.pickedValue = await picker.inputValue();
  out.chooseAfter = await choose.count();
  out.pickedPlaceholder = await folder.getAttribute("placeholder");
  // ... and another folder typed relative, under the root picked
  await folder.fill("backup");
  await folder.press("Enter");
  await problemsShown(`${rootB}/backup`);
  out.relativeHash = await page.evaluate(() => window.location.hash);
  // ... a root's own name first: under that root, whichever is picked
  await folder.fill(`${rootA.split("/").at(-1)}/2024`);
  await folder.press("Enter");
  await problemsShown(`${rootA}/2024`);
  out.namedHash = await page.evaluate(() => window.location.hash);
  out.namedPicked = await picker.inputValue();
  // ... and "All" is the whole library
  await picker.selectOption("");
  await problemsShown("");
  out.allHash = await page.evaluate(() => window.location.hash);
}

// The Overview's figures of one folder, and where Review, Browse and the problems link go
async function rootsOverview([rootA, rootB]) {
  const cards = () => page.$$eval(".card", (cs) => cs.map((c) => c.innerText.replace(/\s+/g, " ").trim()));
  await page.goto(`${base}/#/overview`);
  await page.locator(".card .figure").first().waitFor();
  await page.locator(".problems-link a").waitFor();
  out.wholeCards = await cards();
  out.wholeLink = await page.locator(".problems-link a").innerText();
  // The last scan of each root, named by it
  await page.waitForFunction(() => document.querySelectorAll(".job.last").length >= 2, null, { timeout: 5000 })
    .catch(() => {});
  out.lastScans = await page.$$eval(".job.last", (js) => js.map((j) => ({
    head: j.querySelector(".job-head").innerText.replace(/\s+/g, " ").replace(/ at .*/, "").trim(),
    scope: j.querySelector(".job-scope").innerText,
  })));
  const folder = page.getByLabel("Folder", { exact: true });
  const hash = `#/overview?folder=${formEncoded(`${rootB}/2024`)}`;
  await folder.fill(`${rootB.split("/").at(-1)}/2024/`);
  await folder.press("Enter");
  await page.waitForFunction((h) => window.location.hash === h, hash);
  // Its figures come (not the whole library's "–" while they load)
  await page.waitForFunction(() => {
    const figs = [...document.querySelectorAll(".card .figure")].map((f) => f.textContent);
    return figs.length === 3 && figs[0] !== "–" && figs[2] !== "–" &&
      document.querySelector(".problems-link a") !== null;
  });
  out.folder = {
    hash: await page.evaluate(() => window.location.hash),
    scope: await page.locator(".folder-scope").innerText(),
    cards: await cards(),
    picked: await page.getByLabel("Library folder").inputValue(),
    link: await page.locator(".problems-link a").innerText(),
    linkHref: await page.locator(".problems-link a").getAttribute("href"),
    captions: await page.$$eval(".breakdown caption", (cs) => cs.map((c) => c.textContent)),
  };
  await shot("roots-overview-folder");
  // Review: the duplicates of that folder
  const focusedOn = () => page.evaluate(() => {
    const a = document.activeElement;
    return a && a !== document.body ? `${a.tagName.toLowerCase()}: ${a.textContent}` : "body";
  });
  await page.getByRole("button", { name: "Review" }).click();
  await page.getByRole("heading", { name: "Duplicates" }).waitFor();
  await waitForDuplicates();
  await page.waitForFunction(() => document.querySelector(".duplicates form [role=status]") !== null);
  out.review = await duplicatesState();
  out.reviewFocus = await focusedOn();
  // Browse: the groups of that folder
  await page.evaluate(() => window.history.back());
  await page.waitForFunction((h) => window.location.hash === h, hash);
  await page.locator(".folder-scope").waitFor();
  await page.getByRole("button", { name: "Browse" }).click();
  await page.getByRole("heading", { name: "Groups" }).waitFor();
  await page.locator(".group-list > li, .groups .empty").first().waitFor();
  out.browse = {
    hash: await page.evaluate(() => window.location.hash),
    groups: await page.locator(".group-list > li").count(),
    typed: await page.getByLabel("Folder", { exact: true }).inputValue(),
  };
  out.browseFocus = await focusedOn();
  // The problems link: that folder's files with problems
  await page.evaluate(() => window.history.back());
  await page.waitForFunction((h) => window.location.hash === h, hash);
  await page.locator(".problems-link a").click();
  await problemsShown(`${rootB}/2024`);
  out.problems = {
    hash: await page.evaluate(() => window.location.hash),
    rows: (await problemRows()).map((r) => r.path),
  };
  // "Whole library" on the Overview: the library's figures and lists again
  await page.evaluate(() => window.history.back());
  await page.waitForFunction((h) => window.location.hash === h, hash);
  await page.getByRole("button", { name: "Whole library" }).click();
  await page.waitForFunction(() => window.location.hash === "#/overview");
  await page.waitForFunction(() => document.querySelector(".folder-scope") === null);
  await page.waitForTimeout(300);
  out.wholeAgain = await cards();
  await page.getByRole("button", { name: "Review" }).click();
  await page.getByRole("heading", { name: "Duplicates" }).waitFor();
  out.wholeReviewHash = await page.evaluate(() => window.location.hash);
}

// Many duplicate groups: the pager's steps and the page size, kept in the URL
async function paging() {
  const pager = page.getByRole("navigation", { name: "Duplicate pages" });
  const state = async () => ({
    hash: await page.evaluate(() => window.location.hash),
    cards: await page.locator("li.dup").count(),
    pager: (await pager.count()) ? (await pager.locator("span").innerText()) : null,
    perPage: await page.getByLabel("Per page").inputValue(),
  });
  // The list of `hash` is shown: the count of cards settled on `n`
  const shown = async (hash, n) => {
    await page.waitForFunction(([h, want]) => window.location.hash === h &&
      document.querySelectorAll("li.dup").length === want, [hash, n]);
  };
  await page.goto(`${base}/#/duplicates`);
  await waitForDuplicates();
  out.total = Number((await page.locator("form span.muted[role=status]").innerText()).split(" ")[0]);
  out.first = await state();
  out.firstButtons = {
    first: await pager.getByRole("button", { name: "First page" }).isDisabled(),
    previous: await pager.getByRole("button", { name: "← Previous" }).isDisabled(),
  };
  const lastCount = out.total - 20 * Math.floor((out.total - 1) / 20);
  const pages = Math.ceil(out.total / 20);
  await pager.getByRole("button", { name: /^Last page/ }).click();
  await shown(`#/duplicates?page=${pages}`, lastCount);
  out.last = await state();
  out.lastButtons = {
    next: await pager.getByRole("button", { name: "Next →" }).isDisabled(),
    last: await pager.getByRole("button", { name: /^Last page/ }).isDisabled(),
  };
  await shot("paging-last");
  await pager.getByRole("button", { name: "First page" }).click();
  await shown("#/duplicates", 20);
  out.backToFirst = await state();

  // 50 a page, from the last page of 20: the page that shows its first group
  await pager.getByRole("button", { name: /^Last page/ }).click();
  await shown(`#/duplicates?page=${pages}`, lastCount);
  await page.getByLabel("Per page").selectOption("50");
  const at = Math.floor(((pages - 1) * 20) / 50) + 1;
  const on50 = Math.min(50, out.total - (at - 1) * 50);
  await shown(`#/duplicates?size=50${at > 1 ? `&page=${at}` : ""}`, on50);
  out.fifty = await state();
  // ... kept in the URL: a reload (or a link) shows 50 again, and so does another filter
  await page.reload();
  await waitForDuplicates();
  await shown(out.fifty.hash, on50);
  out.reloaded = await state();
  await page.getByLabel("Status").selectOption("any");
  await shown("#/duplicates?status=any&size=50", Math.min(50, out.total));
  out.otherFilter = await state();
  await shot("paging-50");
}

// A folder in the URL, as the page writes it (its bytes, form-encoded)
const formEncoded = (v) => new URLSearchParams({ v }).toString().slice(2);

// What the Duplicates page shows: its URL, cards (each with the folders of its copies), the
// count, the pager and the folder field
async function duplicatesState() {
  const pager = page.getByRole("navigation", { name: "Duplicate pages" });
  return {
    hash: await page.evaluate(() => window.location.hash),
    cards: await page.$$eval("li.dup", (lis) => lis.map((li) =>
      [...li.querySelectorAll(".member .dir")].map((e) => e.textContent))),
    count: await page.locator(".duplicates form [role=status]").innerText(),
    pager: (await pager.count()) ? await pager.locator("span").innerText() : null,
    typed: await page.getByLabel("Folder", { exact: true }).inputValue(),
  };
}

// The list of `hash` is shown: `n` cards (its count said for this list, not the last one)
async function duplicatesShown(hash, n) {
  await page.waitForFunction(([h, want]) => window.location.hash === h &&
    document.querySelectorAll("li.dup").length === want, [hash, n]);
  await page.waitForTimeout(300);
}

// The Duplicates page narrowed to one folder (typed relative to the library), paged
async function duplicatesFolder([library]) {
  const lists = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.pathname === "/api/twinlens/duplicates") lists.push(url.search);
  });
  const folder = page.getByLabel("Folder", { exact: true });
  const pager = page.getByRole("navigation", { name: "Duplicate pages" });
  const backup = `#/duplicates?folder=${formEncoded(`${library}/backup`)}`;
  await page.goto(`${base}/#/duplicates?page=2`);
  await waitForDuplicates();
  out.wholeTotal = await page.locator(".duplicates form [role=status]").innerText();
  out.placeholder = await folder.getAttribute("placeholder");
  const onPage2 = await page.locator("li.dup").count();
  // Typed on page 2 of the whole library: page 1 of the folder's groups
  await folder.fill("backup/");
  await folder.press("Enter");
  await duplicatesShown(backup, 20);
  out.folder = await duplicatesState();
  out.folderRequest = lists.at(-1);
  await shot("duplicates-folder");
  await pager.getByRole("button", { name: "Next →" }).click();
  await duplicatesShown(`${backup}&page=2`, 5);
  out.folderPage2 = await duplicatesState();
  // ... kept by a reload, and Back goes to its first page
  await page.reload();
  await waitForDuplicates();
  await duplicatesShown(`${backup}&page=2`, out.folderPage2.cards.length);
  out.reloaded = await duplicatesState();
  await page.evaluate(() => window.history.back());
  await duplicatesShown(backup, 20);
  out.back = await duplicatesState();
  // ... with another filter: both apply
  await page.getByLabel("Status").selectOption("any");
  await duplicatesShown(`#/duplicates?status=any&folder=${formEncoded(`${library}/backup`)}`, 20);
  out.withStatus = await duplicatesState();
  // The whole library again
  await page.getByRole("button", { name: "Whole library" }).click();
  await duplicatesShown("#/duplicates?status=any", 20);
  out.whole = await duplicatesState();
  out.onPage2Before = onPage2;
  // A folder outside the library: the gateway's refusal, said, with no "Try again"
  out.outside = await folderRefused(folder, "/etc");
  out.outsideCards = await page.locator("li.dup").count();
  out.outsideButtons = await page.locator(".load-error button").count();
}

// "Accept all suggestions on this page" on the groups with a copy in backup/, one of them
// picked to keep its backup copy; the group with no copy there is left for later
async function immichFolderBulk([key, library]) {
  const lists = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.pathname === "/api/twinlens/duplicates") lists.push(url.search);
  });
  await logInWithKey(key);
  await waitForDuplicates();
  out.wholeCards = await page.locator("li.dup").count();
  const bodies = recordResolves();
  const folder = page.getByLabel("Folder", { exact: true });
  const backup = `#/duplicates?folder=${formEncoded(`${library}/backup`)}`;
  await folder.fill("backup");
  await page.getByRole("button", { name: "Show", exact: true }).click();
  await duplicatesShown(backup, 2);
  out.folder = await duplicatesState();
  out.folderRequest = lists.at(-1);
  out.before = await groupsOnPage();
  const exact = out.before.find((g) => g.type === "exact");
  out.exactId = exact.id;
  out.kept = await pickTheOtherCopy(page.locator(`li.dup[data-id="${exact.id}"]`));
  await page.getByRole("button", { name: "Accept all suggestions on this page" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = await dialogText(dialog);
  await shot("folder-bulk-dry-run");
  await dialog.getByRole("button", { name: /^Move \d+ files? to trash$/ }).click();
  await page.locator(".notice.ok").waitFor();
  out.message = await page.locator(".notice.ok").innerText();
  await page.locator(".duplicates .empty").waitFor();
  out.empty = await page.locator(".duplicates .empty").innerText();
  out.after = await duplicatesState();
  out.bodies = bodies;
  await shot("folder-bulk-done");
  // The whole library: the group with no copy in backup/ is still to review
  await page.getByRole("button", { name: "Whole library" }).click();
  await duplicatesShown("#/duplicates", 1);
  out.whole = await groupsOnPage();
}

// Dissolve a group, delete one of its files and rescan: "Undo dissolve" cannot merge a file
// that is gone; its refusal is said, and the other files can be put back together
async function regroupGone([path, gone]) {
  await page.goto(`${base}/#/groups`);
  await waitForGroups();
  const grp = groupOf(path);
  const id = await grp.getAttribute("data-id");
  await grp.getByRole("button", { name: "Dissolve group" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "Dissolve group" }).click();
  await dialog.waitFor({ state: "hidden" });
  const note = page.locator(`ol.group-list > li[data-id="${id}"] .card-note .notice`);
  await note.getByRole("button", { name: "Undo dissolve" }).waitFor();
  // A rescan finds the file gone
  unlinkSync(gone);
  out.rescan = await page.evaluate(async () => {
    const r = await fetch("/api/twinlens/jobs", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: "{}",
    });
    const ids = new Set((await r.json()).jobs.map((j) => j.id));
    for (let i = 0; i < 200; i++) {
      const jobs = (await (await fetch("/api/twinlens/jobs")).json()).items.filter((j) => ids.has(j.id));
      if (jobs.every((j) => j.state !== "queued" && j.state !== "running")) return jobs.map((j) => j.state);
      await new Promise((ok) => setTimeout(ok, 300));
    }
    return "timeout";
  });
  await note.getByRole("button", { name: "Undo dissolve" }).click();
  const again = note.getByRole("button", { name: /^Put back the other/ });
  await again.waitFor();
  out.refused = (await note.innerText()).replace(/\s+/g, " ");
  out.refusedRole = await note.getAttribute("role");
  out.again = await again.innerText();
  await shot("regroup-gone");
  await again.click();
  const merged = page.locator('li.grp[data-type="manual"]').filter({ has: page.locator(`tr[data-path="${path}"]`) });
  await merged.waitFor();
  out.regrouped = (await merged.locator(".card-note .notice").innerText()).replace(/\s+/g, " ");
  out.after = (await filesOfGroups()).find((g) => g.paths.includes(path));
  out.primary = await merged.locator("tr.primary").getAttribute("data-path");
}

// The last page's only group marked "not duplicates": the page empties, the list steps back
// a page, and the note (what happened) comes along, first on that page, with the keyboard
async function stepBack() {
  const hash = () => page.evaluate(() => window.location.hash);
  // Back, then a moment for any step the page would make by itself
  const back = async () => {
    await page.evaluate(() => window.history.back());
    await page.waitForTimeout(1500);
    return hash();
  };
  await page.goto(`${base}/#/overview`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  // An old bookmark beyond the last page: the list steps back to the last page, in place
  // of the bookmark's entry, so that Back leaves the list
  await page.goto(`${base}/#/duplicates?page=99`);
  await page.waitForFunction(() => window.location.hash === "#/duplicates?page=2");
  await waitForDuplicates();
  out.bookmarkBack = await back();
  await page.goto(`${base}/#/duplicates?page=2`);
  await waitForDuplicates();
  const card = page.locator("li.dup").first();
  const id = await card.getAttribute("data-id");
  out.before = await page.locator("li.dup").count();
  await card.getByRole("button", { name: "Not duplicates" }).click();
  await page.waitForFunction(() => window.location.hash === "#/duplicates" &&
    document.querySelectorAll("li.dup").length === 20);
  const first = page.locator("ol.dup-list > li").first();
  await first.locator(".card-note .notice").waitFor();
  await page.waitForFunction((want) => document.activeElement?.dataset?.id === want, id)
    .catch(() => {});
  out.after = {
    hash: await page.evaluate(() => window.location.hash),
    firstId: await first.getAttribute("data-id"),
    firstClass: await first.getAttribute("class"),
    note: (await first.locator(".card-note .notice").innerText()).replace(/\s+/g, " "),
    cards: await page.locator("li.dup").count(),
    focused: await page.evaluate(() => document.activeElement?.dataset?.id ?? document.activeElement?.tagName),
  };
  out.id = id;
  await shot("step-back");
  // The step replaced the emptied page's entry: Back leaves the list, and stays left
  out.afterBack = await back();
}

// A group marked "not duplicates" here, then reopened by another reviewer: the list
// shows it again once a reload lists it (here, after another group is decided)
async function reopenedElsewhere() {
  await page.goto(`${base}/#/duplicates`);
  await waitForDuplicates();
  out.before = await page.locator("li.dup").count();
  const first = page.locator("li.dup").first();
  const id = await first.getAttribute("data-id");
  await first.getByRole("button", { name: "Not duplicates" }).click();
  await page.locator(`li.dup-gone[data-id="${id}"]`).waitFor();
  out.reopened = await page.evaluate(async (gid) => (await fetch(
    `/api/twinlens/duplicates/${encodeURIComponent(gid)}/resolution`, { method: "DELETE" })).status, id);
  const other = page.locator(`li.dup:not([data-id="${id}"])`).first();
  const otherId = await other.getAttribute("data-id");
  await other.getByRole("button", { name: "Not duplicates" }).click();
  await page.locator(`li.dup-gone[data-id="${otherId}"]`).waitFor();
  await page.locator(`li.dup[data-id="${id}"]`).waitFor({ timeout: 5000 }).catch(() => {});
  out.id = id;
  out.shownAgain = await page.locator(`li.dup[data-id="${id}"]`).count();
  out.otherGone = await page.locator(`li.dup[data-id="${otherId}"]`).count();
  await shot("reopened-elsewhere");
}

// Dissolve a group, then put it back together from the note
async function regroup([path]) {
  await page.goto(`${base}/#/groups`);
  await waitForGroups();
  const grp = groupOf(path);
  const id = await grp.getAttribute("data-id");
  out.before = (await filesOfGroups()).find((g) => g.id === id);
  await grp.getByRole("button", { name: "Dissolve group" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = await dialogText(dialog);
  await shot("dissolve-dialog");
  await dialog.getByRole("button", { name: "Dissolve group" }).click();
  await dialog.waitFor({ state: "hidden" });
  const note = page.locator(`ol.group-list > li[data-id="${id}"] .card-note .notice`);
  await note.waitFor();
  // Gone from the list once it is read again: only its name and the note stay
  await page.locator(`li.grp[data-id="${id}"]`).waitFor({ state: "detached" });
  out.dissolved = (await note.innerText()).replace(/\s+/g, " ");
  out.listedAfterDissolve = await page.locator(`tr[data-path="${path}"]`).count();
  const undo = note.getByRole("button", { name: "Undo dissolve" });
  out.undoOffered = await undo.count();
  out.backendAfterDissolve = await page.evaluate(async () => {
    const r = await fetch("/api/twinlens/groups?size=1000", { headers: { Accept: "application/json" } });
    return (await r.json()).items.map((g) => g.members.map((m) => m.path));
  });
  await shot("dissolved");
  await undo.click();
  // Back as one manual group, said in its card, which has the keyboard
  const merged = page.locator('li.grp[data-type="manual"]').filter({ has: page.locator(`tr[data-path="${path}"]`) });
  await merged.waitFor();
  out.regrouped = (await merged.locator(".card-note .notice").innerText()).replace(/\s+/g, " ");
  out.regroupedRole = await merged.locator(".card-note .notice").getAttribute("role");
  out.after = (await filesOfGroups()).find((g) => g.paths.includes(path));
  out.focused = (await page.evaluate(() => document.activeElement?.dataset?.id)) === out.after.id;
  out.primary = await merged.locator("tr.primary").getAttribute("data-path");
  await shot("regrouped");
}

// With an API key thumbnails are fetched by hand (with the header): only those near the
// viewport, the others once scrolled to
// One pair of byte copies (card/IMG_0000.JPG and one named with U+202E): what its card and the dry runs show, and
// what the dry runs send (the path as it is, not as shown).
async function immichEscaped([key]) {
  await logInWithKey(key);
  await waitForDuplicates();
  const card = page.locator("li.dup").first();
  out.heading = (await card.locator("h2").innerText()).replace(/\s+/g, " ");
  out.files = await card.locator(".member .filename").allInnerTexts();
  out.dirs = await card.locator(".member .dir").allInnerTexts();
  out.titles = await card.locator(".member .filename").evaluateAll((es) => es.map((e) => e.title));
  await card.locator(".thumb img, .thumb-missing").nth(1).waitFor(); // fetched with the key
  out.thumbNames = await card.locator(".thumb img, .thumb-missing").evaluateAll(
    (es) => es.map((e) => e.getAttribute("alt") ?? e.getAttribute("aria-label")));
  out.bodies = recordResolves();
  const dialog = page.getByRole("dialog");
  const dryRun = async (member) => {
    await member.getByRole("radio").check();
    await card.getByRole("button", { name: /Move others to Immich trash/ }).click();
    await dialog.waitFor();
    const shown = {
      keep: await dialog.locator(".plan-keep").allInnerTexts(),
      trash: await dialog.locator(".plan-trash").allInnerTexts(),
    };
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    return shown;
  };
  // Kept: the copy with a plain name (the other one goes), then the other way round
  const plain = { has: page.locator(".filename", { hasText: /^IMG_0000\.JPG$/ }) };
  out.evilGoes = await dryRun(card.locator(".member").filter(plain));
  await shot("escaped-dry-run");
  out.evilKept = await dryRun(card.locator(".member").filter({ hasNot: plain.has }));
}

async function immichLazy([key]) {
  await page.setViewportSize({ width: 1280, height: 400 });
  const asked = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (/^\/api\/assets\/[^/]+\/thumbnail$|^\/api\/twinlens\/thumbnail$/.test(path)) asked.push(path);
  });
  await logInWithKey(key);
  await waitForDuplicates();
  const cards = page.locator("li.dup");
  out.cards = await cards.count();
  out.thumbs = await page.locator("li.dup .thumb").count();
  // Where the last card's pictures are: below the window and the margin it loads within
  out.lastThumbTop = await cards.last().locator(".thumb").first().evaluate((el) => el.getBoundingClientRect().top);
  out.viewport = await page.evaluate(() => window.innerHeight);
  await page.waitForTimeout(1500);  // anything asked at once has been asked by now
  out.askedFirst = asked.length;
  out.loadedFirst = await page.$$eval("li.dup .thumb img", (imgs) => imgs.filter((i) => i.complete && i.naturalWidth > 0).length);
  await shot("lazy-top");
  await cards.last().scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const last = [...document.querySelectorAll("li.dup")].pop();
    const imgs = [...last.querySelectorAll(".thumb img")];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  out.askedAfterScroll = asked.length;
  out.loadedAfterScroll = await page.$$eval("li.dup .thumb img", (imgs) => imgs.filter((i) => i.complete && i.naturalWidth > 0).length);
  // A key never goes into a URL
  out.keyInUrl = asked.some((p) => p.includes(key));
}

// The last scan counted more failed files than the 1,000 the jobs API lists
async function overviewCapped() {
  await page.route(/\/api\/twinlens\/jobs\/[^/]+\/[^/]+$/, async (route) => {
    const response = await route.fetch();
    const job = await response.json();
    if (job.errors?.length) job.failed = job.errors.length + 4320;
    await route.fulfill({ response, json: job });
  });
  await page.goto(`${base}/#/overview`);
  await page.locator(".job.last .errors summary").waitFor();
  out.summary = await page.locator(".job.last .errors summary").innerText();
  out.figures = (await page.locator(".job.last .job-figures").innerText()).replace(/\s+/g, " ");
  out.note = (await page.locator(".job.last .errors p").innerText()).replace(/\s+/g, " ");
  out.link = await page.locator(".job.last .errors p a").getAttribute("href");
  await shot("overview-capped");
}

// A running scan whose failed files grow past 10: only a short line is live, and a list
// the user closed and opened again stays open
async function overviewRunning() {
  let errors = 5;
  let down = false;
  const job = () => ({
    service: "grouping", id: "running-1", kind: "scan", state: "running", phase: "catalog",
    root: "/lib", path: "/lib", trigger: "api", total: 100, done: 40 + errors, failed: errors,
    created_at: "2025-01-01T00:00:00Z",
    errors: Array.from({ length: errors }, (_, i) => ({ path: `/lib/bad-${i}.jpg`, error: "truncated" })),
  });
  await page.route(/\/api\/twinlens\/jobs(\?.*)?$/, (route) =>
    down ? route.abort("connectionrefused")
      : route.request().method() === "GET" ? route.fulfill({ json: { items: [job()] } }) : route.fallback());
  await page.route(/\/api\/twinlens\/jobs\/grouping\/running-1$/, (route) =>
    down ? route.abort("connectionrefused") : route.fulfill({ json: job() }));
  await page.goto(`${base}/#/overview`);
  const details = page.locator(".job .errors");
  await details.locator("tbody tr").first().waitFor();
  const live = async () => page.$$eval(".job [aria-live]", (els) =>
    els.map((e) => ({ text: e.textContent, tables: e.querySelectorAll("table").length })));
  out.live = await live();
  out.jobLive = await page.locator(".job").first().getAttribute("aria-live");
  out.openAt5 = await details.evaluate((d) => d.open);
  await details.locator("summary").click();
  out.closedByUser = await details.evaluate((d) => !d.open);
  await details.locator("summary").click();
  errors = 15;
  await page.getByText("Files that failed (15)").waitFor();
  await page.waitForTimeout(1500);
  out.openAt15 = await details.evaluate((d) => d.open);
  out.liveAt15 = await live();
  await shot("overview-running");
  out.runningScanButton = await page.locator(".scanbar button").innerText();
  // The gateway stops answering: the job is the last state seen, with nothing to act on
  down = true;
  await page.locator(".jobs-error").waitFor();
  out.down = {
    notice: await page.locator(".jobs-error").innerText(),
    state: await page.locator(".job .job-head .muted").first().innerText(),
    cancelDisabled: await page.locator(".job .job-head button").first().isDisabled(),
    scanButton: await page.locator(".scanbar button").innerText(),
    scanDisabled: await page.locator(".scanbar button").isDisabled(),
  };
  await shot("overview-stale");
}

// No library root configured: "Scan now" says which setting is missing
async function noRoots() {
  await page.goto(`${base}/#/overview`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByRole("button", { name: "Scan now" }).click();
  const alert = page.locator(".notice.action-error");
  await alert.waitFor();
  out.alert = (await alert.innerText()).replace(/\s+/g, " ");
  // ... and still says it after the list of jobs was read again (a poll, every 10 s)
  await page.waitForTimeout(11000);
  out.alertLater = await alert.count();
  await shot("no-roots");
}

// A folder whose name is not UTF-8: "only this folder", then the folder typed as shown
async function problemsBytes([shown]) {
  await page.goto(`${base}/#/problems`);
  await page.locator("table.problem-list tbody tr").first().waitFor();
  const row = page.locator("table.problem-list tbody tr").filter({ hasText: "broken.jpg" });
  await row.getByRole("button", { name: /^Only the files with problems in/ }).click();
  await problemsShown(shown);
  const state = async () => ({
    hash: await page.evaluate(() => window.location.hash),
    rows: (await problemRows()).map((r) => r.shown),
    empty: await page.locator(".problems .empty").count(),
    typed: await page.getByLabel("Folder", { exact: true }).inputValue(),
  });
  out.only = await state();
  // ... and typed as the page shows it, after the whole library again
  await page.getByRole("button", { name: "Whole library" }).click();
  await problemsShown("");
  const folder = page.getByLabel("Folder", { exact: true });
  await folder.fill(`${shown}/`);
  await folder.press("Enter");
  await problemsShown(shown);
  out.typed = await state();
  // ... and kept by a reload (the URL holds its bytes)
  await page.reload();
  await problemsShown(shown);
  out.reloaded = await state();
  await shot("problems-bytes");
}

async function problemsNone() {
  await page.goto(`${base}/#/overview`);
  const link = page.locator(".problems-link a");
  await link.waitFor();
  out.link = await link.innerText();
  await page.goto(`${base}/#/problems`);
  await page.locator(".problems .empty").waitFor();
  out.empty = await page.locator(".problems .empty").innerText();
  out.rows = await page.locator("table.problem-list tbody tr").count();
  await shot("problems-none");
}

// The trash dry run's dialog closed by Escape, then by Cancel (its dry run held a moment,
// as a slow Immich would): the keyboard is back on the button that opened it each time
async function immichDialogFocus([key]) {
  await logInWithKey(key);
  await waitForDuplicates();
  await page.route("**/api/twinlens/duplicates/*/resolve", async (route) => {
    await new Promise((r) => setTimeout(r, 500));
    await route.continue();
  });
  const card = page.locator("li.dup").first();
  out.id = await card.getAttribute("data-id");
  const focused = () => page.evaluate(() => {
    const el = document.activeElement;
    return { tag: el?.tagName ?? null, text: el?.textContent ?? null,
             card: el?.closest("li")?.dataset?.id ?? null };
  });
  out.closed = {};
  for (const how of ["Escape", "Cancel"]) {
    const button = card.getByRole("button", { name: /Move others to Immich trash/ });
    await button.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    if (how === "Escape") await page.keyboard.press("Escape");
    else await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    await page.waitForTimeout(200);
    out.closed[how] = await focused();
  }
  await shot("dialog-focus");
}

// How far a page reaches past the window sideways (0: it fits), and the right edge of what
// must stay in view
const overflow = () => page.evaluate(() => {
  const doc = document.scrollingElement;
  const width = doc.clientWidth;
  const right = (el) => (el ? Math.round(el.getBoundingClientRect().right) : null);
  return {
    width,
    sideways: doc.scrollWidth - width,
    cards: [...document.querySelectorAll("li.dup, li.grp")].map((li) => right(li)),
    buttons: [...document.querySelectorAll("li.dup .dup-actions button")].map((b) => right(b)),
    nav: [...document.querySelectorAll(".topbar nav a")].map((a) => right(a)),
  };
});

// A duplicate group named by a very long file name, on a wide window, then each page on a
// phone's width (375 px): nothing reaches past the window
async function layout() {
  await page.goto(`${base}/#/duplicates`);
  await waitForDuplicates();
  out.wide = await overflow();
  out.headings = await page.$$eval("li.dup h2", (hs) => hs.map((h) => h.textContent));
  await shot("layout-long-name");
  await page.setViewportSize({ width: 375, height: 800 });
  out.narrow = {};
  for (const [name, ready] of [["overview", ".card .figure"], ["duplicates", "li.dup, .empty"],
                               ["groups", "li.grp, .empty"], ["problems", "table.problem-list, .empty"]]) {
    await page.goto(`${base}/#/${name}`);
    await page.locator(ready).first().waitFor();
    out.narrow[name] = await overflow();
    await shot(`layout-375-${name}`);
  }
  // A dialog naming the long file (dissolving its group) wraps it: nothing reaches past
  // the dialog, which does not scroll sideways
  await page.goto(`${base}/#/groups`);
  const card = page.locator("li.grp", { hasText: "Strandfoto" }).first();
  await card.getByRole("button", { name: "Dissolve group" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = await page.evaluate(() => {
    const d = document.querySelector("dialog[open]");
    const body = d.querySelector(".dialog-body");
    const right = Math.round(d.getBoundingClientRect().right);
    return {
      right,
      sideways: body.scrollWidth - body.clientWidth,
      edges: [...d.querySelectorAll(".summary, .summary strong, .notice, .plan li")]
        .map((e) => Math.round(e.getBoundingClientRect().right)),
    };
  });
  await shot("layout-375-dialog");
  await page.keyboard.press("Escape");
}

// "Stack in Immich": one group's (Escape first, then confirmed, then asked again), then every
// group of shoot/ at once; what each dialog, note and report says, and what was sent
async function immichStack([key, onePath]) {
  const bodies = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (r.method() === "POST" && /^\/api\/twinlens\/groups\/(.+\/)?stack$/.test(path)) {
      bodies.push({ path, body: JSON.parse(r.postData() || "{}") });
    }
  });
  const cardsShown = () => page.$$eval("li.grp", (lis) => lis.map((li) => ({
    id: li.dataset.id,
    paths: [...li.querySelectorAll("tr[data-path]")].map((tr) => tr.dataset.path),
    stack: [...li.querySelectorAll("button")].some((b) => b.textContent === "Stack in Immich"),
    cover: li.querySelector(".stack-action .muted")?.textContent ?? null,
    note: li.querySelector(".card-note .notice")?.textContent ?? null,
  })));
  await logInWithKey(key, "#/groups");
  await page.locator("li.grp").first().waitFor();
  out.cards = await cardsShown();
  out.bulkButton = await page.getByRole("button", { name: "Stack all shown groups in Immich" }).count();

  const card = groupOf(onePath);
  out.oneId = await card.getAttribute("data-id");
  const button = card.getByRole("button", { name: "Stack in Immich" });
  out.oneDescribedBy = await button.evaluate((b) => document.getElementById(b.getAttribute("aria-describedby"))?.textContent);
  const dialog = page.getByRole("dialog");
  const focused = () => page.evaluate(() => ({
    tag: document.activeElement?.tagName ?? null,
    text: document.activeElement?.textContent ?? null,
    id: document.activeElement?.dataset?.id ?? null,
    card: document.activeElement?.closest("li")?.dataset?.id ?? null,
  }));
  // Its dry run's dialog, closed by Escape: nothing stacked, the keyboard back on the button
  await button.focus();
  await page.keyboard.press("Enter");
  await dialog.waitFor();
  out.oneTitle = await dialog.locator("h2").innerText();
  out.oneDialog = await dialogText(dialog);
  out.oneDialogFocus = await page.evaluate(() => !!document.activeElement?.closest("dialog"));
  await shot("stack-one-dry-run");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  await page.waitForTimeout(200);
  out.afterEscape = await focused();
  // ... then confirmed
  await button.click();
  await dialog.waitFor();
  await dialog.getByRole("button", { name: /^Stack \d+ photos?$/ }).click();
  await dialog.waitFor({ state: "hidden" });
  const note = card.locator(".card-note .notice");
  await note.waitFor();
  out.oneNote = await note.innerText();
  out.oneNoteRole = await note.getAttribute("role");
  out.afterConfirm = await focused();
  // ... and asked again: stacked already, said in the card with no dialog
  await button.click();
  await page.waitForFunction((id) =>
    document.querySelector(`li.grp[data-id="${id}"] .card-note .notice`)?.textContent.startsWith("Already"), out.oneId);
  out.oneAgain = await note.innerText();
  out.afterAgain = await focused();
  out.dialogsAfterAgain = await dialog.count() && await dialog.isVisible();

  // Every group of shoot/ at once
  const folder = page.getByLabel("Folder", { exact: true });
  await folder.fill("shoot");
  await page.getByRole("button", { name: "Show", exact: true }).click();
  await page.waitForFunction(() => {
    const cards = [...document.querySelectorAll("li.grp")];
    return location.hash.includes("folder=") && cards.length > 0 &&
      cards.every((li) => [...li.querySelectorAll("tr[data-path]")].some((tr) => tr.dataset.path.includes("/shoot/")));
  });
  out.folderCards = await page.locator("li.grp").count();
  const folderHash = await page.evaluate(() => location.hash);
  // Its dry run's dialog open, Back: the dialog goes with the list it spoke of
  await page.getByRole("button", { name: "Stack all shown groups in Immich" }).click();
  await dialog.waitFor();
  await page.goBack();
  await page.waitForFunction(() => !location.hash.includes("folder="));
  await page.waitForTimeout(300);
  out.afterBack = { dialog: await dialog.isVisible(), hash: await page.evaluate(() => location.hash) };
  await page.goForward();
  await page.waitForFunction((h) => location.hash === h, folderHash);
  await page.locator("li.grp").first().waitFor();
  await page.getByRole("button", { name: "Stack all shown groups in Immich" }).click();
  await dialog.waitFor();
  out.bulkTitle = await dialog.locator("h2").innerText();
  out.bulkDialog = await dialogText(dialog);
  out.bulkSkipped = await dialog.locator(".stack-skipped li").allInnerTexts();
  await shot("stack-bulk-dry-run");
  // While it runs, leaving the page (a reload, closing the tab) asks first
  out.leaveWarns = [await leaveWarns()];
  const hold = await holdRealPost("/api/twinlens/groups/stack");
  await dialog.getByRole("button", { name: /^Stack \d+ groups?$/ }).click();
  await hold.arrived;
  out.leaveWarns.push(await leaveWarns());
  await hold.release();
  await dialog.waitFor({ state: "hidden" });
  const report = page.locator(".stack-report");
  await report.waitFor();
  out.leaveWarns.push(await leaveWarns());
  out.report = await report.locator("p").first().innerText();
  await page.waitForTimeout(200);
  out.reportFocused = await page.evaluate(() => document.activeElement?.classList.contains("stack-report") ?? false);
  await report.locator("summary").click();
  out.reportLines = (await report.locator("li").allInnerTexts()).map((t) => t.replace(/\s+/g, " "));
  out.folderNotes = await cardsShown();
  out.bodies = bodies;
  await shot("stack-bulk-done");
  // A phone's width: nothing reaches past the window
  await page.setViewportSize({ width: 375, height: 800 });
  await page.waitForTimeout(200);
  out.narrow = await page.evaluate(() => {
    const doc = document.scrollingElement;
    const right = (el) => Math.round(el.getBoundingClientRect().right);
    return {
      width: doc.clientWidth,
      sideways: doc.scrollWidth - doc.clientWidth,
      edges: [...document.querySelectorAll("li.grp, .grp-actions button, .stack-action, .filters .bulk, .stack-report")]
        .map(right),
    };
  });
  await shot("stack-375");
}

try {
  if (scenario === "local") await local(rest);
  else if (scenario === "immich-stack") await immichStack(rest);
  else if (scenario === "layout") await layout();
  else if (scenario === "immich-dialog-focus") await immichDialogFocus(rest);
  else if (scenario === "problems") await problems(rest);
  else if (scenario === "problems-none") await problemsNone();
  else if (scenario === "problems-bytes") await problemsBytes(rest);
  else if (scenario === "paging") await paging();
  else if (scenario === "duplicates-folder") await duplicatesFolder(rest);
  else if (scenario === "immich-folder-bulk") await immichFolderBulk(rest);
  else if (scenario === "roots-fresh") await rootsFresh(rest);
  else if (scenario === "roots-overview") await rootsOverview(rest);
  else if (scenario === "regroup") await regroup(rest);
  else if (scenario === "regroup-gone") await regroupGone(rest);
  else if (scenario === "step-back") await stepBack();
  else if (scenario === "reopened-elsewhere") await reopenedElsewhere();
  else if (scenario === "immich-lazy") await immichLazy(rest);
  else if (scenario === "immich-escaped") await immichEscaped(rest);
  else if (scenario === "overview-capped") await overviewCapped();
  else if (scenario === "overview-running") await overviewRunning();
  else if (scenario === "no-roots") await noRoots();
  else if (scenario === "local-recovery") await localRecovery();
  else if (scenario === "overview") await overview();
  else if (scenario === "immich-in-trash") await immichInTrash(rest);
  else if (scenario === "immich-user") await immichUser(rest);
  else if (scenario === "immich") await immich(rest);
  else if (scenario === "immich-undo") await immichUndo(rest);
  else if (scenario === "immich-undo-earlier") await immichUndoEarlier(rest);
  else if (scenario === "immich-bulk") await immichBulk(rest);
  else if (scenario === "immich-refused") await immichRefused(rest);
  else if (scenario === "immich-502") await immich502(rest);
  else if (scenario === "corrections") await corrections(rest);
  else throw new Error(`unknown scenario ${scenario}`);
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
  try {
    await shot(`${scenario}-failure`);
  } catch {
    /* ignore */
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
