// Statistik in a real Chromium: a coordinator with seeded plans opens the
// statistics page; the charts are drawn, the tables hold exactly the API's
// figures, a suppressed cell shows as "..", never as 0; axe-core finds no
// violation and the page logs no console error. Screenshots to docs/ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startKipd, apiCall, launchBrowser, newPage, shotPath } from './kip.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const PASSWORD = 'Statistik-koordinator-2026';
let kipd; let browser;

// An instant `days` days before now, as RFC 3339 (the hour does not matter:
// the test compares the page with the API's own grouping).
const ago = (days) => new Date(Date.now() - days * 86400000).toISOString().replace(/\.\d+Z$/, 'Z');

function validCpr(i) {
  return `0101${70 + i}-${String(1000 + Math.floor(Math.random() * 2999)).padStart(4, '0')}`;
}

before(async () => {
  kipd = await startKipd();
  const A = (m, p, b) => apiCall(kipd.url, kipd.adminToken, m, p, b);
  const org = await A('POST', '/v1/organisations', { name: 'Hvidovre Hospital', sector: 'region_hospital' });
  const user = await A('POST', '/v1/users', {
    username: 'lone.berg', display_name: 'Lone Berg', organisation_id: org.id, roles: ['coordinator'], password: PASSWORD,
  });
  kipd.secret(PASSWORD);
  const tok = await A('POST', `/v1/users/${user.id}/tokens`, { name: 'browser test seed' });
  const C = (m, p, b) => apiCall(kipd.url, tok.token, m, p, b);
  // Six plans with consent 60 days ago and a held meeting 40 days ago; one
  // more meeting cancelled (1: a small, suppressed count).
  const plans = [];
  for (let i = 0; i < 6; i += 1) {
    const cpr = validCpr(i);
    kipd.secret(cpr);
    const plan = await C('POST', '/v1/plans', { citizen: { name: `Borger ${i}`, cpr }, reason: 'Komplekse behov på tværs af sektorer' });
    await C('POST', `/v1/plans/${plan.id}/consent`, { kip_consent: true, form: 'written', given_at: ago(60) });
    const doc = await C('GET', `/v1/plans/${plan.id}`);
    const citizen = doc.participants.find((p) => p.kind === 'citizen').id;
    const m = await C('POST', `/v1/plans/${plan.id}/meetings`, { starts_at: ago(40), purpose: 'KIP-møde', location: { kind: 'hospital' } });
    await C('POST', `/v1/meetings/${m.id}/outcome`, {
      attendance: [{ participant_id: doc.coordinator, attended: true }, { participant_id: citizen, attended: true }],
      summary: 'Aftalt opfølgning.', citizen_accepted: true, no_further_meeting: { reason: 'Forløbet er stabilt.' },
    });
    plans.push(doc);
  }
  const m = await C('POST', `/v1/plans/${plans[0].id}/meetings`, { starts_at: ago(20), purpose: 'Aflyst møde', location: { kind: 'hospital' } });
  const res = await fetch(`${kipd.url}/v1/meetings/${m.id}/cancel`, {
    method: 'POST', body: JSON.stringify({ reason: 'Borgeren er indlagt' }),
    headers: { Authorization: `Bearer ${tok.token}`, 'Content-Type': 'application/json', 'If-Match': '*' },
  });
  assert.equal(res.status, 200, await res.text());
  await A('POST', '/v1/admin/daily-pass');
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (kipd) await kipd.stop();
});

const shown = (c) => (c !== null && typeof c === 'object' && c.suppressed ? '..' : c === null ? '–' : null);

test('a coordinator sees the statistics as charts and tables', { timeout: 120000 }, async () => {
  const page = await newPage(browser, kipd.url);
  await page.goto('/');
  await page.getByLabel('Brugernavn').fill('lone.berg');
  await page.getByLabel('Adgangskode').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log ind' }).click();
  await page.getByRole('heading', { name: 'Mine forløb', level: 1 }).waitFor();
  await page.getByRole('link', { name: 'Statistik' }).click();
  await page.getByRole('heading', { name: 'Statistik', level: 1 }).waitFor();
  await page.locator('#stats-sector table').waitFor();

  // The API's own answer, with the page's session.
  const api = await page.evaluate(async () => (await fetch(`/v1/stats${location.search}`, { headers: { Accept: 'application/json' } })).json());

  // Three charts, each with bars or suppression marks drawn.
  const charts = page.locator('svg.chart');
  assert.equal(await charts.count(), 3);
  assert.ok(await page.locator('#stats-meetings svg.chart rect.bar').count() > 0, 'meetings chart has bars');
  const box = await charts.first().boundingBox();
  assert.ok(box.width > 100 && box.height > 50, 'the chart has a size');

  // The meetings table: every row's held and cancelled as the API says.
  const rows = page.locator('#stats-meetings tbody tr');
  const apiRows = [...api.activity.rows, api.activity.total];
  assert.equal(await rows.count(), apiRows.length);
  let suppressedSeen = 0; let heldSix = false;
  for (const [i, r] of apiRows.entries()) {
    const cells = rows.nth(i).locator('td');
    for (const [j, col] of ['meetings_held', 'meetings_cancelled'].entries()) {
      const text = (await cells.nth(j).textContent()).trim();
      const want = shown(r[col]) ?? String(r[col]);
      assert.equal(text, want, `row ${i} ${col}`);
      if (want === '..') suppressedSeen += 1;
      if (col === 'meetings_held' && r[col] === 6) heldSix = true;
    }
  }
  assert.ok(heldSix, 'six held meetings are shown as 6');
  assert.equal(api.activity.total.meetings_cancelled.suppressed, true, 'one cancelled meeting is suppressed by the API');
  assert.ok(suppressedSeen >= 2, 'the suppressed cells show as ..');
  const sup = page.locator('#stats-meetings tbody tr').last().locator('td.suppressed abbr');
  assert.equal(await sup.getAttribute('title'), 'Diskretioneret: vises ikke');
  await page.getByText('betyder, at tallet ikke vises af diskretionshensyn').waitFor();

  // Time to the first meeting: six plans, 20 days each (median and p90 20).
  const firstTotal = page.locator('#stats-first tbody tr').last().locator('td');
  assert.equal((await firstTotal.nth(0).textContent()).trim(), shown(api.activity.total.first_meeting_median_days) ?? String(api.activity.total.first_meeting_median_days));
  assert.equal(api.activity.total.first_meeting_plans, 6);
  assert.equal((await firstTotal.nth(2).textContent()).trim(), '6');

  // By sector: a row per sector of the API.
  assert.equal(await page.locator('#stats-sector tbody tr').count(), api.actions_by_sector.rows.length + 1);

  // The CSV download: fetched with Accept: text/csv and saved.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Hent som CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.ok(csv.includes('table;activity'), 'the CSV holds the activity table');
  assert.ok(csv.includes('..'), 'the CSV marks suppressed cells');

  // axe-core, then the screenshots.
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  assert.deepEqual(violations, [], 'axe-core finds no violation');
  await page.screenshot({ path: shotPath('laptop-12-statistik'), fullPage: true });
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.waitForTimeout(150);
  await page.screenshot({ path: shotPath('tablet-12-statistik'), fullPage: true });
  assert.deepEqual(page.problems, [], 'no console errors');
});
