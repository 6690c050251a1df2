// Statistik in a real Chromium. Two organisations with seeded plans, a
// coordinator of the first and an analyst. The coordinator opens the
// statistics page: the three charts are Chart.js charts whose points are the
// table's rows, the tables hold exactly the API's figures, a suppressed cell
// is ".." in the table and no bar but a ".." mark in the chart, never 0;
// printed, the charts are redrawn at print size and resolution with pixels
// on them. The analyst picks an organisation and the figures change; the
// English switch turns the labels, months and numbers English. axe-core finds
// no violation and the page logs no console error. Screenshots to docs/ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startKipd, launchBrowser, newPage, shotPath } from './kip.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const PASSWORD = 'Statistik-koordinator-2026';
const ANALYST_PASSWORD = 'Statistik-analytiker-2026';
const LAPTOP = { width: 1366, height: 768 };
const TABLET = { width: 820, height: 1180 };
let kipd; let browser; let orgA; let orgB;

// An instant `days` days before now, as RFC 3339 (the hour does not matter:
// the test compares the page with the API's own grouping).
const ago = (days) => new Date(Date.now() - days * 86400000).toISOString().replace(/\.\d+Z$/, 'Z');
// A Copenhagen day `days` from today, as YYYY-MM-DD.
const cphDay = (days = 0) => new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Copenhagen' })
  .format(new Date(Date.now() + days * 86400000));

let cprSerial = 0;
function validCpr() {
  cprSerial += 1;
  return `0101${String(50 + cprSerial).padStart(2, '0')}-${String(1000 + Math.floor(Math.random() * 2999)).padStart(4, '0')}`;
}

// `n` plans of the token's organisation, each with consent `consentDays` ago,
// a held meeting `meetingDays` ago and one action due `dueDays` from today,
// done when `done`.
async function seedPlans(C, n, { consentDays, meetingDays, dueDays, done }) {
  const plans = [];
  for (let i = 0; i < n; i += 1) {
    const cpr = validCpr();
    kipd.secret(cpr);
    const plan = await C('POST', '/v1/plans', { citizen: { name: `Borger ${cprSerial}`, cpr }, reason: 'Komplekse behov på tværs af sektorer' });
    await C('POST', `/v1/plans/${plan.id}/consent`, { kip_consent: true, form: 'written', given_at: ago(consentDays) });
    const doc = await C('GET', `/v1/plans/${plan.id}`);
    const citizen = doc.participants.find((p) => p.kind === 'citizen').id;
    const m = await C('POST', `/v1/plans/${plan.id}/meetings`, { starts_at: ago(meetingDays), purpose: 'KIP-møde', location: { kind: 'hospital' } });
    await C('POST', `/v1/meetings/${m.id}/outcome`, {
      attendance: [{ participant_id: doc.coordinator, attended: true }, { participant_id: citizen, attended: true }],
      summary: 'Aftalt opfølgning.', citizen_accepted: true, no_further_meeting: { reason: 'Forløbet er stabilt.' },
    });
    const a = await C('POST', `/v1/plans/${plan.id}/actions`, {
      title: 'Afklar bolig', area: 'housing', responsible_participant_id: doc.coordinator, due_date: cphDay(dueDays),
    });
    if (done) await C('PATCH', `/v1/actions/${a.id}`, { status: 'done' }, { 'If-Match': '*' });
    plans.push(doc);
  }
  return plans;
}

