// Mine forløb: the plans I take part in or my organisation owns.
// A name search goes in the query (q); a CPR search only in a POST body
// (POST /v1/plans/search), so no CPR number ever appears in a URL.
import { h, field, fmtDateTime, maskCpr, clear } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { get, post } from '../api.js';
import { PLAN_STATUSES, statusBadge, label } from '../labels.js';
import { showErrors, clearErrors } from '../forms.js';
import { state, isCoordinator } from '../state.js';

export const name = 'plans';

const CPR_RE = /^\s*\d{6}-?\d{4}\s*$/;
let last = { q: '', status: '' };

export async function render(main) {
  state.setTitle(t('plans.title'));
  const q = h('input', { type: 'search', name: 'q', value: last.q, autocomplete: 'off' });
  const status = h('select', { name: 'status' },
    h('option', { value: '' }, t('plans.all_statuses')),
    PLAN_STATUSES.map((s) => h('option', { value: s, selected: s === last.status }, label('plan_status', s))));
  const form = h('form', { class: 'toolbar', role: 'search' },
    field(t('plans.search'), q, { hint: t('plans.search_hint'), field: 'q', class: 'grow' }),
    field(t('plans.status'), status, { field: 'status' }),
    h('div', { class: 'toolbar-actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, t('plans.search_button'))));
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  main.append(
    h('div', { class: 'page-head' },
      h('h1', null, t('plans.title')),
      isCoordinator() ? h('a', { href: '/forloeb/nyt', class: 'btn btn-primary' }, t('plans.new')) : null),
    form, results);

  const load = async () => {
    last = { q: q.value, status: status.value };
    clearErrors(form);
    clear(results).append(h('p', { class: 'muted' }, t('common.loading')));
    try {
      let page;
      const text = q.value.trim();
      if (CPR_RE.test(text)) {
        const body = { cpr: text.replace(/\s/g, '') };
        if (status.value) body.status = status.value;
        page = await post('/v1/plans/search', body);
      } else {
        const p = new URLSearchParams({ limit: '50' });
        if (text) p.set('q', text);
        if (status.value) p.set('status', status.value);
        page = await get(`/v1/plans?${p}`);
      }
      table(results, page.items);
    } catch (e) {
      clear(results);
      showErrors(form, e);
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  status.addEventListener('change', load);
  await load();
}

// Each list item carries next_meeting, open_actions and overdue_actions, so
// the list needs no read of each plan's document.
function table(results, items) {
  clear(results);
  if (!items.length) {
    results.append(h('p', { class: 'empty' }, t('plans.none')));
    return;
  }
  const lang = currentLang();
  results.append(h('table', { class: 'table' },
    h('caption', { class: 'visually-hidden' }, t('plans.title')),
    h('thead', null, h('tr', null,
      ['plans.col_citizen', 'plans.col_cpr', 'plans.col_status', 'plans.col_next', 'plans.col_open', 'plans.col_overdue']
        .map((k, i) => h('th', { scope: 'col', class: i >= 4 ? 'num' : null }, t(k))))),
    h('tbody', null, items.map((p) => h('tr', null,
      h('th', { scope: 'row' }, h('a', { href: `/forloeb/${p.id}` }, p.citizen.name)),
      h('td', { class: 'mono' }, maskCpr(p.citizen.cpr)),
      h('td', null, statusBadge('plan_status', p.status)),
      h('td', null, p.next_meeting ? fmtDateTime(p.next_meeting, lang) : h('span', { class: 'muted' }, t('plans.no_meeting'))),
      h('td', { class: 'num' }, String(p.open_actions)),
      h('td', { class: 'num' }, p.overdue_actions > 0 ? h('span', { class: 'badge badge-overdue' }, String(p.overdue_actions)) : String(p.overdue_actions)))))));
}
