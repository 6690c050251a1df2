// The whole KIP in a real Chromium, as two people: the social nurse
// (tovholder) and the jobcentre caseworker. A real PostgreSQL and a real
// kipd (launch.py); nothing is mocked. Every screen is checked with axe-core
// (no serious or critical violation) and for console errors, and written as
// a screenshot at laptop and tablet widths to docs/ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startKipd, apiCall, launchBrowser, newPage, shotPath } from './kip.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const LAPTOP = { width: 1366, height: 768 };
const TABLET = { width: 820, height: 1180 };
const PASSWORD_NURSE = 'Sygeplejerske-2026-kip';
const PASSWORD_CW = 'Jobcenter-sagsbehandler-2026';

let kipd; let browser; let seed;
const axeFindings = [];
const consoleProblems = [];

// A date in Copenhagen, days from today, as YYYY-MM-DD.
const cphDate = (days) => new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Copenhagen' })
  .format(new Date(Date.now() + days * 86400000));

function validCpr() {
  // 7th digit 0-3 → 1900s; modulus 11 is not checked by kipd.
  const n = String(1000 + Math.floor(Math.random() * 2999)).padStart(4, '0');
  return `1207${60 + Math.floor(Math.random() * 30)}-${n}`;
}

async function axeCheck(page, screen) {
  await page.evaluate(AXE);
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  for (const v of res) if (v.impact === 'serious' || v.impact === 'critical') axeFindings.push({ screen, ...v });
}

// Screenshot at laptop and tablet width (full page), axe at both.
async function capture(page, name) {
  await page.waitForLoadState('networkidle');
  for (const [kind, size] of [['laptop', LAPTOP], ['tablet', TABLET]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    await axeCheck(page, `${kind}-${name}`);
    await page.screenshot({ path: shotPath(`${kind}-${name}`), fullPage: true });
  }
  await page.setViewportSize(LAPTOP);
}

// Chromium logs every 4xx answer to fetch() as a console error of its own
// ("Failed to load resource"). The test provokes two on purpose (a wrong
// password, a bad CPR number); each is taken off the list exactly once, so
// any other one still fails the test.
function expectedHttpError(page, status) {
  const i = page.problems.findIndex((p) => p.includes(`status of ${status}`));
  assert.ok(i >= 0, `expected the browser to log HTTP ${status}`);
  page.problems.splice(i, 1);
}

function collect(page, who) {
  return () => { for (const p of page.problems) consoleProblems.push(`${who}: ${p}`); page.problems.length = 0; };
}

async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByLabel('Brugernavn').fill(username);
  await page.getByLabel('Adgangskode').fill(password);
  await page.getByRole('button', { name: 'Log ind' }).click();
  await page.getByRole('heading', { name: 'Mine forløb', level: 1 }).waitFor();
}

before(async () => {
  kipd = await startKipd();
  const A = (m, p, b) => apiCall(kipd.url, kipd.adminToken, m, p, b);
  const hospital = await A('POST', '/v1/organisations', { name: 'Bispebjerg Hospital', sector: 'region_hospital' });
  const jobcenter = await A('POST', '/v1/organisations', { name: 'Jobcenter København', sector: 'municipality_jobcenter' });
  const practice = await A('POST', '/v1/organisations', { name: 'Lægehuset Nørrebrogade', sector: 'general_practice' });
  const nurse = await A('POST', '/v1/users', {
    username: 'karen.holm', display_name: 'Karen Holm', organisation_id: hospital.id, roles: ['coordinator'],
    password: PASSWORD_NURSE, phone: '+45 38 63 50 00', email: 'karen.holm@regionh.dk',
  });
  const cw = await A('POST', '/v1/users', {
    username: 'mette.lund', display_name: 'Mette Lund', organisation_id: jobcenter.id, roles: ['caseworker'],
    password: PASSWORD_CW, phone: '+45 33 66 33 66', email: 'mette.lund@kk.dk',
  });
  for (const s of [PASSWORD_NURSE, PASSWORD_CW]) kipd.secret(s);
  seed = { hospital, jobcenter, practice, nurse, cw, cpr: validCpr() };
  kipd.secret(seed.cpr);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (kipd) await kipd.stop();
});

test('the whole KIP as the nurse and the caseworker', { timeout: 240000 }, async () => {
  try {
    await wholeKip();
  } catch (e) {
    // Leave a picture of every open page for whoever reads the failure.
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      await p.screenshot({ path: `${process.env.TMPDIR || '/tmp'}/kipd-browser-failure-${i}.png`, fullPage: true }).catch(() => {});
      console.log(`# failure screenshot: /tmp/kipd-browser-failure-${i}.png at ${p.url()}`);
    }
    throw e;
  }
});

