// Statistik: GET /v1/stats as charts and tables for coordinators (their own
// organisation) and analysts (every organisation, or one picked here).
// The charts are Chart.js 4 (npm chart.js, pinned in clients/web/package.json
// and package-lock.json, embedded by embed.py as vendor/chart.umd.js and
// loaded on this page only). A suppressed cell ({"value": null, "suppressed":
// true}) is ".." in the table and, in a chart, no bar but a ".." mark on the
// axis, never 0; a figure with nothing to compute from (null) is "–" in both.
// Every chart has its table below it (for screen readers and the printout).
import { h, clear, todayCph, fmtDate } from '../dom.js';
import { t, has, currentLang } from '../i18n.js';
import { get } from '../api.js';
import { problemHeadline } from '../forms.js';
import { state } from '../state.js';
import { organisations } from '../orgs.js';

export const name = 'stats';

const GROUPS = ['month', 'quarter', 'organisation', 'sector'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function maySeeStats() {
  const roles = (state.user && state.user.roles) || [];
  return roles.includes('coordinator') || roles.includes('analyst');
}

// The API treats a user with both roles as an analyst here.
const isAnalyst = () => ((state.user && state.user.roles) || []).includes('analyst');

const isSuppressed = (c) => c !== null && typeof c === 'object' && c.suppressed === true;
const num = (c) => (typeof c === 'number' ? c : null);
const locale = (lang) => (lang === 'en' ? 'en-GB' : 'da-DK');

function fmt(c, lang, { share = false } = {}) {
  if (isSuppressed(c)) return '..';
  if (c === null || c === undefined) return '–';
  if (share) return `${(c * 100).toLocaleString(locale(lang), { maximumFractionDigits: 1 })} %`;
  return c.toLocaleString(locale(lang), { maximumFractionDigits: 1 });
}

function cell(c, lang, opts) {
  if (isSuppressed(c)) {
    return h('td', { class: 'num suppressed', dataset: { suppressed: '1' } },
      h('abbr', { title: t('stats.suppressed_title') }, '..'));
  }
  return h('td', { class: 'num' }, fmt(c, lang, opts));
}

// A group's label: a month as "mar. 2026", a quarter as "1. kvt. 2026", a
// sector by its name in the catalogue, an organisation by the API's label.
function groupLabel(r, groupBy, lang) {
  if (groupBy === 'month' && /^\d{4}-\d{2}$/.test(r.key)) {
    const [y, m] = r.key.split('-').map(Number);
    return new Intl.DateTimeFormat(locale(lang), { month: 'short', year: 'numeric', timeZone: 'UTC' })
      .format(new Date(Date.UTC(y, m - 1, 1)));
  }
  if (groupBy === 'quarter' && /^\d{4}-Q[1-4]$/.test(r.key)) {
    return t('stats.quarter_label', { y: r.key.slice(0, 4), q: r.key.slice(6) });
  }
  if (groupBy === 'sector' && has(`stats.sector.${r.key}`)) return t(`stats.sector.${r.key}`);
  return r.label;
}

// ---- Chart.js ---------------------------------------------------------------

let chartLib = null;
async function loadChartJs() {
  if (!chartLib) {
    // The UMD build sets window.Chart (it exports nothing to a module).
    await import('../../vendor/chart.umd.js');
    chartLib = window.Chart;
    chartLib.register(marksPlugin);
    chartLib.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    chartLib.defaults.font.size = 13;
    chartLib.defaults.color = INK;
  }
  return chartLib;
}

// Screen colours (bars at least 3:1 against white, WCAG 1.4.11) and print
// colours that stay apart on a black-and-white printer: solid black, and
// light grey with a black edge.
const SCREEN = [{ fill: '#1f5f8b', edge: '#1f5f8b' }, { fill: '#b3541e', edge: '#b3541e' }];
const PRINT = [{ fill: '#000000', edge: '#000000' }, { fill: '#c8c8c8', edge: '#000000' }];
const INK = '#1b2430';
const MUTED = '#4f5b68';

// Printed, every chart is 160 mm wide (inside A4's margins and its panel) and
// drawn at 3 device pixels per CSS pixel (about 290 dpi; more on a screen
// that has more), so lines and text stay sharp on paper. The heights match
// .chart-box in css/print.css.
const MM = 96 / 25.4;
const PRINT_WIDTH = Math.round(160 * MM);
const printDpr = () => Math.max(3, window.devicePixelRatio || 1);

// Draws ".." (suppressed), "–" (nothing to compute from) or "0 %" where a bar
// would start, so a missing bar is never left to guessing and a suppressed
// cell never reads as 0. dataset.kipMarks[i] holds the mark of point i, or
// null.
const marksPlugin = {
  id: 'kipMarks',
  afterDatasetsDraw(chart) {
    const { ctx } = chart;
    chart.data.datasets.forEach((ds, j) => {
      const meta = chart.getDatasetMeta(j);
      if (!ds.kipMarks || meta.hidden) return;
      ds.kipMarks.forEach((mark, i) => {
        const el = meta.data[i];
        if (!mark || !el) return;
        ctx.save();
        ctx.fillStyle = mark === '..' ? INK : MUTED;
        ctx.font = `700 14px ${chartLib.defaults.font.family}`;
        if (el.horizontal) {
          ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
          ctx.fillText(mark, el.base + 4, el.y);
        } else {
          ctx.textAlign = 'center'; ctx.textBaseline = 'bottom';
          ctx.fillText(mark, el.x, el.base - 2);
        }
        ctx.restore();
      });
    });
  },
};

function colour(ds, j, print) {
  const c = (print ? PRINT : SCREEN)[j % SCREEN.length];
  ds.backgroundColor = c.fill;
  ds.borderColor = c.edge;
  ds.borderWidth = print ? 1 : 0;
  return ds;
}

// One chart: a bar per group and series; the value axis from 0 (shares from
// 0 to 100 %). Suppressed and null points are null in the data (no bar) with
// a mark instead.
function makeChart(Chart, canvas, { labels, rows, series, lang, horizontal = false, share = false, printHeight }) {
  const value = (c) => (num(c) === null ? null : (share ? c * 100 : c));
  // A share of 0 % is marked too: no bar there is a finding, not a gap.
  const mark = (c) => (isSuppressed(c) ? '..' : num(c) === null ? '–' : (share && c === 0 ? '0 %' : null));
  const datasets = series.map((s, j) => colour({
    label: t(s.key),
    data: rows.map((r) => value(r[s.col])),
    kipMarks: rows.map((r) => mark(r[s.col])),
    kipColumn: s.col,
    borderRadius: 0,
    maxBarThickness: 48,
  }, j, false));
  const anySuppressed = datasets.some((d) => d.kipMarks.includes('..'));
  const anyNone = datasets.some((d) => d.kipMarks.includes('–'));
  const valueAxis = {
    beginAtZero: true,
    grace: '5%',
    ...(share ? { max: 100 } : {}),
    ticks: {
      precision: share ? 0 : undefined,
      callback: (v) => `${Number(v).toLocaleString(locale(lang), { maximumFractionDigits: 1 })}${share ? ' %' : ''}`,
    },
    grid: { color: '#d5dbe1' },
  };
  const indexAxis = { grid: { display: false }, ticks: { autoSkip: false, maxRotation: 45 } };
  const chart = new Chart(canvas, {
    type: 'bar',
    data: { labels, datasets },
    options: {
      indexAxis: horizontal ? 'y' : 'x',
      locale: locale(lang),
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: horizontal ? { x: valueAxis, y: indexAxis } : { x: indexAxis, y: valueAxis },
      plugins: {
        colors: { enabled: false },
        legend: { display: series.length > 1, position: 'bottom', labels: { boxWidth: 14, color: INK } },
        subtitle: {
          display: anySuppressed || anyNone,
          position: 'bottom',
          align: 'start',
          color: INK,
          text: [anySuppressed ? t('stats.chart_suppressed') : null, anyNone ? t('stats.chart_none') : null]
            .filter(Boolean).join('    '),
        },
        tooltip: {
          callbacks: {
            label: (item) => `${item.dataset.label}: ${(item.raw ?? 0).toLocaleString(locale(lang), { maximumFractionDigits: 1 })}${share ? ' %' : ''}`,
          },
        },
      },
    },
  });
  chart.kipPrintHeight = printHeight;
  chart.kipPrint = false;
  return chart;
}

// Printing: Chart.js draws on a canvas, which does not resize by itself for
// the printout. On beforeprint (and when the print media query starts to
// match, which is what emulated print and some browsers' previews do) every
// chart is redrawn at its printed size and resolution in print colours; on
// afterprint it goes back.
function printMode(charts, on) {
  for (const chart of charts) {
    if (chart.kipPrint === on) continue;
    chart.kipPrint = on;
    chart.data.datasets.forEach((ds, j) => colour(ds, j, on));
    chart.options.devicePixelRatio = on ? printDpr() : undefined;
    chart.update();
    if (on) chart.resize(PRINT_WIDTH, chart.kipPrintHeight);
    else chart.resize();
  }
}

function watchPrint(charts) {
  const mq = window.matchMedia('print');
  const onChange = () => printMode(charts, mq.matches);
  const before = () => printMode(charts, true);
  const after = () => printMode(charts, mq.matches);
  mq.addEventListener('change', onChange);
  window.addEventListener('beforeprint', before);
  window.addEventListener('afterprint', after);
  if (mq.matches) printMode(charts, true);
  return () => {
    mq.removeEventListener('change', onChange);
    window.removeEventListener('beforeprint', before);
    window.removeEventListener('afterprint', after);
  };
}

// ---- the page ---------------------------------------------------------------

// A panel: the title, the chart (a canvas Chart.js draws on, named for
// screen readers, which read the table below it), and the table with every
// group and the total.
function chartSection(id, titleKey, table, series, { lang, groupBy, tall = false }) {
  const rows = table.rows.map((r) => ({ ...r, label: groupLabel(r, groupBy, lang) }));
  const allRows = [...rows, { ...table.total, label: t('stats.total'), total: true }];
  const charted = series.filter((s) => !s.tableOnly);
  const canvas = h('canvas', { id: `${id}-chart`, role: 'img', 'aria-label': t('stats.chart_alt', { title: t(titleKey) }) },
    t('stats.chart_alt', { title: t(titleKey) }));
  const section = h('section', { class: 'panel stats-chart', 'aria-labelledby': `${id}-h`, id },
    h('h2', { id: `${id}-h` }, t(titleKey)),
    h('div', { class: `chart-box${tall ? ' chart-box-tall' : ''}` }, canvas),
    h('table', { class: 'table stats-table' },
      h('caption', { class: 'visually-hidden' }, t(titleKey)),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t(`stats.group_by.${groupBy}`)),
        series.map((s) => h('th', { scope: 'col', class: 'num' }, t(s.key))))),
      h('tbody', null, allRows.map((r) => h('tr', { class: r.total ? 'total' : null },
        h('th', { scope: 'row' }, r.label),
        series.map((s) => cell(r[s.col], lang, { share: s.share })))))));
  return { section, canvas, rows, charted };
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

