// The login screen. One email may be a user of several accounts, so the account is named
// too. Wrong credentials and throttled attempts are shown inline, with the API's words.
import { api } from './http.js';
import { h, replace, field, messageSlot, markInvalid, clearInvalid } from './dom.js';

export function renderLogin(root, { notice, onLoggedIn }) {
  const account = field({ label: 'Account', type: 'text', name: 'account', autocomplete: 'organization', required: true });
  const email = field({ label: 'Email', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const msg = messageSlot('login-msg');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const noticeEl = notice
    ? h('div', { class: `notice notice-${notice.tone || 'info'}`, role: notice.tone === 'error' ? 'alert' : 'status', text: notice.text })
    : null;

  const form = h('form', { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' },
    account.wrap, email.wrap, password.wrap, msg.el, submit);
  const fields = { account, email, password };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    for (const f of Object.values(fields)) {
      f.setError('');
      clearInvalid(f.input, msg.id);
    }
    if (!account.input.value.trim()) {
      account.setError('Enter the name of your account.');
      account.input.focus();
      return;
    }
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
      const body = { account: account.input.value.trim(), email: email.input.value.trim(), password: password.input.value };
      const data = await api('POST', '/api/session', body, { allow401: true });
      onLoggedIn(data);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = 'Log in';
      const at = fields[err.field];
      if (at && at !== password) {
        at.setError(err.message);
        at.input.focus();
        return;
      }
      msg.show(err.message, 'error');
      if (err.code === 'invalid_credentials') {
        for (const f of Object.values(fields)) markInvalid(f.input, msg.id);
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
  account.input.focus();
}
