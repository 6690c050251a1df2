// Mine møder: my meetings in every plan, and my personal calendar feed URL
// for Outlook (POST /v1/me/calendar-feed; a new URL revokes the old one).
import { h, clear, fmtDateTime, fmtTime, maskCpr, todayCph } from '../dom.js';
import { t, currentLang } from '../i18n.js';
import { api, get } from '../api.js';
import { label, statusBadge } from '../labels.js';
import { problemHeadline } from '../forms.js';
import { state } from '../state.js';

export const name = 'meetings';

export async function render(main) {
  const lang = currentLang();
  state.setTitle(t('mymeetings.title'));
  const page = await get(`/v1/me/meetings?from=${todayCph(-30)}&to=${todayCph(180)}`);
  const items = [...page.items].sort((a, b) => a.starts_at.localeCompare(b.starts_at));
  const feedOut = h('div', { 'aria-live': 'polite' });
  const feedBtn = h('button', { type: 'button', class: 'btn btn-secondary' }, t('mymeetings.feed_create'));
  feedBtn.addEventListener('click', async () => {
    feedBtn.disabled = true;
    try {
      const f = (await api('POST', '/v1/me/calendar-feed')).body;
      const url = new URL(f.url, location.origin).href;
      const input = h('input', { type: 'text', readonly: true, value: url, id: 'feed-url', class: 'mono' });
      const copy = h('button', { type: 'button', class: 'btn btn-primary btn-small' }, t('mymeetings.copy'));
      copy.addEventListener('click', async () => {
        input.select();
        try { await navigator.clipboard.writeText(url); copy.textContent = t('mymeetings.copied'); } catch (e) { copy.textContent = t('mymeetings.copy_manual'); }
      });
      clear(feedOut).append(h('div', { class: 'feed' }, h('label', { for: 'feed-url' }, t('mymeetings.feed_url')),
        h('div', { class: 'feed-row' }, input, copy), h('p', { class: 'hint' }, t('mymeetings.feed_help'))));
      input.focus();
      input.select();
    } catch (e) {
      clear(feedOut).append(h('div', { class: 'alert alert-error', role: 'alert' }, h('p', null, problemHeadline(e))));
    } finally {
      feedBtn.disabled = false;
    }
  });
  main.append(h('div', { class: 'page-head' }, h('h1', null, t('mymeetings.title'))),
    h('section', { class: 'panel', 'aria-labelledby': 'feed-h' }, h('h2', { id: 'feed-h' }, t('mymeetings.feed_title')),
      h('p', { class: 'hint' }, t('mymeetings.feed_lead')), feedBtn, feedOut),
    items.length ? h('table', { class: 'table' }, h('caption', { class: 'visually-hidden' }, t('mymeetings.title')),
      h('thead', null, h('tr', null, ['mymeetings.when', 'plans.col_citizen', 'mymeetings.place', 'plans.col_status', 'mymeetings.open'].map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', null, items.map((m) => h('tr', null,
        h('td', null, fmtDateTime(m.starts_at, lang), '–', fmtTime(m.ends_at, lang)),
        h('th', { scope: 'row' }, h('a', { href: `/forloeb/${m.plan_id}` }, m.citizen.name), h('span', { class: 'muted small' }, ` ${maskCpr(m.citizen.cpr)}`)),
        h('td', null, label('place', m.location.kind), m.location.room ? `, ${m.location.room}` : ''),
        h('td', null, statusBadge('meeting_status', m.status), m.overdue_outcome ? h('span', { class: 'badge badge-warn' }, t('meetings.outcome_missing')) : null),
        h('td', null, m.status === 'planned' ? h('a', { href: `/moeder/${m.id}/moedetilstand` }, t('meetings.start'))
          : m.status === 'held' ? h('a', { href: `/moeder/${m.id}/referat` }, t('meetings.minutes')) : '')))))
      : h('p', { class: 'empty' }, t('mymeetings.none')));
}
