// Drives the system Chromium through the Twinlens UI and prints what it saw as JSON.
//   node drive.mjs local  BASE_URL SHOT_DIR [--scan]   local mode: review, "Not duplicates"
//   node drive.mjs immich BASE_URL SHOT_DIR API_KEY    Immich mode: log in with a key, trash
// The pytest side (test_ui.py) asserts on this JSON and on the backend's state.
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
    await page.getByLabel("Re-read every file (full rescan)").check();
    await page.getByRole("button", { name: "Scan now" }).click();
    await page.locator(".job.last").filter({ hasText: /Last scan (done|failed|cancelled)/ })
      .waitFor({ timeout: 60000 });
    // Follow-up grouping/dedup passes too: no progress bars left.
    await page.waitForFunction(() => document.querySelectorAll(".job:not(.last)").length === 0,
                               null, { timeout: 60000 });
    out.overview.lastScan = (await page.locator(".job.last").innerText()).replace(/\s+/g, " ");
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
  await card.getByRole("button", { name: /Move others to Immich trash/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  out.dialog = (await dialog.innerText()).replace(/\s+/g, " ");
  await shot("dry-run");
  await dialog.getByRole("button", { name: /^Move 1 file to trash$/ }).click();
  await card.waitFor({ state: "detached" });
  await page.locator(".notice.ok").waitFor();
  out.message = await page.locator(".notice.ok").innerText();
  await shot("trashed");
}

try {
  if (scenario === "local") await local(rest);
  else if (scenario === "immich") await immich(rest);
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
