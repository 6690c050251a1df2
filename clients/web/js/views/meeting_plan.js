// Planlæg møde: date and time (90 minutes by default), the place, the
// invitees each with a mode and, for the GP, a time window. The API's
// warnings (overlap, a time in the past, the citizen left out) are shown
// inline once the meeting is saved.
import { h, field, todayCph, cphToIso } from '../dom.js';
import { t } from '../i18n.js';
import { get, post } from '../api.js';
import { MODES, PLACES, label } from '../labels.js';
import { onSubmit, warningsBox } from '../forms.js';
import { organisations, orgNameSync } from '../orgs.js';
import { state } from '../state.js';

export const name = 'meeting-plan';

export async function render(main, id) {
  const plan = await get(`/v1/plans/${id}`);
  const orgs = await organisations();
  state.setTitle(t('mplan.title'));
  const date = h('input', { type: 'date', value: todayCph(7) });
  const time = h('input', { type: 'time', value: '10:00', step: 300 });
  const dur = h('input', { type: 'number', min: 15, max: 720, step: 15, value: 90 });
  const kind = h('select', null, PLACES.map((p) => h('option', { value: p }, label('place', p))));
  const address = h('input', { type: 'text' });
  const room = h('input', { type: 'text' });
  const video = h('input', { type: 'url', placeholder: 'https://' });
  const purpose = h('textarea', { rows: 2, value: t('mplan.default_purpose') });
  const active = plan.participants.filter((p) => p.active);
  const rows = active.map((p) => {
    const inv = h('input', { type: 'checkbox', checked: true });
    const mode = h('select', { 'aria-label': t('mplan.mode_for', { name: p.name }) },
      MODES.map((m) => h('option', { value: m, selected: m === (p.default_attendance || 'in_person') }, label('mode', m))));
    const ws = h('input', { type: 'time', step: 300, 'aria-label': t('mplan.window_from_for', { name: p.name }) });
    const we = h('input', { type: 'time', step: 300, 'aria-label': t('mplan.window_to_for', { name: p.name }) });
    return { p, inv, mode, ws, we };
  });
  const invTable = h('table', { class: 'table table-compact invitees' },
    h('thead', null, h('tr', null, ['mplan.invited', 'participants.name', 'participants.role', 'mplan.mode', 'mplan.window'].map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', null, rows.map((r, i) => {
      r.inv.id = `inv-${i}`;
      r.inv.dataset.pointer = `/invitees/${i}/participant_id`;
      r.ws.id = `inv-${i}-ws`; r.ws.dataset.pointer = `/invitees/${i}/window_start`;
      r.we.id = `inv-${i}-we`; r.we.dataset.pointer = `/invitees/${i}/window_end`;
      return h('tr', null,
        h('td', null, r.inv),
        h('th', { scope: 'row' }, h('label', { for: r.inv.id }, r.p.name)),
        h('td', null, label('role', r.p.role), r.p.organisation_id ? h('span', { class: 'muted small' }, ` · ${orgNameSync(orgs, r.p.organisation_id)}`) : null),
        h('td', null, r.mode),
        h('td', { class: 'window' }, r.ws, '–', r.we,
          h('p', { class: 'error-text', id: `inv-${i}-err`, hidden: true }),
          h('p', { class: 'error-text', id: `inv-${i}-ws-err`, hidden: true }),
          h('p', { class: 'error-text', id: `inv-${i}-we-err`, hidden: true })));
    })));
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'form-page', novalidate: true },
    h('fieldset', null, h('legend', null, t('mplan.when')),
      h('div', { class: 'grid-3' },
        field(t('mplan.date'), date, { pointer: '/starts_at', required: true }),
        field(t('mplan.time'), time, { required: true }),
        field(t('mplan.duration'), dur, { pointer: '/duration_minutes', hint: t('mplan.duration_hint') }))),
    h('fieldset', null, h('legend', null, t('mplan.where')),
      h('div', { class: 'grid-2' },
        field(t('mplan.place'), kind, { pointer: '/location/kind' }),
        field(t('mplan.address'), address, { pointer: '/location/address' }),
        field(t('mplan.room'), room, { pointer: '/location/room' }),
        field(t('mplan.video'), video, { pointer: '/location/video_url' }))),
    field(t('mplan.purpose'), purpose, { pointer: '/purpose', required: true }),
    h('fieldset', null, h('legend', null, t('mplan.invitees')), h('p', { class: 'hint' }, t('mplan.window_hint')), invTable),
    h('div', { class: 'row-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('mplan.save')),
      h('a', { class: 'btn btn-ghost', href: `/forloeb/${plan.id}` }, t('common.cancel'))));
  onSubmit(form, async () => {
    // Errors name invitees by their place in the list sent: point each
    // row's controls at its index among the invited ones.
    rows.filter((r) => r.inv.checked).forEach((r, j) => {
      r.inv.dataset.pointer = `/invitees/${j}/participant_id`;
      r.ws.dataset.pointer = `/invitees/${j}/window_start`;
      r.we.dataset.pointer = `/invitees/${j}/window_end`;
    });
    rows.filter((r) => !r.inv.checked).forEach((r) => {
      for (const c of [r.inv, r.ws, r.we]) c.dataset.pointer = '/-';
    });
    const startsAt = date.value && time.value ? cphToIso(date.value, time.value) : '';
    const body = {
      starts_at: startsAt, duration_minutes: Number(dur.value) || 90,
      location: { kind: kind.value }, purpose: purpose.value.trim(),
      invitees: rows.filter((r) => r.inv.checked).map((r) => {
        const inv = { participant_id: r.p.id, mode: r.mode.value };
        if (r.ws.value) inv.window_start = cphToIso(date.value, r.ws.value);
        if (r.we.value) inv.window_end = cphToIso(date.value, r.we.value);
        return inv;
      }),
    };
    if (address.value.trim()) body.location.address = address.value.trim();
    if (room.value.trim()) body.location.room = room.value.trim();
    if (video.value.trim()) body.location.video_url = video.value.trim();
    const m = await post(`/v1/plans/${plan.id}/meetings`, body, { ifMatch: plan.version });
    if (m.warnings?.length) {
      form.hidden = true;
      result.replaceChildren(h('div', { class: 'alert alert-ok' }, h('p', { class: 'alert-title' }, t('mplan.saved'))),
        warningsBox(m.warnings, (pid) => plan.participants.find((p) => p.id === pid)?.name),
        h('div', { class: 'row-actions' }, h('a', { class: 'btn btn-primary', href: `/forloeb/${plan.id}` }, t('mplan.to_plan'))));
      result.querySelector('.alert-warning')?.setAttribute('tabindex', '-1');
      result.querySelector('.alert-warning')?.focus();
      return;
    }
    state.navigate(`/forloeb/${plan.id}`);
  });
  main.append(h('div', { class: 'page-head' }, h('div', null,
    h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans')), ' / ', h('a', { href: `/forloeb/${plan.id}` }, plan.citizen.name)),
    h('h1', null, t('mplan.title')))), result, form);
  date.focus();
}
