// Small DOM helpers: elements are built with h(), never from HTML strings,
// so nothing the API returns can become markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let uid = 0;
export function newId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled field: label, control, hint and an error slot tied together
// with aria-describedby. opts.pointer / opts.field name the API's error
// pointer and field path, so errors land next to the right control.
export function field(labelText, control, opts = {}) {
  const id = control.id || newId('c');
  control.id = id;
  const errId = `${id}-err`;
  const hintId = opts.hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  if (opts.pointer) control.dataset.pointer = opts.pointer;
  if (opts.field) control.dataset.field = opts.field;
  if (opts.required) control.required = true;
  const wrap = h('div', { class: `field${opts.inline ? ' field-inline' : ''}${opts.class ? ' ' + opts.class : ''}` });
  const label = h('label', { for: id }, labelText);
  if (control.type === 'checkbox' || control.type === 'radio') {
    wrap.classList.add('field-check');
    wrap.append(control, label);
  } else if (opts.required) {
    // The star stays outside the label, so the control's name is the label.
    wrap.append(h('div', { class: 'label-row' }, label, h('span', { class: 'req', 'aria-hidden': 'true' }, '*')), control);
  } else {
    wrap.append(label, control);
  }
  if (hintId) wrap.append(h('p', { class: 'hint', id: hintId }, opts.hint));
  wrap.append(h('p', { class: 'error-text', id: errId, hidden: true }));
  return wrap;
}

export function fmtDate(iso, lang) {
  if (!iso) return '';
  const d = iso.length === 10 ? new Date(`${iso}T12:00:00`) : new Date(iso);
  return d.toLocaleDateString(lang === 'en' ? 'en-GB' : 'da-DK',
    { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'Europe/Copenhagen' });
}

export function fmtDateTime(iso, lang) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(lang === 'en' ? 'en-GB' : 'da-DK', {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZone: 'Europe/Copenhagen',
  });
}

export function fmtTime(iso, lang) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString(lang === 'en' ? 'en-GB' : 'da-DK',
    { hour: '2-digit', minute: '2-digit', timeZone: 'Europe/Copenhagen' });
}

// Today's date in Copenhagen as YYYY-MM-DD.
export function todayCph(offsetDays = 0) {
  const d = new Date(Date.now() + offsetDays * 86400000);
  return new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Copenhagen' }).format(d);
}

// A local (Copenhagen) date and time from <input type=date/time> as an
// RFC 3339 instant with the right offset, DST included.
export function cphToIso(date, time) {
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  const offsetAt = (ms) => {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: 'Europe/Copenhagen', hourCycle: 'h23', year: 'numeric', month: '2-digit',
      day: '2-digit', hour: '2-digit', minute: '2-digit',
    }).formatToParts(new Date(ms));
    const g = (t) => Number(parts.find((p) => p.type === t).value);
    return Date.UTC(g('year'), g('month') - 1, g('day'), g('hour'), g('minute')) - ms;
  };
  let ms = guess - offsetAt(guess);
  ms = guess - offsetAt(ms);
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

export function isoToCph(iso) {
  const d = new Date(iso);
  const date = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Copenhagen' }).format(d);
  const time = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Copenhagen', hour: '2-digit', minute: '2-digit' }).format(d);
  return { date, time };
}

export function maskCpr(cpr) {
  if (!cpr) return '';
  return `${cpr.slice(0, 6)}-xxxx`;
}
