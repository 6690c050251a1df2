// Mødetilstand: the meeting template as the meeting happens. Everything
// typed is kept as a draft in the browser (drafts.js) on every keystroke,
// for this user and meeting only, with no CPR number, so a reload or a lost
// connection loses nothing. It is saved in one step at the end with
// POST /v1/meetings/{id}/outcome; the follow-up of earlier actions is then
// applied with one PATCH each.
import { h, field, clear, fmtDate, fmtDateTime, fmtTime, todayCph, cphToIso, isoToCph } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { api, get, post } from '../api.js';
import { AREAS, MODES, label } from '../labels.js';
import { showErrors, clearErrors, warningsBox, problemHeadline } from '../forms.js';
import { loadDraft, saveDraft, deleteDraft } from '../drafts.js';
import { organisations, orgNameSync } from '../orgs.js';
import { state } from '../state.js';

export const name = 'meeting-mode';

export async function render(main, meetingId) {
  const lang = currentLang();
  const meeting = await get(`/v1/meetings/${meetingId}`);
  const plan = await get(`/v1/plans/${meeting.plan_id}`);
  const orgs = await organisations();
  state.setTitle(t('mm.title'));
  if (meeting.status !== 'planned') {
    main.append(h('h1', null, t('mm.title')), h('div', { class: 'alert alert-info' }, h('p', null, t('mm.not_planned'))),
      h('a', { class: 'btn btn-secondary', href: `/forloeb/${plan.id}` }, t('mplan.to_plan')));
    return;
  }
  const active = plan.participants.filter((p) => p.active);
  const invited = new Map(meeting.invitees.map((i) => [i.participant_id, i]));
  const people = [...active].sort((a, b) => (invited.has(b.id) - invited.has(a.id)));
  const pname = (pid) => plan.participants.find((p) => p.id === pid)?.name || t('common.unknown');
  const openActions = plan.actions.filter((a) => a.status === 'open' || a.status === 'in_progress');

  const fresh = () => {
    const start = isoToCph(meeting.starts_at);
    const next = new Date(new Date(meeting.starts_at).getTime() + 56 * 86400000).toISOString();
    return {
      attendance: Object.fromEntries(people.map((p) => [p.id, { attended: invited.has(p.id), mode: invited.get(p.id)?.mode || p.default_attendance || 'in_person' }])),
      observations: {}, summary: '', shared_assessment: '', followups: {}, actions: [], citizen_accepted: false,
      decision: 'next', next_date: isoToCph(next).date, next_time: start.time, no_further_reason: '',
    };
  };
  let draft = loadDraft(state.user.id, meetingId) || fresh();
  const restored = !!loadDraft(state.user.id, meetingId);
  const status = h('p', { class: 'draft-status muted small', 'aria-live': 'polite' });
  let saveTimer = null;
  let saved = false;
  const persist = () => {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      if (saved || !state.user) return;
      if (saveDraft(state.user.id, meetingId, draft)) status.textContent = t('mm.draft_saved', { time: fmtTime(new Date().toISOString(), lang) });
    }, 250);
  };

  // 1. Attendance.
  const attRows = people.map((p, i) => {
    const a = draft.attendance[p.id] || { attended: false, mode: 'in_person' };
    draft.attendance[p.id] = a;
    const cb = h('input', { type: 'checkbox', checked: a.attended, id: `att-${i}` });
    cb.addEventListener('change', () => { a.attended = cb.checked; persist(); });
    cb.dataset.pointer = `/attendance/${i}/attended`;
    const mode = h('select', { 'aria-label': t('mm.mode_for', { name: p.name }), id: `att-${i}-mode` }, MODES.map((m) => h('option', { value: m, selected: m === a.mode }, label('mode', m))));
    mode.addEventListener('change', () => { a.mode = mode.value; persist(); });
    mode.dataset.pointer = `/attendance/${i}/mode`;
    return h('tr', null, h('td', null, cb),
      h('th', { scope: 'row' }, h('label', { for: cb.id }, p.name)),
      h('td', null, label('role', p.role), p.organisation_id ? h('span', { class: 'muted small' }, ` · ${orgNameSync(orgs, p.organisation_id)}`) : null,
        invited.has(p.id) ? null : h('span', { class: 'badge badge-warn' }, t('mm.not_invited'))),
      h('td', null, mode, h('p', { class: 'error-text', id: `att-${i}-err`, hidden: true }), h('p', { class: 'error-text', id: `att-${i}-mode-err`, hidden: true })));
  });

  // 2. Observations, one per participant.
  const obs = people.map((p, i) => {
    const ta = h('textarea', { rows: 2, value: draft.observations[p.id] || '' });
    ta.addEventListener('input', () => { draft.observations[p.id] = ta.value; persist(); });
    return field(t('mm.observation_of', { name: p.name }), ta, { pointer: `/observations/${i}/text` });
  });

  // 3. Summary and shared assessment.
  const summary = h('textarea', { rows: 3, value: draft.summary });
  summary.addEventListener('input', () => { draft.summary = summary.value; persist(); });
  const assess = h('textarea', { rows: 3, value: draft.shared_assessment });
  assess.addEventListener('input', () => { draft.shared_assessment = assess.value; persist(); });

  // 4. Follow-up of the open actions, one by one.
  const follow = openActions.length ? h('ol', { class: 'followups' }, openActions.map((a) => {
    const name_ = `fu-${a.id}`;
    const choice = draft.followups[a.id] || 'unchanged';
    const opts = ['unchanged', 'in_progress', 'done', 'cancelled'].map((v) => h('label', { class: 'seg' },
      h('input', { type: 'radio', name: name_, value: v, checked: choice === v, onchange: () => { draft.followups[a.id] = v; persist(); } }),
      h('span', null, t(`mm.fu_${v}`))));
    return h('li', { class: `followup${a.overdue ? ' is-overdue' : ''}` },
      h('div', null, h('p', { class: 'action-title' }, a.title),
        h('p', { class: 'muted small' }, `${pname(a.responsible_participant_id)} · ${label('area', a.area)}`, a.due_date ? ` · ${t('actions.due')} ${fmtDate(a.due_date, lang)}` : '',
          a.overdue ? h('span', { class: 'badge badge-overdue' }, t('actions.overdue')) : null)),
      h('fieldset', { class: 'segmented' }, h('legend', { class: 'visually-hidden' }, t('mm.followup_of', { title: a.title })), opts));
  })) : h('p', { class: 'muted' }, t('mm.no_open_actions'));

  // 5. New actions, by keyboard alone: Enter in any field adds the row.
  const newList = h('ul', { class: 'new-actions' });
  const title = h('input', { type: 'text', maxlength: 500, autocomplete: 'off' });
  const area = h('select', null, [...AREAS, 'other'].map((a) => h('option', { value: a }, label('area', a))));
  const resp = h('select', null, h('option', { value: '' }, t('common.choose')), active.map((p) => h('option', { value: p.id }, p.name)));
  const due = h('input', { type: 'date', min: todayCph() });
  const addBtn = h('button', { type: 'button', class: 'btn btn-secondary' }, t('mm.add_action'));
  const addErr = h('p', { class: 'error-text', role: 'alert', hidden: true });
  function drawNew() {
    clear(newList);
    draft.actions.forEach((a, i) => {
      newList.append(h('li', { class: 'new-action', id: `na-${i}`, dataset: { pointer: `/actions/${i}` } },
        h('div', null, h('p', { class: 'action-title' }, a.title),
          h('p', { class: 'muted small' }, `${pname(a.responsible_participant_id)} · ${label('area', a.area)}`, a.due_date ? ` · ${t('actions.due')} ${fmtDate(a.due_date, lang)}` : ''),
          h('p', { class: 'error-text', id: `na-${i}-err`, hidden: true })),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': t('mm.remove_action', { title: a.title }), onclick: () => { draft.actions.splice(i, 1); persist(); drawNew(); title.focus(); } }, t('common.remove'))));
    });
  }
  const addAction = () => {
    addErr.hidden = true;
    if (!title.value.trim() || !resp.value) {
      addErr.textContent = !title.value.trim() ? t('mm.action_title_missing') : t('mm.action_resp_missing');
      addErr.hidden = false;
      (!title.value.trim() ? title : resp).focus();
      return;
    }
    const a = { title: title.value.trim(), area: area.value, responsible_participant_id: resp.value };
    if (due.value) a.due_date = due.value;
    draft.actions.push(a);
    persist();
    drawNew();
    title.value = ''; due.value = '';
    document.getElementById('live').textContent = t('mm.action_added', { title: a.title });
    title.focus();
  };
  addBtn.addEventListener('click', addAction);
  for (const el of [title, area, resp, due]) el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); addAction(); } });
  drawNew();

  // 6. Acceptance and decision.
  const accepted = h('input', { type: 'checkbox', checked: draft.citizen_accepted });
  accepted.addEventListener('change', () => { draft.citizen_accepted = accepted.checked; persist(); });
  const decNext = h('input', { type: 'radio', name: 'decision', value: 'next', checked: draft.decision === 'next' });
  const decNone = h('input', { type: 'radio', name: 'decision', value: 'none', checked: draft.decision === 'none' });
  const nextDate = h('input', { type: 'date', value: draft.next_date });
  const nextTime = h('input', { type: 'time', value: draft.next_time, step: 300 });
  const reason = h('textarea', { rows: 2, value: draft.no_further_reason });
  const nextBox = h('div', { class: 'grid-2 indent' },
    field(t('mm.next_date'), nextDate, { pointer: '/next_meeting/starts_at' }), field(t('mm.next_time'), nextTime, {}));
  const noneBox = h('div', { class: 'indent' }, field(t('mm.no_further_reason'), reason, { pointer: '/no_further_meeting/reason' }));
  const syncDecision = () => { nextBox.hidden = !decNext.checked; noneBox.hidden = !decNone.checked; };
  for (const r of [decNext, decNone]) r.addEventListener('change', () => { draft.decision = r.value; syncDecision(); persist(); });
  nextDate.addEventListener('input', () => { draft.next_date = nextDate.value; persist(); });
  nextTime.addEventListener('input', () => { draft.next_time = nextTime.value; persist(); });
  reason.addEventListener('input', () => { draft.no_further_reason = reason.value; persist(); });
  syncDecision();

  const saveBtn = h('button', { type: 'submit', class: 'btn btn-primary btn-large' }, t('mm.save'));
  const form = h('form', { class: 'meeting-form', novalidate: true },
    h('section', { class: 'panel', 'aria-labelledby': 'mm-att' }, h('h2', { id: 'mm-att' }, h('span', { class: 'step' }, '1'), t('mm.attendance')),
      h('table', { class: 'table table-compact' }, h('thead', null, h('tr', null, ['mm.came', 'participants.name', 'participants.role', 'mm.how'].map((k) => h('th', { scope: 'col' }, t(k))))), h('tbody', null, attRows))),
    h('section', { class: 'panel', 'aria-labelledby': 'mm-obs' }, h('h2', { id: 'mm-obs' }, h('span', { class: 'step' }, '2'), t('mm.observations')), h('div', { class: 'grid-2' }, obs)),
    h('section', { class: 'panel', 'aria-labelledby': 'mm-sum' }, h('h2', { id: 'mm-sum' }, h('span', { class: 'step' }, '3'), t('mm.assessment_title')),
      field(t('mm.summary'), summary, { pointer: '/summary', required: true }),
      field(t('mm.shared_assessment'), assess, { pointer: '/shared_assessment' })),
    h('section', { class: 'panel', 'aria-labelledby': 'mm-fu' }, h('h2', { id: 'mm-fu' }, h('span', { class: 'step' }, '4'), t('mm.followup')), follow),
    h('section', { class: 'panel', 'aria-labelledby': 'mm-new' }, h('h2', { id: 'mm-new' }, h('span', { class: 'step' }, '5'), t('mm.new_actions')),
      h('p', { class: 'hint' }, t('mm.new_actions_hint')),
      h('div', { class: 'quick-add' },
        field(t('mm.action_title'), title, { class: 'grow' }), field(t('mm.action_area'), area, {}),
        field(t('mm.action_responsible'), resp, {}), field(t('mm.action_due'), due, {}),
        h('div', { class: 'toolbar-actions' }, addBtn)),
      addErr, newList),
    h('section', { class: 'panel', 'aria-labelledby': 'mm-dec' }, h('h2', { id: 'mm-dec' }, h('span', { class: 'step' }, '6'), t('mm.decision')),
      field(t('mm.citizen_accepted'), accepted, { pointer: '/citizen_accepted', inline: true }),
      h('fieldset', { class: 'radios' }, h('legend', null, t('mm.next_step')),
        field(t('mm.next_meeting'), decNext, { inline: true }), nextBox,
        field(t('mm.no_further'), decNone, { inline: true, pointer: '/no_further_meeting' }), noneBox)),
    h('div', { class: 'save-bar' }, status, saveBtn));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    saveBtn.disabled = true;
    const body = {
      attendance: people.map((p) => ({ participant_id: p.id, attended: !!draft.attendance[p.id].attended, ...(draft.attendance[p.id].attended ? { mode: draft.attendance[p.id].mode } : {}) })),
      observations: people.filter((p) => (draft.observations[p.id] || '').trim()).map((p) => ({ participant_id: p.id, text: draft.observations[p.id].trim() })),
      summary: draft.summary.trim(),
      citizen_accepted: !!draft.citizen_accepted,
      actions: draft.actions.map((a) => ({ ...a })),
    };
    if (draft.shared_assessment.trim()) body.shared_assessment = draft.shared_assessment.trim();
    if (draft.decision === 'next') body.next_meeting = { starts_at: draft.next_date && draft.next_time ? cphToIso(draft.next_date, draft.next_time) : '' };
    else body.no_further_meeting = { reason: draft.no_further_reason.trim() };
    // observations are indexed by their place in the body; point the
    // errors at the right text areas.
    people.forEach((p, i) => { const ta = obs[i].querySelector('textarea'); ta.dataset.pointer = `/observations/${body.observations.findIndex((o) => o.participant_id === p.id)}/text`; });
    try {
      const res = await api('POST', `/v1/meetings/${meetingId}/outcome`, { body });
      const failed = [];
      for (const [aid, v] of Object.entries(draft.followups)) {
        if (v === 'unchanged') continue;
        const a = openActions.find((x) => x.id === aid);
        if (!a || a.status === v) continue;
        try {
          await api('PATCH', `/v1/actions/${aid}`, { body: { status: v }, ifMatch: a.version });
        } catch (e) { failed.push(a.title); }
      }
      saved = true;
      clearTimeout(saveTimer);
      deleteDraft(state.user.id, meetingId);
      const warnings = res.body.warnings || [];
      if (warnings.length || failed.length) {
        main.replaceChildren(h('h1', null, t('mm.saved')), h('div', null, warningsBox(warnings, pname)),
          h('div', null, failed.length ? h('div', { class: 'alert alert-error' }, h('p', null, t('mm.followup_failed')), h('ul', null, failed.map((f) => h('li', null, f)))) : null),
          h('div', { class: 'row-actions' }, h('a', { class: 'btn btn-primary', href: `/moeder/${meetingId}/referat` }, t('meetings.minutes')),
            h('a', { class: 'btn btn-secondary', href: `/forloeb/${plan.id}` }, t('mplan.to_plan'))));
        return;
      }
      state.navigate(`/moeder/${meetingId}/referat`);
    } catch (e) {
      console.info('outcome refused', e.status, e.problem);
      showErrors(form, e);
      const s = form.querySelector('.form-summary');
      if (e.status === 0) s.append(h('p', null, t('mm.offline')));
      else s.append(h('p', null, t('mm.draft_kept')));
      void problemHeadline;
    } finally {
      saveBtn.disabled = false;
    }
  });

  main.append(h('div', { class: 'page-head' }, h('div', null,
    h('p', { class: 'crumbs' }, h('a', { href: '/forloeb' }, t('nav.plans')), ' / ', h('a', { href: `/forloeb/${plan.id}` }, plan.citizen.name)),
    h('h1', null, t('mm.title')),
    h('p', { class: 'lead' }, fmtDateTime(meeting.starts_at, lang), '–', fmtTime(meeting.ends_at, lang), ' · ', label('place', meeting.location.kind),
      meeting.location.room ? `, ${meeting.location.room}` : '')),
  h('a', { class: 'btn btn-secondary', href: `/v1/meetings/${meetingId}/agenda`, target: '_blank', rel: 'noopener' }, t('meetings.agenda'))),
  ...(restored ? [h('div', { class: 'alert alert-info', role: 'status' }, h('p', null, t('mm.draft_restored')))] : []),
  form);
  return () => { clearTimeout(saveTimer); if (!saved && state.user) saveDraft(state.user.id, meetingId, draft); };
}
