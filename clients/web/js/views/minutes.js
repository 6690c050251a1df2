// Referat: the minutes of a held meeting as a clean A4 page (print.css).
import { h, fmtDate, fmtDateTime, fmtTime } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { get } from '../api.js';
import { label } from '../labels.js';
import { organisations, orgNameSync } from '../orgs.js';
import { state } from '../state.js';

export const name = 'minutes';

export async function render(main, meetingId) {
  const lang = currentLang();
  const meeting = await get(`/v1/meetings/${meetingId}`);
  const plan = await get(`/v1/plans/${meeting.plan_id}`);
  const orgs = await organisations();
  state.setTitle(t('minutes.title'));
  const pname = (pid) => plan.participants.find((p) => p.id === pid);
  const o = meeting.outcome;
  const head = h('div', { class: 'page-head no-print' }, h('div', null,
    h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans')), ' / ', h('a', { href: `/forloeb/${plan.id}` }, plan.citizen.name))),
  h('button', { type: 'button', class: 'btn btn-primary', onclick: () => window.print() }, t('minutes.print')));
  if (!o) {
    main.append(head, h('div', { class: 'alert alert-info' }, h('p', null, t('minutes.not_held'))));
    return;
  }
  const actions = plan.actions.filter((a) => o.action_ids.includes(a.id));
  const next = o.next_meeting_id ? plan.meetings.find((m) => m.id === o.next_meeting_id) : null;
  const who = (pid) => {
    const p = pname(pid);
    return p ? `${p.name} (${label('role', p.role)}${p.organisation_id ? `, ${orgNameSync(orgs, p.organisation_id)}` : ''})` : '';
  };
  main.append(head, h('article', { class: 'paper' },
    h('header', { class: 'paper-head' },
      h('p', { class: 'paper-kicker' }, t('minutes.kicker')),
      h('h1', null, t('minutes.title_for', { name: plan.citizen.name })),
      h('p', null, fmtDateTime(meeting.starts_at, lang), '–', fmtTime(meeting.ends_at, lang), ' · ', label('place', meeting.location.kind),
        meeting.location.room ? `, ${meeting.location.room}` : '', meeting.location.address ? `, ${meeting.location.address}` : '')),
    h('h2', null, t('minutes.present')),
    h('ul', null, o.attendance.filter((a) => a.attended).map((a) => h('li', null, who(a.participant_id), a.mode ? ` – ${label('mode', a.mode)}` : ''))),
    o.attendance.some((a) => !a.attended) ? [h('h2', null, t('minutes.absent')),
      h('ul', null, o.attendance.filter((a) => !a.attended).map((a) => h('li', null, who(a.participant_id))))] : null,
    h('h2', null, t('minutes.summary')), h('p', { class: 'prose' }, o.summary),
    o.shared_assessment ? [h('h2', null, t('mm.shared_assessment')), h('p', { class: 'prose' }, o.shared_assessment)] : null,
    o.observations?.length ? [h('h2', null, t('mm.observations')),
      h('dl', { class: 'obs' }, o.observations.map((x) => [h('dt', null, who(x.participant_id)), h('dd', null, x.text)]))] : null,
    h('h2', null, t('minutes.agreed')),
    actions.length ? h('table', { class: 'table' }, h('thead', null, h('tr', null,
      ['mm.action_title', 'mm.action_responsible', 'mm.action_area', 'mm.action_due'].map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', null, actions.map((a) => h('tr', null, h('td', null, a.title), h('td', null, pname(a.responsible_participant_id)?.name || ''),
      h('td', null, label('area', a.area)), h('td', null, a.due_date ? fmtDate(a.due_date, lang) : '')))))
      : h('p', null, t('minutes.no_actions')),
    h('h2', null, t('minutes.acceptance')),
    h('p', null, o.citizen_accepted ? t('minutes.accepted') : t('minutes.not_accepted')),
    h('h2', null, t('minutes.next')),
    next ? h('p', null, fmtDateTime(next.starts_at, lang), ' · ', label('place', next.location.kind), next.location.room ? `, ${next.location.room}` : '')
      : h('p', null, t('minutes.no_further', { reason: o.no_further_meeting?.reason || '' })),
    h('footer', { class: 'paper-foot' }, t('minutes.recorded', { name: plan.participants.find((p) => p.user_id === o.recorded_by)?.name || '', at: fmtDateTime(o.recorded_at, lang) }))));
}
