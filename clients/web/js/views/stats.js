// Statistik: GET /v1/stats as charts and tables for coordinators (their own
// organisation) and analysts (every organisation). A suppressed cell
// ({"value": null, "suppressed": true}) is shown as "..", never as 0; every
// chart has its table beside it (for print and for screen readers).
import { h, clear, todayCph } from '../dom.js';
import { t, has, currentLang } from '../i18n.js';
import { get } from '../api.js';
import { problemHeadline } from '../forms.js';
import { state } from '../state.js';

export const name = 'stats';

const SVG = 'http://www.w3.org/2000/svg';
const GROUPS = ['month', 'quarter', 'organisation', 'sector'];

export function maySeeStats() {
  const roles = (state.user && state.user.roles) || [];
  return roles.includes('coordinator') || roles.includes('analyst');
}

const isSuppressed = (c) => c !== null && typeof c === 'object' && c.suppressed === true;
const num = (c) => (typeof c === 'number' ? c : null);

function fmt(c, lang, { share = false } = {}) {
  if (isSuppressed(c)) return '..';
  if (c === null || c === undefined) return '–';
  if (share) return `${(c * 100).toLocaleString(lang === 'en' ? 'en-GB' : 'da-DK', { maximumFractionDigits: 1 })} %`;
  return c.toLocaleString(lang === 'en' ? 'en-GB' : 'da-DK', { maximumFractionDigits: 1 });
}

function cell(c, lang, opts) {
  if (isSuppressed(c)) {
    return h('td', { class: 'num suppressed', dataset: { suppressed: '1' } },
      h('abbr', { title: t('stats.suppressed_title') }, '..'));
  }
  return h('td', { class: 'num' }, fmt(c, lang, opts));
}

// A bar chart as SVG: one group of bars per row, one bar per series. A
// suppressed value gets no bar but a ".." mark, so it never reads as 0.
function barChart(id, rows, series, lang) {
  const W = 720; const H = 280; const L = 40; const B = 80; const T = 10;
  let max = 0;
  for (const r of rows) for (const s of series) { const v = num(r[s.col]); if (v !== null && v > max) max = v; }
  if (max === 0) max = 1;
  const svg = document.createElementNS(SVG, 'svg');
  const set = (el, a) => { for (const [k, v] of Object.entries(a)) el.setAttribute(k, String(v)); return el; };
  set(svg, { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-h` });
  const el = (tag, a, text) => { const e = set(document.createElementNS(SVG, tag), a); if (text !== undefined) e.textContent = text; svg.append(e); return e; };
  el('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' });
  el('text', { x: L - 4, y: T + 8, 'text-anchor': 'end', class: 'tick' }, fmt(max, lang));
  el('text', { x: L - 4, y: H - B, 'text-anchor': 'end', class: 'tick' }, '0');
  const gw = (W - L) / Math.max(rows.length, 1);
  const bw = Math.max(2, (gw * 0.8) / series.length);
  rows.forEach((r, i) => {
    const x0 = L + i * gw + gw * 0.1;
    series.forEach((s, j) => {
      const c = r[s.col];
      const x = x0 + j * bw;
      if (isSuppressed(c)) {
        el('text', { x: x + bw / 2, y: H - B - 4, 'text-anchor': 'middle', class: 'tick suppressed-mark' }, '..');
        return;
      }
      const v = num(c) || 0;
      const hgt = ((H - B - T) * v) / max;
      el('rect', { x, y: H - B - hgt, width: bw - 1, height: hgt, class: `bar bar-${j}` });
    });
    const lx = L + i * gw + gw / 2; const ly = H - B + 14;
    el('text', rows.length > 8
      ? { x: lx, y: ly, 'text-anchor': 'end', class: 'tick', transform: `rotate(-30 ${lx} ${ly})` }
      : { x: lx, y: ly, 'text-anchor': 'middle', class: 'tick' }, r.label);
  });
  return svg;
}

function legend(series) {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' }, series.map((s, j) =>
    h('li', null, h('span', { class: `swatch bar-${j}` }), t(s.key))));
}

// Sectors by their Danish (or English) name; months, quarters and
// organisations by the API's label.
const rowLabel = (r, bySector) => (bySector && has(`stats.sector.${r.key}`) ? t(`stats.sector.${r.key}`) : r.label);

function chartSection(id, titleKey, table, series, lang, bySector = false) {
  const rows = table.rows.map((r) => ({ ...r, label: rowLabel(r, bySector) }));
  const cols = series.map((s) => s);
  const allRows = [...rows, { ...table.total, label: t('stats.total'), total: true }];
  return h('section', { class: 'panel stats-chart', 'aria-labelledby': `${id}-h`, id },
    h('h2', { id: `${id}-h` }, t(titleKey)),
    barChart(id, rows, series.filter((s) => !s.tableOnly), lang),
    legend(series.filter((s) => !s.tableOnly)),
    h('table', { class: 'table stats-table' },
      h('caption', { class: 'visually-hidden' }, t(titleKey)),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('stats.group')),
        cols.map((s) => h('th', { scope: 'col', class: 'num' }, t(s.key))))),
      h('tbody', null, allRows.map((r) => h('tr', { class: r.total ? 'total' : null },
        h('th', { scope: 'row' }, r.label),
        cols.map((s) => cell(r[s.col], lang, { share: s.share })))))));
}

async function downloadCsv(query, out) {
  clear(out);
  try {
    // A GET needs no CSRF token; the HttpOnly session cookie goes along.
    const res = await fetch(`/v1/stats?${query}`, { headers: { Accept: 'text/csv' }, credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, problem: {}, errors: [] });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `kip-statistik-${todayCph()}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    out.append(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, problemHeadline(e))));
  }
}