// The API with a bearer token (and extra headers, e.g. If-Match).
async function call(token, method, p, body, headers = {}) {
  const res = await fetch(kipd.url + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

before(async () => {
  kipd = await startKipd();
  const A = (m, p, b) => call(kipd.adminToken, m, p, b);
  orgA = await A('POST', '/v1/organisations', { name: 'Hvidovre Hospital', sector: 'region_hospital' });
  orgB = await A('POST', '/v1/organisations', { name: 'Hvidovre Kommune, Socialforvaltningen', sector: 'municipality_social' });
  const orgC = await A('POST', '/v1/organisations', { name: 'Region Hovedstaden, Kvalitet', sector: 'other' });
  const user = await A('POST', '/v1/users', {
    username: 'lone.berg', display_name: 'Lone Berg', organisation_id: orgA.id, roles: ['coordinator'], password: PASSWORD,
  });
  kipd.secret(PASSWORD);
  const userB = await A('POST', '/v1/users', {
    username: 'bo.holm', display_name: 'Bo Holm', organisation_id: orgB.id, roles: ['coordinator'],
  });
  await A('POST', '/v1/users', {
    username: 'anna.analytiker', display_name: 'Anna Analytiker', organisation_id: orgC.id, roles: ['analyst'], password: ANALYST_PASSWORD,
  });
  kipd.secret(ANALYST_PASSWORD);
  const as = async (u) => {
    const tok = await A('POST', `/v1/users/${u.id}/tokens`, { name: 'browser test seed' });
    return (m, p, b, headers) => call(tok.token, m, p, b, headers);
  };
  const C = await as(user);
  const CB = await as(userB);
  // A: six plans (consent 60 days ago, a held meeting 40 days ago, an action
  // due today and done: on time); one more meeting cancelled (1: a small,
  // suppressed count). B: five plans (consent 50 days ago, meeting 30 days
  // ago, an action due 3 days ago and still open: late).
  const plans = await seedPlans(C, 6, { consentDays: 60, meetingDays: 40, dueDays: 0, done: true });
  await seedPlans(CB, 5, { consentDays: 50, meetingDays: 30, dueDays: -3, done: false });
  const m = await C('POST', `/v1/plans/${plans[0].id}/meetings`, { starts_at: ago(20), purpose: 'Aflyst møde', location: { kind: 'hospital' } });
  await C('POST', `/v1/meetings/${m.id}/cancel`, { reason: 'Borgeren er indlagt' }, { 'If-Match': '*' });
  await A('POST', '/v1/admin/daily-pass');
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (kipd) await kipd.stop();
});

const shown = (c) => (c !== null && typeof c === 'object' && c.suppressed ? '..' : c === null ? '–' : null);
const isSuppressed = (c) => c !== null && typeof c === 'object' && c.suppressed === true;

// On a failure: the console errors and a screenshot, then the failure.
async function explained(page, body) {
  try {
    await body();
  } catch (e) {
    const file = `${process.env.TMPDIR || '/tmp'}/kipd-stats-failure.png`;
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`# failure screenshot: ${file} at ${page.url()}`);
    for (const p of page.problems) console.log(`# ${p}`);
    throw e;
  }
}

async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByLabel('Brugernavn').fill(username);
  await page.getByLabel('Adgangskode').fill(password);
  await page.getByRole('button', { name: 'Log ind' }).click();
  await page.getByRole('heading', { name: 'Mine forløb', level: 1 }).waitFor();
}

// page.waitForFunction evaluates a string, which the UI's CSP forbids: poll
// with page.evaluate instead.
async function poll(page, fn, arg, what, timeout = 10000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await page.waitForTimeout(100);
  }
}

// Every chart on the page as Chart.js holds it, with its canvas's size and
// how many of its pixels are painted: all (alpha > 0) and those of a colour.
function readCharts(page, rgb = null) {
  return page.evaluate((want) => [...document.querySelectorAll('canvas')].map((c) => {
    const ch = window.Chart && window.Chart.getChart(c);
    if (!ch) return { id: c.id, chart: false };
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0; let coloured = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 0) painted += 1;
      if (want && px[i + 3] === 255 && Math.abs(px[i] - want[0]) < 8 && Math.abs(px[i + 1] - want[1]) < 8 && Math.abs(px[i + 2] - want[2]) < 8) coloured += 1;
    }
    const box = c.getBoundingClientRect();
    return {
      id: c.id,
      chart: true,
      type: ch.config.type,
      locale: ch.options.locale,
      labels: ch.data.labels,
      datasets: ch.data.datasets.map((d) => ({ label: d.label, data: d.data, marks: d.kipMarks, column: d.kipColumn })),
      width: c.width,
      height: c.height,
      cssWidth: box.width,
      cssHeight: box.height,
      dpr: ch.currentDevicePixelRatio,
      pixels: c.width * c.height,
      painted,
      coloured,
    };
  }), rgb);
}

const chartsDrawn = () => [...document.querySelectorAll('canvas')].length === 3
  && [...document.querySelectorAll('canvas')].every((c) => window.Chart && window.Chart.getChart(c));

// The table's rows (without the total) as the page shows them: the row
// header and the cells' texts.
function tableRows(page, id) {
  return page.evaluate((sel) => [...document.querySelectorAll(`${sel} tbody tr:not(.total)`)].map((tr) => ({
    label: tr.querySelector('th').textContent.trim(),
    cells: [...tr.querySelectorAll('td')].map((td) => td.textContent.trim()),
  })), `#${id}`);
}

