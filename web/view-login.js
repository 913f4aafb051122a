// The login screen. Wrong credentials and lockouts are shown inline, with the API's words.
import { api } from './http.js';
import { h, replace, field, messageSlot, markInvalid, clearInvalid } from './dom.js';

export function renderLogin(root, { notice, onLoggedIn }) {
  const email = field({ label: 'Email', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const msg = messageSlot('login-msg');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const noticeEl = notice
    ? h('div', { class: `notice notice-${notice.tone || 'info'}`, role: notice.tone === 'error' ? 'alert' : 'status', text: notice.text })
    : null;

  const form = h('form', { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' },
    email.wrap, password.wrap, msg.el, submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    email.setError('');
    password.setError('');
    for (const f of [email, password]) clearInvalid(f.input, msg.id);
    if (!email.input.value.trim()) {
      email.setError('Enter the email address you log in with.');
      email.input.focus();
      return;
    }
    if (!password.input.value) {
      password.setError('Enter your password.');
      password.input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      const data = await api('POST', '/api/session', { email: email.input.value.trim(), password: password.input.value }, { allow401: true });
      onLoggedIn(data);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = 'Log in';
      if (err.field === 'email') {
        email.setError(err.message);
        email.input.focus();
        return;
      }
      msg.show(err.message, 'error');
      if (err.code === 'invalid_credentials') {
        for (const f of [email, password]) markInvalid(f.input, msg.id);
      }
      password.input.value = '';
      password.input.focus();
    }
  });

  replace(root,
    h('main', { class: 'login-page' },
      h('div', { class: 'login-card' },
        h('div', { class: 'login-brand' },
          h('img', { src: 'favicon.svg', alt: '', width: '40', height: '40' }),
          h('span', { text: 'Postern' })),
        h('h1', { id: 'login-title', text: 'Log in to Postern' }),
        h('p', { class: 'login-sub', text: 'Manage sending domains, authorized senders, users and API keys.' }),
        noticeEl,
        form)));
  email.input.focus();
}
