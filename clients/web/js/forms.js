// Showing the API's problems and warnings where they belong: each entry of
// errors[] next to the control whose data-pointer (RFC 6901) or data-field
// names it, in the user's language through the catalogue (error.<code>).
// Nothing typed is ever cleared on an error.
import { h, clear } from './dom.js';
import { t, has } from './i18n.js';

export function fieldToPointer(field) {
  if (!field) return null;
  return '/' + field.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean).join('/');
}

export function errorText(e) {
  if (e.code && has(`error.${e.code}`)) return t(`error.${e.code}`);
  return e.message || t('error.unknown');
}

export function warningText(w) {
  if (w.code && has(`warning.${w.code}`)) return t(`warning.${w.code}`);
  return w.message || w.code;
}

export function clearErrors(form) {
  for (const c of form.querySelectorAll('[aria-invalid="true"]')) c.removeAttribute('aria-invalid');
  for (const p of form.querySelectorAll('.error-text')) { p.hidden = true; p.textContent = ''; }
  const s = form.querySelector('.form-summary');
  if (s) { s.hidden = true; clear(s); }
}

function findControl(form, pointer, fieldName) {
  const controls = [...form.querySelectorAll('[data-pointer], [data-field]')];
  let best = null;
  for (const c of controls) {
    const cp = c.dataset.pointer || fieldToPointer(c.dataset.field);
    if (cp === pointer || (fieldName && c.dataset.field === fieldName)) return c;
    if (pointer && pointer.startsWith(cp + '/') && (!best || cp.length > (best.dataset.pointer || '').length)) best = c;
  }
  return best;
}

// Shows err (an ApiError, or anything else) on form. Returns the number of
// messages placed next to a control.
export function showErrors(form, err) {
  clearErrors(form);
  let summary = form.querySelector('.form-summary');
  if (!summary) {
    summary = h('div', { class: 'alert alert-error form-summary', role: 'alert', tabindex: '-1' });
    form.prepend(summary);
  }
  const loose = [];
  const errors = err?.errors?.length ? err.errors : [];
  let placed = 0;
  for (const e of errors) {
    const pointer = e.pointer ?? fieldToPointer(e.field);
    const c = findControl(form, pointer, e.field);
    if (c) {
      c.setAttribute('aria-invalid', 'true');
      const slot = form.querySelector(`#${CSS.escape(c.id)}-err`);
      if (slot) {
        slot.textContent = slot.textContent ? `${slot.textContent} ${errorText(e)}` : errorText(e);
        slot.hidden = false;
        placed += 1;
        continue;
      }
    }
    loose.push(errorText(e));
  }
  const head = problemHeadline(err);
  summary.append(h('p', { class: 'alert-title' }, head));
  if (loose.length) summary.append(h('ul', null, loose.map((m) => h('li', null, m))));
  summary.hidden = false;
  const first = form.querySelector('[aria-invalid="true"]');
  (first || summary).focus();
  return placed;
}

export function problemHeadline(err) {
  const s = err?.status;
  if (s === 0) return t('error.network');
  if (s === 401) return t('error.status_401');
  if (s === 403) return t('error.status_403');
  if (s === 404) return t('error.status_404');
  if (s === 409) return t('error.status_409');
  if (s === 412) return t('error.status_412');
  if (s === 429) return t('error.status_429');
  if (s >= 500) return t('error.status_5xx');
  if (s === 422 || s === 400) return t('error.status_422');
  return t('error.unknown');
}

export function warningsBox(warnings, participantName) {
  if (!warnings || !warnings.length) return null;
  return h('div', { class: 'alert alert-warning', role: 'status' },
    h('p', { class: 'alert-title' }, t('warning.title')),
    h('ul', null, warnings.map((w) => h('li', null, warningText(w),
      w.participant_id && participantName ? ` (${participantName(w.participant_id)})` : ''))));
}

// Wraps an async submit: disables the button, shows errors, keeps the input.
export function onSubmit(form, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const btn = form.querySelector('button[type=submit]');
    if (btn) btn.disabled = true;
    clearErrors(form);
    try {
      await fn(ev);
    } catch (e) {
      console.info('request refused', e.status, e.problem);
      showErrors(form, e);
    } finally {
      if (btn && btn.isConnected) btn.disabled = false;
    }
  });
}