// A chart's points against the API's table: one point per group row, the
// same labels as the table's row headers, a number where the API has one, and
// a null with a ".." mark where it suppressed the cell.
async function checkChart(page, chart, apiTable, columns, { share = false } = {}) {
  const id = chart.id.replace(/-chart$/, '');
  const rows = await tableRows(page, id);
  assert.equal(chart.type, 'bar', `${id} is a bar chart`);
  assert.equal(chart.labels.length, apiTable.rows.length, `${id}: a point per group`);
  assert.deepEqual(chart.labels, rows.map((r) => r.label), `${id}: the chart's labels are the table's rows`);
  assert.deepEqual(chart.datasets.map((d) => d.column), columns, `${id}: the charted columns`);
  let suppressed = 0;
  for (const [j, col] of columns.entries()) {
    const ds = chart.datasets[j];
    assert.equal(ds.data.length, rows.length, `${id} ${col}: as many points as table rows`);
    for (const [i, r] of apiTable.rows.entries()) {
      const c = r[col];
      if (isSuppressed(c)) {
        suppressed += 1;
        assert.equal(ds.data[i], null, `${id} ${col} row ${i}: a suppressed cell is no bar`);
        assert.equal(ds.marks[i], '..', `${id} ${col} row ${i}: a suppressed cell is marked ..`);
      } else if (c === null) {
        assert.equal(ds.data[i], null);
        assert.equal(ds.marks[i], '–');
      } else {
        assert.ok(Math.abs(ds.data[i] - (share ? c * 100 : c)) < 1e-9, `${id} ${col} row ${i}: ${ds.data[i]} is the API's ${c}`);
        assert.equal(ds.marks[i], share && c === 0 ? '0 %' : null, `${id} ${col} row ${i}: a 0 % share is marked`);
      }
    }
  }
  return suppressed;
}

async function axeClean(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  assert.deepEqual(violations, [], `axe-core finds no violation (${what})`);
}

// Laptop and tablet screenshots; Chart.js follows the new width (its
// ResizeObserver) before each.
async function shots(page, name) {
  for (const [kind, size] of [['laptop', LAPTOP], ['tablet', TABLET]]) {
    await page.setViewportSize(size);
    await poll(page, (w) => [...document.querySelectorAll('canvas')].every((c) => {
      const ch = window.Chart.getChart(c);
      return ch && Math.abs(ch.width - c.parentElement.clientWidth) < 2 && w > 0;
    }), size.width, `charts resized to ${kind}`);
    await axeClean(page, `${kind}-${name}`);
    await page.screenshot({ path: shotPath(`${kind}-${name}`), fullPage: true });
  }
  await page.setViewportSize(LAPTOP);
}