async function wholeKip() {
  const nurse = await newPage(browser, kipd.url, LAPTOP);
  const flushNurse = collect(nurse, 'nurse');

  // Log ind, with a wrong password first.
  await nurse.goto('/');
  await nurse.getByLabel('Brugernavn').waitFor();
  assert.equal(await nurse.evaluate(() => document.documentElement.lang), 'da');
  await capture(nurse, '01-log-ind');
  await nurse.getByLabel('Brugernavn').fill('karen.holm');
  await nurse.getByLabel('Adgangskode').fill('forkert-adgangskode');
  await nurse.getByRole('button', { name: 'Log ind' }).click();
  await nurse.getByText('Forkert brugernavn eller adgangskode').waitFor();
  expectedHttpError(nurse, 401); // Chromium logs the refused sign-in itself
  await signIn(nurse, 'karen.holm', PASSWORD_NURSE);

  // Nyt forløb.
  await nurse.getByRole('link', { name: 'Nyt forløb' }).click();
  await nurse.getByLabel('Navn').first().fill('Jens Peter Hansen');
  await nurse.getByLabel('CPR-nummer').fill('311399-1234'); // not a date
  await nurse.getByLabel('Baggrund for forløbet').fill('Hjemløs, alkohol og KOL; mange aktører uden fælles plan.');
  await nurse.getByLabel('Mål 1').fill('Jeg vil have et sted at bo, hvor jeg kan få ro.');
  await nurse.getByLabel('Bolig', { exact: true }).check();
  await nurse.getByLabel('Rusmidler', { exact: true }).check();
  await nurse.getByRole('button', { name: 'Opret forløb' }).click();
  // The error is shown next to the CPR field, in Danish, and nothing typed is lost.
  const cprErr = nurse.locator('#' + (await nurse.getByLabel('CPR-nummer').getAttribute('id')) + '-err');
  await cprErr.waitFor({ state: 'visible' });
  assert.match(await cprErr.innerText(), /CPR/);
  assert.equal(await nurse.getByLabel('Mål 1').inputValue(), 'Jeg vil have et sted at bo, hvor jeg kan få ro.');
  expectedHttpError(nurse, 422);
  await capture(nurse, '03-nyt-forloeb-fejl');
  await nurse.getByLabel('CPR-nummer').fill(seed.cpr);
  await nurse.getByRole('button', { name: 'Opret forløb' }).click();
  await nurse.getByRole('heading', { name: 'Jens Peter Hansen', level: 1 }).waitFor();
  assert.ok(!nurse.url().includes(seed.cpr.slice(0, 6)), 'no CPR in the URL');
  const planId = nurse.url().split('/').pop();

  // Samtykke: KIP, contact with the jobcentre and the practice, relatives.
  await nurse.getByText('Der er ikke registreret samtykke').waitFor();
  await nurse.getByLabel('Jobcenter København').check();
  await nurse.getByLabel('Lægehuset Nørrebrogade').check();
  await nurse.getByLabel('Pårørende må deltage').check();
  await nurse.getByLabel('Form').selectOption('written');
  await nurse.getByRole('button', { name: 'Gem samtykke' }).click();
  await nurse.locator('.consent-grid .badge-ok', { hasText: 'Givet' }).waitFor();

  // Deltagere: the caseworker from the directory, the GP by phone.
  await nurse.getByRole('link', { name: 'Deltagere', exact: true }).click();
  await nurse.getByRole('heading', { name: 'Find en fagperson' }).waitFor();
  await nurse.getByLabel('Navn', { exact: true }).first().fill('Mette');
  await nurse.getByLabel('Organisation', { exact: true }).first().selectOption(seed.jobcenter.id);
  await nurse.getByRole('button', { name: 'Søg', exact: true }).click();
  await nurse.getByText('Mette Lund').first().waitFor();
  await nurse.getByRole('button', { name: 'Tilføj Mette Lund til forløbet' }).click();
  await nurse.getByText('Mette Lund er tilføjet forløbet.').waitFor();
  const ext = nurse.locator('form.ext-form');
  await ext.getByLabel('Navn').fill('Lone Berg, praktiserende læge');
  await ext.getByLabel('Telefon').fill('+45 35 35 12 12');
  await ext.getByLabel('Organisation').selectOption(seed.practice.id);
  await ext.getByRole('button', { name: 'Tilføj deltager' }).click();
  await nurse.getByText('Lone Berg, praktiserende læge er tilføjet forløbet.').waitFor();
  await capture(nurse, '05-deltagere');

  // Planlæg møde: yesterday 10:00 (so meeting mode may record it now), the
  // GP by phone 10:15-10:30. The API warns that it lies in the past.
  await nurse.getByRole('link', { name: 'Tilbage til forløbet' }).click();
  await nurse.getByRole('link', { name: 'Planlæg møde' }).first().click();
  await nurse.getByLabel('Dato', { exact: true }).fill(cphDate(-1));
  await nurse.getByLabel('Klokken', { exact: true }).fill('10:00');
  assert.equal(await nurse.getByLabel('Varighed i minutter').inputValue(), '90');
  await nurse.getByLabel('Lokale').fill('Lokale 4');
  await nurse.getByLabel('Deltager via, Lone Berg, praktiserende læge').selectOption('phone');
  await nurse.getByLabel('Fra klokken, Lone Berg, praktiserende læge').fill('10:15');
  await nurse.getByLabel('Til klokken, Lone Berg, praktiserende læge').fill('10:30');
  await capture(nurse, '06-planlaeg-moede');
  await nurse.getByRole('button', { name: 'Planlæg mødet' }).click();
  await nurse.locator('.alert-warning li', { hasText: 'fortiden' }).waitFor();
  await capture(nurse, '07-moede-advarsel');
  await nurse.getByRole('link', { name: 'Tilbage til forløbet' }).click();
  await nurse.getByRole('heading', { name: 'Jens Peter Hansen', level: 1 }).waitFor();

  // Mødetilstand.
  await nurse.getByRole('link', { name: 'Mødetilstand' }).click();
  await nurse.getByRole('heading', { name: 'Mødetilstand', level: 1 }).waitFor();
  await nurse.getByLabel('Karen Holm har observeret').fill('Jens er mere stabil; har holdt aftalerne i afsnittet.');
  await nurse.getByLabel('Resumé af mødet').fill('Første KIP-møde. Jens ønsker bolig og ro; jobcentret undersøger ressourceforløb.');
  // The draft survives a reload.
  await nurse.waitForTimeout(600);
  await nurse.reload();
  await nurse.getByText('Din kladde til mødet er hentet frem igen.').waitFor();
  assert.match(await nurse.getByLabel('Resumé af mødet').inputValue(), /Første KIP-møde/);
  const draftKeys = await nurse.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('kip.draft.')));
  assert.equal(draftKeys.length, 1);
  const draft = await nurse.evaluate((k) => localStorage.getItem(k), draftKeys[0]);
  assert.ok(!draft.includes(seed.cpr.slice(0, 6)), 'no CPR in the draft');
  await nurse.getByLabel('Fælles vurdering', { exact: true }).fill('Boligen er det vigtigste nu; beskæftigelse venter til efter indflytning.');
  // Two actions, by keyboard: type, Tab through the fields, Enter adds.
  const title = nurse.getByLabel('Aftale', { exact: true });
  await title.fill('Undersøge ressourceforløb');
  await nurse.keyboard.press('Tab');
  await nurse.getByLabel('Område').selectOption('employment');
  await nurse.getByLabel('Ansvarlig').selectOption({ label: 'Mette Lund' });
  await nurse.getByLabel('Frist').fill(cphDate(14));
  await nurse.getByLabel('Frist').press('Enter');
  await nurse.locator('.new-action', { hasText: 'Undersøge ressourceforløb' }).waitFor();
  assert.equal(await nurse.evaluate(() => document.activeElement.id), await title.getAttribute('id'));
  await title.fill('Søge om akutbolig');
  await nurse.getByLabel('Område').selectOption('housing');
  await nurse.getByLabel('Ansvarlig').selectOption({ label: 'Karen Holm' });
  await title.press('Enter');
  await nurse.locator('.new-action', { hasText: 'Søge om akutbolig' }).waitFor();
  await nurse.getByLabel('Borgeren accepterer planen').check();
  await capture(nurse, '08-moedetilstand');
  await nurse.getByRole('button', { name: 'Gem referat' }).click();

  // Referat (minutes), then print.
  await nurse.getByText('Referat af KIP-møde').waitFor();
  assert.ok(await nurse.locator('.paper td', { hasText: 'Undersøge ressourceforløb' }).isVisible());
  assert.equal(await nurse.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('kip.draft.')).length), 0, 'draft removed once saved');
  await capture(nurse, '09-referat');
  await nurse.emulateMedia({ media: 'print' });
  await nurse.screenshot({ path: shotPath('print-referat'), fullPage: true });
  const pdf = await nurse.pdf({ format: 'A4' });
  assert.ok(pdf.length > 1000);
  await nurse.emulateMedia({ media: 'screen' });

  // The plan, kept open by the nurse: it must show the action done later.
  await nurse.getByRole('link', { name: 'Jens Peter Hansen' }).click();
  await nurse.getByRole('heading', { name: 'Aftaler' }).waitFor();
  await capture(nurse, '04-forloebet');
  const nurseAction = nurse.locator('li.action', { hasText: 'Undersøge ressourceforløb' });
  assert.equal(await nurseAction.getAttribute('data-status'), 'open');

  // Agenda of the next meeting (kipd's own printable HTML).
  const next = (await apiCall(kipd.url, kipd.adminToken, 'GET', '/v1/healthz').catch(() => null));
  void next;

  // The caseworker, in another browser: Mine opgaver, one click to done.
  const cw = await newPage(browser, kipd.url, LAPTOP);
  const flushCw = collect(cw, 'caseworker');
  await signIn(cw, 'mette.lund', PASSWORD_CW);
  await cw.getByRole('navigation').getByRole('link', { name: 'Mine opgaver' }).click();
  const task = cw.locator('li.task', { hasText: 'Undersøge ressourceforløb' });
  await task.waitFor();
  await capture(cw, '10-mine-opgaver');
  await cw.getByRole('button', { name: 'Markér Undersøge ressourceforløb som udført' }).click();
  await task.waitFor({ state: 'detached' });
  await cw.getByRole('navigation').getByRole('link', { name: 'Mine møder' }).click();
  await cw.getByRole('button', { name: 'Lav kalender-link' }).click();
  const feed = await cw.getByLabel('Dit personlige kalender-link').inputValue();
  assert.match(feed, /^https?:\/\/.+\/v1\/calendar-feeds\/.+\?key=/);
  await capture(cw, '11-mine-moeder');
  flushCw();

  // Back as the nurse: done, without a reload.
  // A locator waits outside the page's script world: waitForFunction would
  // evaluate its predicate as a string, which the UI's CSP (no unsafe-eval)
  // rightly refuses once it has to poll.
  await nurse.locator('li.action[data-status="done"]').first().waitFor({ timeout: 15000 });
  assert.equal(await nurseAction.getAttribute('data-status'), 'done');

  // Mine forløb with the plan, and a CPR search that never enters the URL.
  await nurse.getByRole('navigation').getByRole('link', { name: 'Mine forløb' }).click();
  await nurse.getByRole('link', { name: 'Jens Peter Hansen' }).waitFor();
  const requests = [];
  nurse.on('request', (r) => requests.push(r.url()));
  await nurse.getByLabel('Søg på navn eller CPR-nummer').fill(seed.cpr);
  await nurse.getByRole('button', { name: 'Søg', exact: true }).click();
  await nurse.getByRole('link', { name: 'Jens Peter Hansen' }).waitFor();
  assert.ok(requests.every((u) => !u.includes(seed.cpr.slice(0, 6))), 'no CPR in any URL');
  assert.ok(await nurse.getByText(`${seed.cpr.slice(0, 6)}-xxxx`).isVisible());
  await capture(nurse, '02-mine-forloeb');

  // English switch, remembered; sign out wipes the session.
  await nurse.getByRole('button', { name: 'English' }).click();
  await nurse.getByRole('heading', { name: 'My plans', level: 1 }).waitFor();
  assert.equal(await nurse.evaluate(() => document.documentElement.lang), 'en');
  await nurse.reload();
  await nurse.getByRole('heading', { name: 'My plans', level: 1 }).waitFor();
  await nurse.getByRole('button', { name: 'Dansk' }).click();
  await nurse.getByRole('heading', { name: 'Mine forløb', level: 1 }).waitFor();
  await nurse.getByRole('button', { name: 'Log ud' }).click();
  await nurse.getByRole('heading', { name: 'Log ind' }).waitFor();
  flushNurse();

  assert.deepEqual(consoleProblems, [], 'no console errors on any page');
  assert.deepEqual(axeFindings, [], 'no serious or critical accessibility violation');
}
