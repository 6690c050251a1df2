// Mine opgaver: my agreed actions across plans, overdue first, with the
// status changed in one click; "Min organisation" lists those of everyone
// in my organisation (GET /v1/me/actions?scope=organisation). Polls.
import { h, clear, fmtDate, maskCpr } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { api, get } from '../api.js';
import { label, statusBadge } from '../labels.js';
import { problemHeadline } from '../forms.js';
import { state } from '../state.js';

export const name = 'tasks';
const POLL_MS = 15000;
let scope = 'mine';
let showDone = false;

const NEXT = {
  open: ['in_progress', 'done'],
  in_progress: ['done'],
  done: ['open'],
  cancelled: [],
};

export async function render(main) {
  const lang = currentLang();
  state.setTitle(t('tasks.title'));
  const list = h('div', { class: 'results', 'aria-live': 'polite' });
  const msg = h('div', { role: 'alert' });
  const tab = (v, key) => h('button', {
    type: 'button', class: 'tab', 'aria-pressed': String(scope === v),
    onclick: () => { scope = v; rerender(); },
  }, t(key));
  const doneBox = h('input', { type: 'checkbox', id: 'tasks-done', checked: showDone, onchange: (e) => { showDone = e.target.checked; load(); } });
  const head = h('div', { class: 'page-head' }, h('h1', null, t('tasks.title')),
    h('div', { class: 'tabs', role: 'group', 'aria-label': t('tasks.scope') }, tab('mine', 'tasks.mine'), tab('organisation', 'tasks.organisation')));
  const rerender = () => { main.replaceChildren(); render(main); };

  async function setStatus(a, status, btn) {
    btn.disabled = true;
    clear(msg);
    try {
      await api('PATCH', `/v1/actions/${a.id}`, { body: { status }, ifMatch: a.version });
      document.getElementById('live').textContent = t('tasks.changed', { title: a.title, status: label('action_status', status) });
      await load();
    } catch (e) {
      btn.disabled = false;
      msg.replaceChildren(h('div', { class: 'alert alert-error' }, h('p', null, problemHeadline(e)),
        e.errors?.length ? h('p', null, e.errors.map((x) => x.message).join(' ')) : null));
    }
  }

  let lastJson = '';
  async function load(poll) {
    const p = new URLSearchParams({ scope, limit: '200' });
    const page = await get(`/v1/me/actions?${p}`);
    const items = page.items.filter((a) => showDone || a.status === 'open' || a.status === 'in_progress');
    const json = JSON.stringify(items.map((a) => [a.id, a.version]));
    if (poll && json === lastJson) return;
    lastJson = json;
    clear(list);
    if (!items.length) { list.append(h('p', { class: 'empty' }, t('tasks.none'))); return; }
    list.append(h('ul', { class: 'task-list' }, items.map((a) => h('li', { class: `task${a.overdue ? ' is-overdue' : ''}`, dataset: { actionId: a.id, status: a.status } },
      h('div', { class: 'task-main' },
        h('p', { class: 'action-title' }, a.title),
        h('p', { class: 'muted small' },
          h('a', { href: `/forloeb/${a.plan.id}` }, a.plan.citizen.name), ` (${maskCpr(a.plan.citizen.cpr)}) · ${label('area', a.area)}`,
          scope === 'organisation' ? ` · ${a.responsible.name}` : '',
          ` · ${t('tasks.tovholder')}: ${a.plan.coordinator?.name || ''}`)),
      h('div', { class: 'task-due' }, a.due_date ? h('span', null, fmtDate(a.due_date, lang)) : h('span', { class: 'muted' }, t('tasks.no_due')),
        a.overdue ? h('span', { class: 'badge badge-overdue' }, t('actions.overdue')) : null),
      h('div', { class: 'task-status' }, statusBadge('action_status', a.status)),
      h('div', { class: 'task-buttons' }, NEXT[a.status].map((s) => {
        const b = h('button', {
          type: 'button', class: `btn btn-small ${s === 'done' ? 'btn-primary' : 'btn-secondary'}`,
          'aria-label': t(`tasks.to_${s}_named`, { title: a.title }),
        }, t(`tasks.to_${s}`));
        b.addEventListener('click', () => setStatus(a, s, b));
        return b;
      }))))));
  }

  main.append(head, h('div', { class: 'toolbar' }, h('div', { class: 'field field-check' }, doneBox, h('label', { for: 'tasks-done' }, t('tasks.show_done')))), msg, list);
  await load();
  const timer = setInterval(() => { if (!document.hidden) load(true).catch(() => {}); }, POLL_MS);
  return () => clearInterval(timer);
}