test('a coordinator sees the statistics as Chart.js charts and tables, and prints them', { timeout: 180000 }, async () => {
  const page = await newPage(browser, kipd.url);
  await explained(page, async () => {
    await signIn(page, 'lone.berg', PASSWORD);
    await page.getByRole('link', { name: 'Statistik' }).click();
    await page.getByRole('heading', { name: 'Statistik', level: 1 }).waitFor();
    await page.locator('#stats-sector table').waitFor();
    await poll(page, chartsDrawn, null, 'three Chart.js charts');

    // A coordinator has no organisation picker; the scope line names theirs.
    assert.equal(await page.locator('#stats-org').count(), 0, 'no organisation picker for a coordinator');
    assert.match(await page.locator('#stats-scope').textContent(), /Hvidovre Hospital · opdelt efter måned$/);

    // The API's own answer, with the page's session.
    const api = await page.evaluate(async () => (await fetch(`/v1/stats${location.search}`, { headers: { Accept: 'application/json' } })).json());

    // Three Chart.js charts whose points are the tables' rows.
    const charts = await readCharts(page, [31, 95, 139]);
    assert.deepEqual(charts.map((c) => c.id), ['stats-meetings-chart', 'stats-first-chart', 'stats-sector-chart']);
    assert.ok(charts.every((c) => c.chart), 'every canvas is a Chart.js chart');
    let suppressedInCharts = await checkChart(page, charts[0], api.activity, ['meetings_held', 'meetings_cancelled']);
    suppressedInCharts += await checkChart(page, charts[1], api.activity, ['first_meeting_median_days', 'first_meeting_p90_days']);
    suppressedInCharts += await checkChart(page, charts[2], api.actions_by_sector, ['actions_on_time_share'], { share: true });
    assert.ok(suppressedInCharts >= 1, 'the suppressed cancelled meeting is a marked gap in the chart');
    assert.ok(charts[0].datasets[0].data.includes(6), 'six held meetings are a bar of 6');
    const hospital = api.actions_by_sector.rows.findIndex((r) => r.key === 'region_hospital');
    assert.equal(charts[2].datasets[0].data[hospital], 100, 'the hospital did all its actions on time: 100 %');
    assert.equal(charts[2].labels[hospital], 'Hospital');
    for (const c of charts) {
      assert.ok(c.cssWidth > 300 && c.cssHeight > 150, `${c.id} has a size on screen (${c.cssWidth}×${c.cssHeight})`);
      assert.ok(c.painted > c.pixels * 0.01, `${c.id} has pixels drawn (${c.painted} of ${c.pixels})`);
    }
    assert.ok(charts[0].coloured > 500, `the meetings chart has bars in the first colour (${charts[0].coloured} px)`);
    assert.equal(charts[0].locale, 'da-DK');
    assert.ok(charts[0].labels.every((l) => /^[a-zæøå]+\.? \d{4}$/.test(l)), `Danish month names: ${charts[0].labels.join(', ')}`);

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

    // By sector: a row per sector of the API; the hospital's share in Danish.
    assert.equal(await page.locator('#stats-sector tbody tr').count(), api.actions_by_sector.rows.length + 1);
    assert.equal((await page.locator('#stats-sector tbody tr').nth(hospital).locator('td').first().textContent()).trim(), '100 %');

    // The CSV download: fetched with Accept: text/csv and saved.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Hent som CSV' }).click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    assert.ok(csv.includes('table;activity'), 'the CSV holds the activity table');
    assert.ok(csv.includes('..'), 'the CSV marks suppressed cells');

    await shots(page, '12-statistik');

    // Print: the charts are redrawn 160 mm wide at 3 device pixels per CSS
    // pixel, in black and grey, and have ink on them; the filter is gone.
    await page.emulateMedia({ media: 'print' });
    await poll(page, () => [...document.querySelectorAll('canvas')].every((c) => window.Chart.getChart(c).currentDevicePixelRatio === 3),
      null, 'the charts redrawn for print');
    const printed = await readCharts(page, [0, 0, 0]);
    const mm = 96 / 25.4;
    for (const c of printed) {
      assert.ok(Math.abs(c.cssWidth - 160 * mm) < 3, `${c.id} is 160 mm wide printed (${c.cssWidth} px)`);
      assert.ok(c.width >= Math.floor(160 * mm * 3) - 3, `${c.id} has print resolution (${c.width}×${c.height} device px)`);
      assert.ok(c.cssHeight > 70 * mm, `${c.id} is at least 70 mm high printed (${c.cssHeight} px)`);
      assert.ok(c.painted > c.pixels * 0.01, `${c.id} has pixels drawn in print (${c.painted} of ${c.pixels})`);
    }
    assert.ok(printed[0].coloured > 2000, `the printed meetings chart has black bars (${printed[0].coloured} px)`);
    assert.ok(printed[2].coloured > 2000, `the printed sector chart has a black bar (${printed[2].coloured} px)`);
    assert.equal(await page.locator('.stats-filter').isVisible(), false, 'the filter is not printed');
    assert.equal(await page.locator('#stats-scope').isVisible(), true, 'what the figures cover is printed');
    await page.screenshot({ path: shotPath('laptop-12-statistik-print'), fullPage: true });
    await page.emulateMedia({ media: 'screen' });
    await poll(page, () => [...document.querySelectorAll('canvas')].every((c) => window.Chart.getChart(c).currentDevicePixelRatio === window.devicePixelRatio),
      null, 'the charts back on screen');
    const back = await readCharts(page, [31, 95, 139]);
    assert.ok(back[0].coloured > 500, 'back on screen the bars are in colour again');

    // Real printing (a PDF, A4): beforeprint finds every chart redrawn for
    // print, afterprint finds them back.
    await page.evaluate(() => {
      const state = () => [...document.querySelectorAll('canvas')].map((c) => window.Chart.getChart(c).currentDevicePixelRatio);
      window.kipPrintSeen = [];
      window.addEventListener('beforeprint', () => window.kipPrintSeen.push(['before', ...state()]));
      window.addEventListener('afterprint', () => window.kipPrintSeen.push(['after', ...state()]));
    });
    const pdf = await page.pdf({ format: 'A4' });
    assert.ok(pdf.length > 20000, `a PDF (${pdf.length} bytes)`);
    const dpr = await page.evaluate(() => window.devicePixelRatio);
    assert.deepEqual(await page.evaluate(() => window.kipPrintSeen), [['before', 3, 3, 3], ['after', dpr, dpr, dpr]]);
    assert.deepEqual(page.problems, [], 'no console errors');
  });
});

