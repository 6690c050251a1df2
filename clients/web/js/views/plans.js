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
      await table(results, page.items);
    } catch (e) {
      clear(results);
      showErrors(form, e);
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  status.addEventListener('change', load);
  await load();
}

// The summary has no counts or next meeting; when it lacks them they come
// from each plan's document (one read per plan shown, audited as such).
async function details(item) {
  if ('open_actions' in item || 'next_meeting' in item) {
    return { open: item.open_actions ?? 0, overdue: item.overdue_actions ?? 0, next: item.next_meeting?.starts_at ?? item.next_meeting };
  }
  const doc = await get(`/v1/plans/${item.id}`);
  const open = doc.actions.filter((a) => a.status === 'open' || a.status === 'in_progress');
  const next = doc.meetings.filter((m) => m.status === 'planned').map((m) => m.starts_at).sort()[0];
  return { open: open.length, overdue: open.filter((a) => a.overdue).length, next, citizen: doc.citizen };
}

async function table(results, items) {
  clear(results);
  if (!items.length) {
    results.append(h('p', { class: 'empty' }, t('plans.none')));
    return;
  }
  const extra = await Promise.all(items.map((i) => details(i).catch(() => ({ open: '–', overdue: '–' }))));
  const lang = currentLang();
  results.append(h('table', { class: 'table' },
    h('caption', { class: 'visually-hidden' }, t('plans.title')),
    h('thead', null, h('tr', null,
      ['plans.col_citizen', 'plans.col_cpr', 'plans.col_status', 'plans.col_next', 'plans.col_open', 'plans.col_overdue']
        .map((k, i) => h('th', { scope: 'col', class: i >= 4 ? 'num' : null }, t(k))))),
    h('tbody', null, items.map((p, i) => h('tr', null,
      h('th', { scope: 'row' }, h('a', { href: `/forloeb/${p.id}` }, p.citizen.name)),
      h('td', { class: 'mono' }, maskCpr(p.citizen.cpr)),
      h('td', null, statusBadge('plan_status', p.status)),
      h('td', null, extra[i].next ? fmtDateTime(extra[i].next, lang) : h('span', { class: 'muted' }, t('plans.no_meeting'))),
      h('td', { class: 'num' }, String(extra[i].open)),
      h('td', { class: 'num' }, extra[i].overdue > 0 ? h('span', { class: 'badge badge-overdue' }, String(extra[i].overdue)) : String(extra[i].overdue)))))));
}
