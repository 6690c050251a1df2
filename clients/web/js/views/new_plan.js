// Nyt forløb: the citizen, the reason, the goals in the citizen's own words
// and the needs checklist. Consent is recorded on the plan's page next.
import { h, field } from '../dom.js';
import { t } from '../i18n.js';
import { post } from '../api.js';
import { AREAS, label } from '../labels.js';
import { onSubmit, warningsBox } from '../forms.js';
import { state } from '../state.js';

export const name = 'new-plan';

export function render(main) {
  state.setTitle(t('newplan.title'));
  const nameIn = h('input', { type: 'text', maxlength: 200, autocomplete: 'off' });
  const cpr = h('input', { type: 'text', inputmode: 'numeric', autocomplete: 'off', maxlength: 11, placeholder: 'DDMMÅÅ-NNNN' });
  const phone = h('input', { type: 'tel', autocomplete: 'off' });
  const address = h('input', { type: 'text', autocomplete: 'off' });
  const reason = h('textarea', { rows: 3 });
  const goalsBox = h('div', { class: 'goal-inputs' });
  const addGoal = (text = '') => {
    const i = goalsBox.children.length;
    const ta = h('textarea', { rows: 2, value: text });
    goalsBox.append(field(t('newplan.goal_n', { n: i + 1 }), ta, { pointer: `/goals/${i}/text` }));
    return ta;
  };
  addGoal();
  const needs = AREAS.map((a) => {
    const cb = h('input', { type: 'checkbox', value: a });
    const note = h('input', { type: 'text', id: `need-${a}-note`, 'aria-label': t('newplan.need_note', { area: label('area', a) }), placeholder: t('newplan.note'), 'aria-describedby': `need-${a}-note-err` });
    note.dataset.pointer = `/needs/${a}/note`;
    return { a, cb, note, el: h('div', { class: 'need-row' }, field(label('area', a), cb, { inline: true, pointer: `/needs/${a}/relevant` }), note, h('p', { class: 'error-text', id: `need-${a}-note-err`, hidden: true })) };
  });
  const form = h('form', { class: 'form-page', novalidate: true },
    h('fieldset', null, h('legend', null, t('newplan.citizen')),
      h('div', { class: 'grid-2' },
        field(t('newplan.name'), nameIn, { pointer: '/citizen/name', required: true }),
        field(t('newplan.cpr'), cpr, { pointer: '/citizen/cpr', required: true, hint: t('newplan.cpr_hint') }),
        field(t('newplan.phone'), phone, { pointer: '/citizen/phone' }),
        field(t('newplan.address'), address, { pointer: '/citizen/address' }))),
    field(t('newplan.reason'), reason, { pointer: '/reason', required: true, hint: t('newplan.reason_hint') }),
    h('fieldset', null, h('legend', null, t('newplan.goals')),
      h('p', { class: 'hint' }, t('newplan.goals_hint')),
      goalsBox,
      h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => addGoal().focus() }, t('newplan.add_goal'))),
    h('fieldset', null, h('legend', null, t('needs.title')), h('div', { class: 'needs-grid' }, needs.map((n) => n.el))),
    h('div', { class: 'row-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('newplan.create')),
      h('a', { href: '/forloeb', class: 'btn btn-ghost' }, t('common.cancel'))));
  onSubmit(form, async () => {
    const goals = [...goalsBox.querySelectorAll('textarea')].map((x) => x.value.trim()).filter(Boolean)
      .map((text) => ({ text, owner: 'citizen' }));
    const needsBody = {};
    for (const n of needs) if (n.cb.checked || n.note.value.trim()) needsBody[n.a] = { relevant: n.cb.checked, ...(n.note.value.trim() ? { note: n.note.value.trim() } : {}) };
    const citizen = { name: nameIn.value.trim(), cpr: cpr.value.trim() };
    if (phone.value.trim()) citizen.phone = phone.value.trim();
    if (address.value.trim()) citizen.address = address.value.trim();
    const plan = await post('/v1/plans', { citizen, reason: reason.value.trim(), goals, needs: needsBody });
    if (plan.warnings?.length) {
      main.replaceChildren(h('h1', null, t('newplan.created')), warningsBox(plan.warnings),
        h('a', { class: 'btn btn-primary', href: `/forloeb/${plan.id}` }, t('newplan.to_plan')));
      return;
    }
    state.navigate(`/forloeb/${plan.id}`);
  });
  main.append(h('div', { class: 'page-head' }, h('div', null,
    h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans'))),
    h('h1', null, t('newplan.title')))), h('p', { class: 'lead' }, t('newplan.lead')), form);
  nameIn.focus();
}
