// The KIP web UI: session, navigation and the screens' router.
import { h, clear } from './dom.js';
import { t, loadLanguage, setLanguage, currentLang } from './i18n.js';
import { api, setCsrf, setUnauthenticatedHandler } from './api.js';
import { wipeDrafts } from './drafts.js';
import { state } from './state.js';
import * as login from './views/login.js';
import * as plans from './views/plans.js';
import * as plan from './views/plan.js';
import * as newPlan from './views/new_plan.js';
import * as participants from './views/participants.js';
import * as meetingPlan from './views/meeting_plan.js';
import * as meetingMode from './views/meeting_mode.js';
import * as tasks from './views/tasks.js';
import * as meetings from './views/meetings.js';
import * as minutes from './views/minutes.js';
import * as stats from './views/stats.js';

const UUID = '([0-9a-f-]{36})';
const routes = [
  [/^\/log-ind$/, login, { public: true }],
  [/^\/$/, plans],
  [/^\/forloeb$/, plans],
  [/^\/forloeb\/nyt$/, newPlan],
  [new RegExp(`^/forloeb/${UUID}$`), plan],
  [new RegExp(`^/forloeb/${UUID}/deltagere$`), participants],
  [new RegExp(`^/forloeb/${UUID}/nyt-moede$`), meetingPlan],
  [new RegExp(`^/moeder/${UUID}/moedetilstand$`), meetingMode],
  [new RegExp(`^/moeder/${UUID}/referat$`), minutes],
  [/^\/opgaver$/, tasks],
  [/^\/moeder$/, meetings],
  [/^\/statistik$/, stats],
];

let cleanup = null;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}
state.navigate = navigate;

function topbar() {
  const top = document.getElementById('top');
  clear(top);
  if (!state.user) { top.hidden = true; return; }
  top.hidden = false;
  const here = location.pathname;
  const link = (href, key) => h('a', {
    href, class: 'nav-link', 'aria-current': (here === href || (href === '/forloeb' && (here === '/' || here.startsWith('/forloeb')))) ? 'page' : null,
  }, t(key));
  const langBtn = h('button', {
    type: 'button', class: 'btn btn-ghost btn-small', lang: currentLang() === 'da' ? 'en' : 'da',
    onclick: async () => { setLanguage(currentLang() === 'da' ? 'en' : 'da'); await loadLanguage(); render(); },
  }, t('nav.other_language'));
  const out = h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: signOut }, t('nav.sign_out'));
  top.append(
    h('div', { class: 'brand' }, h('img', { src: new URL('../img/icon.svg', import.meta.url), alt: '', width: 28, height: 28 }),
      h('span', null, t('app.name'))),
    h('nav', { 'aria-label': t('nav.label') }, h('ul', null,
      h('li', null, link('/forloeb', 'nav.plans')),
      h('li', null, link('/opgaver', 'nav.tasks')),
      h('li', null, link('/moeder', 'nav.meetings')),
      // Only the roles GET /v1/stats answers see the entry.
      stats.maySeeStats() ? h('li', null, link('/statistik', 'nav.stats')) : null)),
    h('div', { class: 'who' },
      h('span', { class: 'who-name' }, state.user.display_name),
      langBtn, out));
}

async function signOut() {
  try { await api('DELETE', '/v1/session', { quiet401: true }); } catch (e) { /* already gone */ }
  if (state.user) wipeDrafts(state.user.id);
  state.user = null;
  setCsrf(null);
  localStorage.removeItem('kip.signed_in');
  navigate('/log-ind', { replace: true });
}
state.signOut = signOut;

export async function render() {
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  let match = null;
  for (const [re, view, opts] of routes) {
    const m = path.match(re);
    if (m) { match = { view, opts: opts || {}, params: m.slice(1) }; break; }
  }
  if (!match) match = { view: plans, opts: {}, params: [] };
  if (!match.opts.public && !state.user) {
    state.afterLogin = location.pathname === '/log-ind' ? '/forloeb' : location.pathname;
    history.replaceState(null, '', '/log-ind');
    match = { view: login, opts: { public: true }, params: [] };
  }
  topbar();
  const main = document.getElementById('main');
  clear(main);
  document.body.dataset.screen = match.view.name || '';
  try {
    const r = await match.view.render(main, ...match.params);
    if (typeof r === 'function') cleanup = r;
  } catch (e) {
    console.warn('screen failed', e);
    clear(main);
    main.append(h('div', { class: 'alert alert-error', role: 'alert' },
      h('p', { class: 'alert-title' }, e.status === 404 ? t('error.status_404') : t('error.screen_failed'))));
  }
  if (!document.title.startsWith(t('app.name'))) document.title = t('app.name');
}

export function setTitle(text) {
  document.title = `${text} – ${t('app.name')}`;
}
state.setTitle = setTitle;

async function start() {
  await loadLanguage();
  setUnauthenticatedHandler(() => {
    if (state.user) {
      state.user = null;
      setCsrf(null);
      state.afterLogin = location.pathname;
      navigate('/log-ind', { replace: true });
    }
  });
  // The session cookie is HttpOnly; a flag in this browser says whether
  // asking GET /v1/session for the user and CSRF token is worth a request.
  if (localStorage.getItem('kip.signed_in') === '1') {
    try {
      const r = await api('GET', '/v1/session', { quiet401: true });
      state.user = r.body.user;
      setCsrf(r.body.csrf_token);
    } catch (e) {
      state.user = null;
      localStorage.removeItem('kip.signed_in');
    }
  }
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download') || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    const url = new URL(a.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
    ev.preventDefault();
    navigate(url.pathname);
  });
  window.addEventListener('popstate', render);
  render();
}

start();
