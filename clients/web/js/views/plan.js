// Forløbet: one plan. Follows the live event stream (GET /v1/events,
// docs/events-stream.md) and re-reads the plan at once when an event of this
// plan arrives; while the stream is open it polls GET /v1/plans/{id} with
// If-None-Match only now and then (a change that makes no event), else every
// few seconds (304 costs nothing and writes no audit row). Either way it
// redraws the live parts when another participant changed something.
import { h, field, clear, fmtDate, fmtDateTime, fmtTime, todayCph, cphToIso } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { api, get, post, patch } from '../api.js';
import { AREAS, label, statusBadge } from '../labels.js';
import { onSubmit, showErrors } from '../forms.js';
import { organisations, orgNameSync } from '../orgs.js';
import { state, isCoordinator } from '../state.js';

export const name = 'plan';
const POLL_MS = 4000;
const POLL_STREAMING_MS = 30000;
// The event types (the Event schema's enum in api/openapi.yaml, every one
// about a plan); an EventSource only hears the types it names.
const PLAN_EVENTS = ['plan.created', 'plan.changed', 'plan.closed', 'plan.coordinator_changed',
  'plan.follow_up_due', 'consent.given', 'consent.refused', 'consent.withdrawn', 'consent.review_due',
  'participant.added', 'participant.changed', 'participant.left', 'meeting.scheduled', 'meeting.changed',
  'meeting.rescheduled', 'meeting.invitee_responded', 'meeting.held', 'meeting.cancelled',
  'meeting.outcome_overdue', 'action.created', 'action.changed', 'action.assigned', 'action.started',
  'action.completed', 'action.reopened', 'action.cancelled', 'action.overdue'];

