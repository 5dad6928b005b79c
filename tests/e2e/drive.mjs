// Drives the system Chromium through the Twinlens UI and prints what it saw as JSON.
//   node drive.mjs BASE_URL SHOT_DIR [--scan]
// The pytest side (test_ui.py) asserts on this JSON and on the backend's state.
import { chromium } from "playwright-core";

const [base, shotDir = "/tmp", ...flags] = process.argv.slice(2);
const executablePath = process.env.TWINLENS_CHROMIUM || "/usr/bin/chromium";
const out = { console: [], shots: [] };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage"],
});
try {
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
        thumbsLoaded: [...li.querySelectorAll(".thumb img")].filter((i) => i.complete && i.naturalWidth > 0).length,
        trashDisabled: li.querySelector("button.danger")?.disabled ?? null,
      })),
    );

  // Overview: stats, then (optionally) a scan through the button, watched to the end.
  await page.goto(`${base}/#/overview`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator(".card .figure").first().waitFor();
  out.overview = { cards: await page.$$eval(".card", (cs) => cs.map((c) => c.innerText.replace(/\s+/g, " ").trim())) };
  if (flags.includes("--scan")) {
    await page.getByRole("button", { name: "Scan now" }).click();
    await page.locator(".job.last").filter({ hasText: /Last scan (done|failed|cancelled)/ })
      .waitFor({ timeout: 60000 });
    // Wait for follow-up grouping/dedup passes to finish too (no progress bars left).
    await page.waitForFunction(() => document.querySelectorAll(".job:not(.last)").length === 0,
                               null, { timeout: 60000 });
    out.overview.lastScan = (await page.locator(".job.last").innerText()).replace(/\s+/g, " ");
    out.overview.failedFiles = await page.$$eval(".errors tbody tr", (rows) =>
      rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
  }
  await shot("overview");

  // Duplicates: the open groups with their thumbnails.
  await page.getByRole("link", { name: "Duplicates" }).click();
  await page.locator("li.dup").first().waitFor();
  // Thumbnails load lazily: wait for those of the first group (in view) to settle.
  await page.waitForFunction(() => {
    const first = document.querySelector("li.dup");
    const imgs = [...first.querySelectorAll(".thumb img")];
    return first.querySelectorAll(".thumb").length > 0 && imgs.every((i) => i.complete);
  });
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
  await page.locator("li.dup, .empty").first().waitFor();
  out.after = await groupsOnPage();

  // The dismissed group is listed under "Not duplicates".
  await page.getByLabel("Status").selectOption("dismissed");
  await page.locator(`li.dup[data-id="${target.id}"]`).waitFor();
  out.dismissedListed = true;
  await shot("dismissed");

  // Groups page.
  await page.getByRole("link", { name: "Groups" }).click();
  await page.getByRole("heading", { name: "Groups" }).waitFor();
  await page.locator("li.grp, .empty").first().waitFor();
  out.groups = await page.$$eval("li.grp", (lis) => lis.map((li) => li.querySelector("h2").textContent));
  await shot("groups");
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.error ? 1 : 0);