// The organisation field: a picker for an analyst ("every organisation" or
// one), the user's own organisation, fixed, for a coordinator.
async function organisationField(wanted) {
  if (!isAnalyst()) {
    const own = state.user.organisation_id ? await get(`/v1/organisations/${state.user.organisation_id}`) : null;
    return { control: null, name: own ? own.name : '', value: '' };
  }
  const all = [...await organisations()].sort((a, b) => a.name.localeCompare(b.name, 'da'));
  const value = all.some((o) => o.id === wanted) ? wanted : '';
  const control = h('select', { id: 'stats-org' },
    h('option', { value: '', selected: value === '' }, t('stats.organisation_all')),
    all.map((o) => h('option', { value: o.id, selected: o.id === value }, o.name)));
  return { control, name: value ? all.find((o) => o.id === value).name : t('stats.organisation_all'), value };
}

export async function render(main) {
  const lang = currentLang();
  state.setTitle(t('stats.title'));
  const params = new URLSearchParams(location.search);
  const from = params.get('from') || todayCph(-365 + 1);
  const to = params.get('to') || todayCph();
  const groupBy = GROUPS.includes(params.get('group_by')) ? params.get('group_by') : 'month';
  const wantedOrg = UUID_RE.test(params.get('organisation') || '') ? params.get('organisation') : '';
  const fromIn = h('input', { type: 'date', id: 'stats-from', value: from, required: true });
  const toIn = h('input', { type: 'date', id: 'stats-to', value: to, required: true });
  const groupIn = h('select', { id: 'stats-group' }, GROUPS.map((g) => h('option', { value: g, selected: g === groupBy }, t(`stats.group_by.${g}`))));
  let org;
  try {
    org = await organisationField(wantedOrg);
  } catch (e) {
    main.append(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, problemHeadline(e))));
    return undefined;
  }
  const form = h('form', { class: 'stats-filter', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'stats-from' }, t('stats.from')), fromIn),
    h('div', { class: 'field' }, h('label', { for: 'stats-to' }, t('stats.to')), toIn),
    org.control ? h('div', { class: 'field' }, h('label', { for: 'stats-org' }, t('stats.organisation')), org.control) : null,
    h('div', { class: 'field' }, h('label', { for: 'stats-group' }, t('stats.group_by')), groupIn),
    h('button', { type: 'submit', class: 'btn btn-primary' }, t('stats.show')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ from: fromIn.value, to: toIn.value, group_by: groupIn.value });
    if (org.control && org.control.value) q.set('organisation', org.control.value);
    state.navigate(`/statistik?${q}`);
  });
  const q = new URLSearchParams({ from, to, group_by: groupBy });
  if (org.value) q.set('organisation', org.value);
  const query = q.toString();
  const csvOut = h('div', { 'aria-live': 'polite' });
  const csvBtn = h('button', { type: 'button', class: 'btn btn-secondary', id: 'stats-csv' }, t('stats.download_csv'));
  csvBtn.addEventListener('click', () => downloadCsv(query, csvOut));
  const body = h('div', { id: 'stats-body' });
  // What the figures cover, in words: the filter is not printed, this is.
  const scope = h('p', { id: 'stats-scope', class: 'stats-scope' },
    t('stats.scope', { from: fmtDate(from, lang), to: fmtDate(to, lang), organisation: org.name || t('stats.organisation_own'),
      group_by: t(`stats.group_by.${groupBy}`).toLowerCase() }));
  main.append(h('div', { class: 'page-head' }, h('h1', null, t('stats.title'))),
    h('p', { class: 'hint' }, t('stats.lead')), form, scope,
    h('div', { class: 'stats-actions' }, csvBtn, csvOut), body);
  let s;
  try {
    s = await get(`/v1/stats?${query}`);
  } catch (e) {
    body.append(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, problemHeadline(e))));
    return undefined;
  }
  const opts = { lang, groupBy };
  const panels = [
    [chartSection('stats-meetings', 'stats.meetings_title', s.activity, [
      { col: 'meetings_held', key: 'stats.col.meetings_held' },
      { col: 'meetings_cancelled', key: 'stats.col.meetings_cancelled' },
    ], opts), {}],
    [chartSection('stats-first', 'stats.first_meeting_title', s.activity, [
      { col: 'first_meeting_median_days', key: 'stats.col.first_meeting_median_days' },
      { col: 'first_meeting_p90_days', key: 'stats.col.first_meeting_p90_days' },
      { col: 'first_meeting_plans', key: 'stats.col.first_meeting_plans', tableOnly: true },
    ], opts), {}],
    [chartSection('stats-sector', 'stats.actions_sector_title', s.actions_by_sector, [
      { col: 'actions_on_time_share', key: 'stats.col.actions_on_time_share', share: true },
      { col: 'actions_due', key: 'stats.col.actions_due', tableOnly: true },
      { col: 'actions_on_time', key: 'stats.col.actions_on_time', tableOnly: true },
    ], { lang, groupBy: 'sector', tall: true }), { horizontal: true, share: true, tall: true }],
  ];
  body.append(
    h('p', { class: 'hint', id: 'stats-suppressed-note' }, h('strong', null, '.. '), t('stats.suppressed_explained'),
      ' ', h('strong', null, '– '), t('stats.none_explained')),
    ...panels.map(([p]) => p.section));

  let Chart;
  try {
    Chart = await loadChartJs();
  } catch (e) {
    console.warn('Chart.js failed to load', e);
    body.prepend(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, t('stats.charts_failed'))));
    return undefined;
  }
  const charts = panels.map(([p, o]) => makeChart(Chart, p.canvas, {
    labels: p.rows.map((r) => r.label), rows: p.rows, series: p.charted, lang,
    horizontal: o.horizontal, share: o.share, printHeight: Math.round((o.tall ? 110 : 75) * MM),
  }));
  const unwatch = watchPrint(charts);
  return () => {
    unwatch();
    for (const c of charts) c.destroy();
  };
}