test('an analyst picks an organisation, and the page switches to English', { timeout: 180000 }, async () => {
  const page = await newPage(browser, kipd.url);
  await explained(page, async () => {
    await signIn(page, 'anna.analytiker', ANALYST_PASSWORD);
    await page.getByRole('link', { name: 'Statistik' }).click();
    await page.getByRole('heading', { name: 'Statistik', level: 1 }).waitFor();
    await poll(page, chartsDrawn, null, 'three Chart.js charts');

    // The picker: every organisation, sorted by name, after "all".
    const picker = page.getByLabel('Organisation', { exact: true });
    const options = await picker.locator('option').allTextContents();
    assert.deepEqual(options, ['Alle organisationer', 'Hvidovre Hospital', 'Hvidovre Kommune, Socialforvaltningen', 'kipd administration',
      'Region Hovedstaden, Kvalitet']);
    assert.equal(await picker.inputValue(), '');

    // The figures for a choice: the held meetings' total in the table and the
    // sum of the chart's bars, and the API's answer for the same query.
    const figures = async () => {
      await poll(page, chartsDrawn, null, 'the charts');
      const api = await page.evaluate(async () => (await fetch(`/v1/stats${location.search}`, { headers: { Accept: 'application/json' } })).json());
      const [meetings, , sector] = await readCharts(page);
      const total = (await page.locator('#stats-meetings tbody tr.total td').first().textContent()).trim();
      await checkChart(page, meetings, api.activity, ['meetings_held', 'meetings_cancelled']);
      await checkChart(page, sector, api.actions_by_sector, ['actions_on_time_share'], { share: true });
      return {
        total: Number(total),
        charted: meetings.datasets[0].data.reduce((a, v) => a + (v ?? 0), 0),
        api: api.activity.total.meetings_held,
        sectors: Object.fromEntries(api.actions_by_sector.rows.filter((r) => r.actions_due !== 0).map((r) => [r.key, r.actions_on_time_share])),
      };
    };
    const all = await figures();
    assert.deepEqual([all.total, all.charted, all.api], [11, 11, 11], 'all organisations: 6 + 5 held meetings');
    assert.deepEqual(all.sectors, { region_hospital: 1, municipality_social: 0 });
    assert.match(await page.locator('#stats-scope').textContent(), /Alle organisationer/);
    await shots(page, '12-statistik-analytiker');

    const pick = async (name) => {
      await picker.selectOption({ label: name });
      await page.getByRole('button', { name: 'Vis' }).click();
      await page.locator('#stats-scope', { hasText: name }).waitFor();
    };
    await pick('Hvidovre Hospital');
    assert.equal(new URL(page.url()).searchParams.get('organisation'), orgA.id);
    const a = await figures();
    assert.deepEqual([a.total, a.charted, a.api], [6, 6, 6], 'Hvidovre Hospital: 6 held meetings');
    assert.deepEqual(a.sectors, { region_hospital: 1 });
    await pick('Hvidovre Kommune, Socialforvaltningen');
    assert.equal(new URL(page.url()).searchParams.get('organisation'), orgB.id);
    const b = await figures();
    assert.deepEqual([b.total, b.charted, b.api], [5, 5, 5], 'the municipality: 5 held meetings');
    assert.deepEqual(b.sectors, { municipality_social: 0 }, 'its actions were late: 0 %');
    assert.equal(await picker.inputValue(), orgB.id, 'the picker shows the choice after the reload of the figures');

    // English: the headings, the charts' labels and months, the suppressed
    // mark's explanation; the choice of organisation stays.
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('heading', { name: 'Statistics', level: 1 }).waitFor();
    await poll(page, chartsDrawn, null, 'the charts in English');
    const en = await readCharts(page);
    assert.equal(en[0].locale, 'en-GB');
    assert.deepEqual(en[0].datasets.map((d) => d.label), ['Meetings held', 'Meetings cancelled']);
    assert.ok(en[0].labels.every((l) => /^[A-Z][a-z]{2,3} \d{4}$/.test(l)), `English month names: ${en[0].labels.join(', ')}`);
    const sectorRows = await tableRows(page, 'stats-sector');
    assert.ok(sectorRows.some((r) => r.label === 'Hospital') && sectorRows.some((r) => r.label === 'Social services'), 'sector names in English');
    assert.equal(await page.getByLabel('Organisation', { exact: true }).inputValue(), orgB.id);
    await page.getByText('means the figure is not shown for discretion').waitFor();
    await page.getByRole('button', { name: 'Dansk' }).click();
    await page.getByRole('heading', { name: 'Statistik', level: 1 }).waitFor();
    assert.deepEqual(page.problems, [], 'no console errors');
  });
});
