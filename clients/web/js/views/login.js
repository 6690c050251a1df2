// Log ind: username and password → POST /v1/session (cookie + CSRF token).
import { h, field } from '../dom.js';
import { t, currentLang, setLanguage, loadLanguage } from '../i18n.js';
import { api, setCsrf } from '../api.js';
import { clearErrors } from '../forms.js';
import { wipeDrafts } from '../drafts.js';
import { state } from '../state.js';

export const name = 'login';

export function render(main) {
  state.setTitle(t('login.title'));
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password' });
  const msg = h('div', { class: 'alert alert-error', role: 'alert', hidden: true, tabindex: '-1' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary btn-wide' }, t('login.submit'));
  const form = h('form', { class: 'login-form', novalidate: true },
    msg,
    field(t('login.username'), user, { field: 'username', required: true }),
    field(t('login.password'), pass, { field: 'password', required: true }),
    btn);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    msg.hidden = true;
    if (!user.value.trim() || !pass.value) {
      msg.textContent = t('login.missing');
      msg.hidden = false;
      msg.focus();
      return;
    }
    btn.disabled = true;
    btn.textContent = t('login.checking');
    try {
      const r = await api('POST', '/v1/session', { body: { username: user.value.trim(), password: pass.value }, quiet401: true });
      state.user = r.body.user;
      setCsrf(r.body.csrf_token);
      localStorage.setItem('kip.signed_in', '1');
      wipeDrafts(null, { keepUserId: state.user.id });
      const next = state.afterLogin && state.afterLogin !== '/log-ind' ? state.afterLogin : '/forloeb';
      state.afterLogin = null;
      state.navigate(next, { replace: true });
    } catch (e) {
      pass.value = '';
      msg.textContent = e.status === 401 ? t('login.failed')
        : e.status === 429 ? t('error.status_429')
          : e.status === 0 ? t('error.network') : t('error.status_5xx');
      msg.hidden = false;
      msg.focus();
    } finally {
      btn.disabled = false;
      btn.textContent = t('login.submit');
    }
  });
  const other = currentLang() === 'da' ? 'en' : 'da';
  main.append(h('div', { class: 'login-page' },
    h('section', { class: 'login-card', 'aria-labelledby': 'login-h' },
      h('div', { class: 'login-brand' },
        h('img', { src: new URL('../../img/icon.svg', import.meta.url), alt: '', width: 40, height: 40 }),
        h('div', null, h('p', { class: 'login-app' }, t('app.name')), h('p', { class: 'login-sub' }, t('app.long_name')))),
      h('h1', { id: 'login-h' }, t('login.title')),
      form,
      h('p', { class: 'login-help' }, t('login.help'))),
    h('button', {
      type: 'button', class: 'btn btn-ghost btn-small', lang: other,
      onclick: async () => { setLanguage(other); await loadLanguage(); state.navigate('/log-ind', { replace: true }); },
    }, t('nav.other_language'))));
  user.focus();
}
