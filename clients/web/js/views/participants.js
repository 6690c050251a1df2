// Deltagere: add a professional found in the colleague directory (by name
// and organisation), or a relative or a GP without an account (name, phone).
import { h, field, clear } from '../dom.js';
import { t } from '../i18n.js';
import { get, post } from '../api.js';
import { ROLES, MODES, label, roleForSector } from '../labels.js';
import { onSubmit, showErrors, clearErrors } from '../forms.js';
import { organisations, orgNameSync } from '../orgs.js';
import { state } from '../state.js';

export const name = 'participants';

export async function render(main, id) {
  let plan = await get(`/v1/plans/${id}`);
  const orgs = await organisations();
  state.setTitle(t('participants.title'));
  const done = h('div', { 'aria-live': 'polite' });

  // 1. The directory.
  const q = h('input', { type: 'search', autocomplete: 'off', minlength: 2 });
  const org = h('select', null, h('option', { value: '' }, t('directory.any_org')),
    orgs.map((o) => h('option', { value: o.id }, o.name)));
  const results = h('div', { class: 'results' });
  const dirForm = h('form', { class: 'toolbar', role: 'search', novalidate: true },
    field(t('directory.name'), q, { field: 'q', class: 'grow', hint: t('directory.hint') }),
    field(t('directory.organisation'), org, { field: 'organisation_id' }),
    h('div', { class: 'toolbar-actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, t('directory.search'))));
  onSubmit(dirForm, async () => {
    const p = new URLSearchParams({ limit: '20' });
    if (q.value.trim()) p.set('q', q.value.trim());
    if (org.value) p.set('organisation_id', org.value);
    clear(results);
    const page = await get(`/v1/directory?${p}`);
    if (!page.items.length) { results.append(h('p', { class: 'empty' }, t('directory.none'))); return; }
    const already = new Set(plan.participants.filter((x) => x.active && x.user_id).map((x) => x.user_id));
    results.append(h('ul', { class: 'dir-list' }, page.items.map((u) => {
      const role = h('select', { 'aria-label': t('participants.role_for', { name: u.display_name }) },
        ROLES.filter((r) => r !== 'relative').map((r) => h('option', { value: r, selected: r === roleForSector(u.organisation.sector) }, label('role', r))));
      const rowForm = h('form', { class: 'dir-item' },
        h('div', { class: 'dir-who' },
          h('p', { class: 'dir-name' }, u.display_name),
          h('p', { class: 'muted small' }, [u.organisation.name, u.phone, u.email].filter(Boolean).join(' · '))),
        role,
        already.has(u.id) ? h('span', { class: 'badge badge-ok' }, t('directory.already'))
          : h('button', { type: 'submit', class: 'btn btn-primary btn-small', 'aria-label': t('directory.add_named', { name: u.display_name }) }, t('directory.add')));
      role.dataset.field = 'role';
      role.id = `role-${u.id}`;
      rowForm.append(h('p', { class: 'error-text', id: `role-${u.id}-err`, hidden: true }));
      onSubmit(rowForm, async () => {
        const body = { kind: 'professional', user_id: u.id, role: role.value };
        if (u.phone) body.phone = u.phone;
        if (u.email) body.email = u.email;
        const added = await post(`/v1/plans/${plan.id}/participants`, body);
        plan = await get(`/v1/plans/${id}`);
        rowForm.replaceChildren(h('p', { class: 'alert alert-ok' }, t('participants.added', { name: added.name })));
        drawList();
      });
      return h('li', null, rowForm);
    })));
  });

  // 2. Without an account.
  const kind = h('select', null, h('option', { value: 'professional' }, t('participants.kind_professional')), h('option', { value: 'relative' }, t('participants.kind_relative')));
  const pname = h('input', { type: 'text', autocomplete: 'off' });
  const phone = h('input', { type: 'tel', autocomplete: 'off' });
  const email = h('input', { type: 'email', autocomplete: 'off' });
  const role = h('select', null, ROLES.map((r) => h('option', { value: r, selected: r === 'general_practitioner' }, label('role', r))));
  const porg = h('select', null, h('option', { value: '' }, t('participants.no_org')), orgs.map((o) => h('option', { value: o.id }, o.name)));
  const mode = h('select', null, h('option', { value: '' }, t('common.not_set')), MODES.map((m) => h('option', { value: m, selected: m === 'phone' }, label('mode', m))));
  kind.addEventListener('change', () => { if (kind.value === 'relative') { role.value = 'relative'; porg.value = ''; } });
  const extForm = h('form', { class: 'ext-form', novalidate: true },
    h('div', { class: 'grid-2' },
      field(t('participants.kind'), kind, { field: 'kind' }),
      field(t('participants.name'), pname, { field: 'name', required: true }),
      field(t('participants.role'), role, { field: 'role' }),
      field(t('participants.phone'), phone, { field: 'phone' }),
      field(t('participants.email'), email, { field: 'email' }),
      field(t('participants.organisation'), porg, { field: 'organisation_id', hint: t('participants.org_hint') }),
      field(t('participants.default_mode'), mode, { field: 'default_attendance' })),
    h('div', { class: 'row-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('participants.add_external'))));
  onSubmit(extForm, async () => {
    const body = { kind: kind.value, name: pname.value.trim(), role: role.value };
    if (phone.value.trim()) body.phone = phone.value.trim();
    if (email.value.trim()) body.email = email.value.trim();
    if (porg.value) body.organisation_id = porg.value;
    if (mode.value) body.default_attendance = mode.value;
    const added = await post(`/v1/plans/${plan.id}/participants`, body);
    plan = await get(`/v1/plans/${id}`);
    pname.value = ''; phone.value = ''; email.value = '';
    clear(done).append(h('p', { class: 'alert alert-ok' }, t('participants.added', { name: added.name })));
    drawList();
  });

  const list = h('section', { class: 'panel', 'aria-labelledby': 'plist-h' });
  function drawList() {
    clear(list).append(h('h2', { id: 'plist-h' }, t('participants.current')),
      h('ul', { class: 'plain people' }, plan.participants.filter((p) => p.active).map((p) => h('li', null,
        h('strong', null, p.name), ` · ${p.role_title || label('role', p.role)}`,
        p.organisation_id ? ` · ${orgNameSync(orgs, p.organisation_id)}` : '', p.phone ? ` · ${p.phone}` : ''))));
  }
  drawList();

  main.append(
    h('div', { class: 'page-head' }, h('div', null,
      h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans')), ' / ', h('a', { href: `/forloeb/${plan.id}` }, plan.citizen.name)),
      h('h1', null, t('participants.title'))),
      h('a', { class: 'btn btn-secondary', href: `/forloeb/${plan.id}` }, t('participants.back'))),
    h('div', { class: 'plan-grid' },
      h('div', { class: 'col-main' },
        h('section', { class: 'panel', 'aria-labelledby': 'dir-h' }, h('h2', { id: 'dir-h' }, t('directory.title')),
          h('p', { class: 'hint' }, t('directory.lead')), dirForm, results),
        h('section', { class: 'panel', 'aria-labelledby': 'ext-h' }, h('h2', { id: 'ext-h' }, t('participants.external_title')),
          h('p', { class: 'hint' }, t('participants.external_lead')), done, extForm)),
      h('div', { class: 'col-side' }, list)));
  q.focus();
}