export async function render(main, id) {
  const lang = currentLang();
  let res = await api('GET', `/v1/plans/${id}`);
  let plan = res.body;
  const orgs = await organisations();
  state.setTitle(plan.citizen.name);
  const byId = (pid) => plan.participants.find((p) => p.id === pid);
  const pname = (pid) => byId(pid)?.name || t('common.unknown');
  const me = () => plan.participants.find((p) => p.user_id === state.user.id && p.active);

  const sections = {
    head: h('div'), consent: h('section', { class: 'panel', 'aria-labelledby': 'sec-consent' }),
    participants: h('section', { class: 'panel', 'aria-labelledby': 'sec-participants' }),
    goals: h('section', { class: 'panel', 'aria-labelledby': 'sec-goals' }),
    actions: h('section', { class: 'panel', 'aria-labelledby': 'sec-actions' }),
    meetings: h('section', { class: 'panel', 'aria-labelledby': 'sec-meetings' }),
    coordinator: h('section', { class: 'panel', 'aria-labelledby': 'sec-coordinator' }),
    history: h('section', { class: 'panel', 'aria-labelledby': 'sec-history' }),
  };
  const live = h('p', { class: 'live-note muted', 'aria-live': 'polite' });

  function drawHead() {
    const el = clear(sections.head);
    el.append(h('div', { class: 'page-head plan-head' },
      h('div', null,
        h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans'))),
        h('h1', null, plan.citizen.name),
        h('p', { class: 'citizen-line' },
          h('span', { class: 'mono' }, `${t('plan.cpr')} ${plan.citizen.cpr}`),
          plan.citizen.phone ? h('span', null, `${t('plan.phone')} ${plan.citizen.phone}`) : null,
          plan.citizen.address ? h('span', null, plan.citizen.address) : null,
          statusBadge('plan_status', plan.status))),
      h('div', { class: 'head-actions' },
        h('a', { class: 'btn btn-secondary', href: `/forloeb/${plan.id}/deltagere` }, t('plan.add_participants')),
        plan.status !== 'closed' ? h('a', { class: 'btn btn-primary', href: `/forloeb/${plan.id}/nyt-moede` }, t('plan.plan_meeting')) : null)),
    h('p', { class: 'reason' }, h('strong', null, `${t('plan.reason')}: `), plan.reason), live);
  }

  function drawConsent(showForm = false) {
    const el = clear(sections.consent);
    const c = plan.consent;
    el.append(h('h2', { id: 'sec-consent' }, t('consent.title')));
    if (!c || c.withdrawn_at) {
      el.classList.add('panel-alert');
      el.append(h('div', { class: 'alert alert-error' },
        h('p', { class: 'alert-title' }, c ? t('consent.withdrawn', { date: fmtDate(c.withdrawn_at, lang) }) : t('consent.none')),
        h('p', null, t('consent.none_help'))));
      el.append(consentForm());
      return;
    }
    const soon = c.review_by <= todayCph(30);
    el.classList.toggle('panel-alert', !c.kip_consent || c.review_expired);
    el.append(h('dl', { class: 'consent-grid' },
      h('div', { class: 'consent-scope' }, h('dt', null, t('consent.kip')),
        h('dd', null, c.kip_consent ? h('span', { class: 'badge badge-ok' }, t('consent.given')) : h('span', { class: 'badge badge-bad' }, t('consent.not_given')))),
      h('div', { class: 'consent-scope' }, h('dt', null, t('consent.contact')),
        h('dd', null, c.contact_organisation_ids.length
          ? h('ul', { class: 'plain' }, c.contact_organisation_ids.map((o) => h('li', null, orgNameSync(orgs, o))))
          : h('span', { class: 'muted' }, t('consent.no_orgs')))),
      h('div', null, h('dt', null, t('consent.relatives')), h('dd', null, c.relatives_allowed ? t('common.yes') : t('common.no'))),
      h('div', null, h('dt', null, t('consent.form')), h('dd', null, `${label('consent_form', c.form)}, ${fmtDate(c.given_at, lang)}`)),
      h('div', { class: `consent-review${c.review_expired ? ' is-expired' : soon ? ' is-soon' : ''}` },
        h('dt', null, t('consent.review_by')),
        h('dd', null, h('strong', null, fmtDate(c.review_by, lang)),
          c.review_expired ? h('span', { class: 'badge badge-bad' }, t('consent.review_expired'))
            : soon ? h('span', { class: 'badge badge-warn' }, t('consent.review_soon')) : null))));
    if (plan.status !== 'closed') {
      const newBtn = h('button', { type: 'button', class: 'btn btn-secondary btn-small', onclick: () => drawConsent(true) }, t('consent.renew'));
      const wdBtn = h('button', { type: 'button', class: 'btn btn-danger btn-small', onclick: () => withdraw() }, t('consent.withdraw'));
      el.append(h('div', { class: 'row-actions' }, newBtn, wdBtn));
      if (showForm) el.append(consentForm(c));
    }
  }

  function withdraw() {
    const el = sections.consent;
    const note = h('textarea', { rows: 2, maxlength: 2000 });
    const form = h('form', { class: 'subform' },
      h('p', null, t('consent.withdraw_help')),
      field(t('consent.withdraw_note'), note, { field: 'note' }),
      h('div', { class: 'row-actions' },
        h('button', { type: 'submit', class: 'btn btn-danger' }, t('consent.withdraw_confirm')),
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => drawConsent() }, t('common.cancel'))));
    onSubmit(form, async () => {
      const body = note.value.trim() ? { note: note.value.trim() } : {};
      await post(`/v1/plans/${plan.id}/consent/withdraw`, body);
      await refresh(true);
    });
    el.append(form);
    note.focus();
  }

  function consentForm(prev) {
    const kip = h('input', { type: 'checkbox', checked: prev ? prev.kip_consent : true });
    const rel = h('input', { type: 'checkbox', checked: prev ? prev.relatives_allowed : false });
    const form_ = h('select', null, ['verbal', 'written'].map((f) => h('option', { value: f, selected: prev?.form === f }, label('consent_form', f))));
    const given = h('input', { type: 'date', value: todayCph(), max: todayCph() });
    const review = h('input', { type: 'date' });
    const chosen = new Set(prev ? prev.contact_organisation_ids : []);
    const orgBoxes = orgs.filter((o) => o.id !== plan.owner_organisation_id).map((o) => {
      const cb = h('input', { type: 'checkbox', value: o.id, checked: chosen.has(o.id) });
      return field(o.name, cb, { inline: true });
    });
    const orgSet = h('fieldset', { class: 'checks', 'data-pointer': '/contact_organisation_ids', id: 'consent-orgs' },
      h('legend', null, t('consent.contact_orgs')),
      h('p', { class: 'hint' }, t('consent.contact_orgs_hint')),
      orgBoxes.length ? orgBoxes : h('p', { class: 'muted' }, t('consent.no_other_orgs')),
      h('p', { class: 'error-text', id: 'consent-orgs-err', hidden: true }));
    const form = h('form', { class: 'subform', novalidate: true, 'aria-label': t('consent.record') },
      h('h3', null, t('consent.record')),
      field(t('consent.kip_label'), kip, { field: 'kip_consent', inline: true }),
      orgSet,
      field(t('consent.relatives_label'), rel, { field: 'relatives_allowed', inline: true }),
      h('div', { class: 'grid-3' },
        field(t('consent.form'), form_, { field: 'form', required: true }),
        field(t('consent.given_at'), given, { field: 'given_at', required: true }),
        field(t('consent.review_by'), review, { field: 'review_by', hint: t('consent.review_hint') })),
      h('div', { class: 'row-actions' },
        h('button', { type: 'submit', class: 'btn btn-primary' }, t('consent.save')),
        prev ? h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => drawConsent() }, t('common.cancel')) : null));
    onSubmit(form, async () => {
      const ids = [...orgSet.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
      const body = {
        kip_consent: kip.checked, contact_organisation_ids: ids, relatives_allowed: rel.checked,
        form: form_.value, given_at: given.value ? cphToIso(given.value, '12:00') : '',
      };
      if (body.given_at && new Date(body.given_at) > new Date()) body.given_at = new Date().toISOString();
      if (review.value) body.review_by = review.value;
      await post(`/v1/plans/${plan.id}/consent`, body);
      await refresh(true);
    });
    return form;
  }

  function drawParticipants() {
    const el = clear(sections.participants);
    const active = plan.participants.filter((p) => p.active);
    el.append(h('div', { class: 'panel-head' }, h('h2', { id: 'sec-participants' }, t('participants.title')),
      h('a', { href: `/forloeb/${plan.id}/deltagere`, class: 'btn btn-secondary btn-small' }, t('participants.add'))));
    el.append(h('ul', { class: 'people-list' }, active.map((p) => h('li', null,
      h('p', { class: 'person-name' }, p.name, p.id === plan.coordinator ? h('span', { class: 'badge badge-info' }, t('plan.tovholder')) : null),
      h('p', { class: 'muted small' }, [p.role_title || label('role', p.role), orgNameSync(orgs, p.organisation_id)].filter(Boolean).join(' · ')),
      (p.phone || p.email) ? h('p', { class: 'small contact' },
        p.phone ? h('a', { href: `tel:${p.phone.replace(/\s/g, '')}`, 'aria-label': `${t('participants.phone')} ${p.name}: ${p.phone}` }, p.phone) : null,
        p.email ? h('a', { href: `mailto:${p.email}` }, p.email) : null) : null))));
  }

  function drawGoals() {
    const el = clear(sections.goals);
    el.append(h('h2', { id: 'sec-goals' }, t('goals.title')));
    el.append(plan.goals.length
      ? h('ol', { class: 'goals' }, plan.goals.map((g) => h('li', null,
        h('blockquote', null, g.text), h('span', { class: 'muted small' }, `${label('goal_owner', g.owner)} · ${label('goal_status', g.status)}`),
        g.sub_goals?.length ? h('ul', null, g.sub_goals.map((s) => h('li', null, s.text))) : null)))
      : h('p', { class: 'muted' }, t('goals.none')));
    el.append(h('h3', null, t('needs.title')));
    el.append(h('ul', { class: 'needs' }, AREAS.map((a) => {
      const n = plan.needs?.[a];
      return h('li', { class: n?.relevant ? 'need need-on' : 'need' },
        h('span', { class: 'need-mark', 'aria-hidden': 'true' }, n?.relevant ? '●' : '○'),
        h('span', null, label('area', a), h('span', { class: 'visually-hidden' }, n?.relevant ? ` (${t('needs.relevant')})` : ` (${t('needs.not_relevant')})`)),
        n?.note ? h('span', { class: 'muted small' }, ` – ${n.note}`) : null);
    })));
  }

  function drawActions() {
    const el = clear(sections.actions);
    el.append(h('h2', { id: 'sec-actions' }, t('actions.title')));
    if (!plan.actions.length) { el.append(h('p', { class: 'muted' }, t('actions.none'))); return; }
    const groups = new Map();
    for (const a of plan.actions) {
      if (!groups.has(a.responsible_participant_id)) groups.set(a.responsible_participant_id, []);
      groups.get(a.responsible_participant_id).push(a);
    }
    for (const [pid, list] of groups) {
      const p = byId(pid);
      el.append(h('h3', { class: 'group-head' }, pname(pid), p ? h('span', { class: 'muted small' }, ` · ${orgNameSync(orgs, p.organisation_id)}`) : null));
      el.append(h('ul', { class: 'action-list' }, list.map((a) => h('li', { class: `action${a.overdue ? ' is-overdue' : ''}`, dataset: { actionId: a.id, status: a.status } },
        h('div', { class: 'action-main' },
          h('span', { class: 'action-title' }, a.title),
          h('span', { class: 'muted small' }, label('area', a.area), a.due_date ? ` · ${t('actions.due')} ${fmtDate(a.due_date, lang)}` : '')),
        h('div', { class: 'action-state' },
          a.overdue ? h('span', { class: 'badge badge-overdue' }, t('actions.overdue')) : null,
          statusBadge('action_status', a.status))))));
    }
  }

  function drawMeetings() {
    const el = clear(sections.meetings);
    el.append(h('div', { class: 'panel-head' }, h('h2', { id: 'sec-meetings' }, t('meetings.title')),
      plan.status !== 'closed' ? h('a', { href: `/forloeb/${plan.id}/nyt-moede`, class: 'btn btn-secondary btn-small' }, t('plan.plan_meeting')) : null));
    if (!plan.meetings.length) { el.append(h('p', { class: 'muted' }, t('meetings.none'))); return; }
    const sorted = [...plan.meetings].sort((a, b) => a.starts_at.localeCompare(b.starts_at));
    el.append(h('ul', { class: 'meeting-list' }, sorted.map((m) => h('li', { class: `meeting meeting-${m.status}` },
      h('div', null,
        h('p', { class: 'meeting-when' }, fmtDateTime(m.starts_at, lang), '–', fmtTime(m.ends_at, lang)),
        h('p', { class: 'muted small' }, label('place', m.location.kind), m.location.room ? `, ${m.location.room}` : '', m.location.address ? `, ${m.location.address}` : '')),
      h('div', { class: 'meeting-actions' },
        statusBadge('meeting_status', m.status),
        m.overdue_outcome ? h('span', { class: 'badge badge-warn' }, t('meetings.outcome_missing')) : null,
        m.status === 'planned' ? h('a', { class: 'btn btn-secondary btn-small', href: `/v1/meetings/${m.id}/agenda`, target: '_blank', rel: 'noopener' }, t('meetings.agenda')) : null,
        m.status === 'planned' ? h('a', { class: 'btn btn-primary btn-small', href: `/moeder/${m.id}/moedetilstand` }, t('meetings.start')) : null,
        m.status === 'held' ? h('a', { class: 'btn btn-secondary btn-small', href: `/moeder/${m.id}/referat` }, t('meetings.minutes')) : null)))));
  }

  function drawCoordinator() {
    const el = clear(sections.coordinator);
    el.append(h('h2', { id: 'sec-coordinator' }, t('coordinator.title')));
    el.append(h('p', null, h('strong', null, pname(plan.coordinator)), ` · ${orgNameSync(orgs, byId(plan.coordinator)?.organisation_id)}`));
    const candidates = plan.participants.filter((p) => p.active && p.kind === 'professional' && p.id !== plan.coordinator);
    if (plan.status === 'closed' || !candidates.length) return;
    const sel = h('select', null, h('option', { value: '' }, t('common.choose')), candidates.map((p) => h('option', { value: p.id }, p.name)));
    const form = h('form', { class: 'inline-form' },
      field(t('coordinator.handover_to'), sel, { field: 'participant_id' }),
      h('button', { type: 'submit', class: 'btn btn-secondary' }, t('coordinator.handover')));
    onSubmit(form, async () => {
      await post(`/v1/plans/${plan.id}/coordinator`, { participant_id: sel.value }, { ifMatch: plan.version });
      await refresh(true);
    });
    el.append(form);
  }

  function drawHistory() {
    const el = clear(sections.history);
    el.append(h('h2', { id: 'sec-history' }, t('history.title')));
    const hist = h('details', null, h('summary', null, t('history.show')));
    hist.addEventListener('toggle', async () => {
      if (!hist.open || hist.dataset.loaded) return;
      hist.dataset.loaded = '1';
      const page = await get(`/v1/plans/${plan.id}/history?limit=200`);
      hist.append(h('table', { class: 'table table-compact' },
        h('thead', null, h('tr', null, ['history.at', 'history.what', 'history.field', 'history.after'].map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', null, page.items.slice(-200).reverse().map((i) => h('tr', null,
          h('td', null, fmtDateTime(i.at, lang)), h('td', null, `${label('resource', i.resource)} · ${label('operation', i.operation)}`),
          h('td', { class: 'mono small' }, i.field || ''), h('td', { class: 'small' }, shortValue(i.after)))))));
    });
    el.append(hist);
    if (isCoordinator() && state.user.organisation_id === plan.owner_organisation_id) {
      const log = h('details', null, h('summary', null, t('accesslog.show')));
      log.addEventListener('toggle', async () => {
        if (!log.open || log.dataset.loaded) return;
        log.dataset.loaded = '1';
        const page = await get(`/v1/plans/${plan.id}/access-log?limit=100`);
        log.append(h('p', { class: 'hint' }, t('accesslog.help')), h('table', { class: 'table table-compact' },
          h('thead', null, h('tr', null, ['history.at', 'accesslog.who', 'accesslog.organisation', 'accesslog.action'].map((k) => h('th', { scope: 'col' }, t(k))))),
          h('tbody', null, page.items.map((i) => h('tr', null, h('td', null, fmtDateTime(i.at, lang)),
            h('td', null, i.user?.display_name || ''), h('td', null, i.organisation?.name || ''), h('td', { class: 'mono small' }, i.action))))));
      });
      el.append(log);
    }
  }

  function drawAll() {
    drawHead(); drawConsent(); drawParticipants(); drawGoals(); drawActions(); drawMeetings(); drawCoordinator(); drawHistory();
  }

  // Redraw what changed. A form being filled in (consent, handover) is not
  // redrawn under the user's fingers unless we asked for it (force).
  async function refresh(force) {
    const r = await api('GET', `/v1/plans/${id}`, { ifNoneMatch: force ? undefined : plan.version });
    if (r.status === 304) return;
    plan = r.body;
    const busy = (sec) => !force && sec.querySelector('form') && sec.contains(document.activeElement);
    drawHead(); drawParticipants(); drawGoals(); drawActions(); drawMeetings();
    if (!busy(sections.consent)) drawConsent();
    if (!busy(sections.coordinator)) drawCoordinator();
    if (!force) live.textContent = t('plan.updated', { time: fmtTime(new Date().toISOString(), lang) });
  }

  drawAll();
  main.append(sections.head,
    h('div', { class: 'plan-grid' },
      h('div', { class: 'col-main' }, sections.consent, sections.actions, sections.meetings, sections.goals),
      h('div', { class: 'col-side' }, sections.participants, sections.coordinator, sections.history)));

  let stopped = false;
  let lastPoll = Date.now();
  const poll = () => {
    lastPoll = Date.now();
    refresh(false).catch((e) => { if (e.status !== 0) console.warn('poll', e.status); });
  };
  // Same origin: the session cookie goes along. It reconnects by itself with
  // Last-Event-ID; after a 401 (signed out) it stays closed and polling goes on.
  let streaming = false;
  const events = typeof EventSource === 'function' ? new EventSource('/v1/events') : null;
  if (events) {
    events.onopen = () => { streaming = true; };
    events.onerror = () => { streaming = false; };
    const onEvent = (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      if (!stopped && ev.plan_id === plan.id) poll();
    };
    for (const type of PLAN_EVENTS) events.addEventListener(type, onEvent);
  }
  const timer = setInterval(() => {
    if (stopped || document.hidden) return;
    if (streaming && events.readyState === 1 && Date.now() - lastPoll < POLL_STREAMING_MS) return;
    poll();
  }, POLL_MS);
  return () => { stopped = true; clearInterval(timer); if (events) events.close(); };
}

function shortValue(v) {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}