export async function render(main) {
  const lang = currentLang();
  state.setTitle(t('stats.title'));
  const params = new URLSearchParams(location.search);
  const from = params.get('from') || todayCph(-365 + 1);
  const to = params.get('to') || todayCph();
  const groupBy = GROUPS.includes(params.get('group_by')) ? params.get('group_by') : 'month';
  const fromIn = h('input', { type: 'date', id: 'stats-from', value: from, required: true });
  const toIn = h('input', { type: 'date', id: 'stats-to', value: to, required: true });
  const groupIn = h('select', { id: 'stats-group' }, GROUPS.map((g) => h('option', { value: g, selected: g === groupBy }, t(`stats.group_by.${g}`))));
  const form = h('form', { class: 'stats-filter', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'stats-from' }, t('stats.from')), fromIn),
    h('div', { class: 'field' }, h('label', { for: 'stats-to' }, t('stats.to')), toIn),
    h('div', { class: 'field' }, h('label', { for: 'stats-group' }, t('stats.group_by')), groupIn),
    h('button', { type: 'submit', class: 'btn btn-primary' }, t('stats.show')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ from: fromIn.value, to: toIn.value, group_by: groupIn.value });
    state.navigate(`/statistik?${q}`);
  });
  const query = new URLSearchParams({ from, to, group_by: groupBy }).toString();
  const csvOut = h('div', { 'aria-live': 'polite' });
  const csvBtn = h('button', { type: 'button', class: 'btn btn-secondary', id: 'stats-csv' }, t('stats.download_csv'));
  csvBtn.addEventListener('click', () => downloadCsv(query, csvOut));
  const body = h('div', { id: 'stats-body' });
  main.append(h('div', { class: 'page-head' }, h('h1', null, t('stats.title'))),
    h('p', { class: 'hint' }, t('stats.lead')), form,
    h('div', { class: 'stats-actions' }, csvBtn, csvOut), body);
  let s;
  try {
    s = await get(`/v1/stats?${query}`);
  } catch (e) {
    body.append(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, problemHeadline(e))));
    return;
  }
  body.append(
    h('p', { class: 'hint', id: 'stats-suppressed-note' }, h('strong', null, '.. '), t('stats.suppressed_explained')),
    chartSection('stats-meetings', 'stats.meetings_title', s.activity, [
      { col: 'meetings_held', key: 'stats.col.meetings_held' },
      { col: 'meetings_cancelled', key: 'stats.col.meetings_cancelled' },
    ], lang, groupBy === 'sector'),
    chartSection('stats-first', 'stats.first_meeting_title', s.activity, [
      { col: 'first_meeting_median_days', key: 'stats.col.first_meeting_median_days' },
      { col: 'first_meeting_p90_days', key: 'stats.col.first_meeting_p90_days' },
      { col: 'first_meeting_plans', key: 'stats.col.first_meeting_plans', tableOnly: true },
    ], lang, groupBy === 'sector'),
    chartSection('stats-sector', 'stats.actions_sector_title', s.actions_by_sector, [
      { col: 'actions_on_time_share', key: 'stats.col.actions_on_time_share', share: true },
      { col: 'actions_due', key: 'stats.col.actions_due', tableOnly: true },
      { col: 'actions_on_time', key: 'stats.col.actions_on_time', tableOnly: true },
    ], lang, true));
}
