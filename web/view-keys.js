// Settings › API Keys (Admin and Technical Team): keys for the send API. A new key is
// shown once, right after it is made.
import { api } from './http.js';
import { h, replace, time, messageSlot, field, table, copyButton } from './dom.js';
import { confirmDialog } from './dialogs.js';

export async function renderKeys(body) {
  let keys = (await api('GET', '/api/keys')).keys;

  const name = field({ label: 'Name', name: 'key-name', autocomplete: 'off', placeholder: 'e.g. production web app' });
  const create = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create key');
  const createMsg = messageSlot();
  const reveal = h('div', { class: 'reveal-slot' });
  const form = h('form', { class: 'inline-form', novalidate: true }, name.wrap, h('div', { class: 'form-actions' }, create));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    name.setError('');
    createMsg.clear();
    const value = name.input.value.trim();
    if (!value) {
      name.setError('Give the key a name.');
      name.input.focus();
      return;
    }
    create.disabled = true;
    try {
      const k = await api('POST', '/api/keys', { name: value });
      name.input.value = '';
      showKey(k);
      keys = (await api('GET', '/api/keys')).keys;
      renderTable();
    } catch (err) {
      if (err.sessionEnded) return;
      if (err.field === 'name' || err.status === 400) name.setError(err.message);
      else createMsg.show(err.message, 'error');
      name.input.focus();
    } finally {
      create.disabled = false;
    }
  });

  function showKey(k) {
    const code = h('code', { class: 'secret', text: k.key });
    const done = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Done');
    const heading = h('h3', { tabindex: '-1', text: `Your new API key “${k.name}”` });
    done.addEventListener('click', () => {
      reveal.replaceChildren();
      name.input.focus();
    });
    replace(reveal, h('div', { class: 'notice notice-key', role: 'region', 'aria-label': 'New API key' },
      heading,
      h('p', { class: 'notice-title', text: 'Copy this key now: you will not see it again.' }),
      h('p', { text: 'Postern keeps only a hash of it. Send it as “Authorization: Bearer KEY” or in the api_key header. If it is lost, create another key and revoke this one.' }),
      h('div', { class: 'secret-row' }, code, copyButton(() => k.key, `Copy API key ${k.name}`, code)),
      h('div', { class: 'form-actions' }, done)));
    heading.focus();
  }

  const tableSlot = h('div');
  const listMsg = messageSlot();
  function renderTable() {
    const rows = keys.map((k) => {
      const revoke = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', 'aria-label': `Revoke ${k.name}` }, 'Revoke');
      revoke.addEventListener('click', async () => {
        listMsg.clear();
        const yes = await confirmDialog({
          title: `Revoke “${k.name}”?`,
          message: h('p', { text: `Requests with the key starting ${k.prefix} are refused from the next one on. This cannot be undone.` }),
          confirmLabel: 'Revoke',
          danger: true,
        });
        if (!yes) return;
        try {
          await api('DELETE', `/api/keys/${k.id}`);
          keys = (await api('GET', '/api/keys')).keys;
          renderTable();
          listMsg.show(`“${k.name}” was revoked.`, 'success');
        } catch (err) {
          if (!err.sessionEnded) listMsg.show(err.message, 'error');
        }
      });
      return [
        h('span', { class: 'key-name', text: k.name }),
        h('code', { class: 'mono', text: `${k.prefix}…` }),
        time(k.created_at),
        time(k.last_used_at, 'Never'),
        h('div', { class: 'row-actions' }, revoke),
      ];
    });
    replace(tableSlot, table({
      caption: 'API keys',
      columns: [{ label: 'Name' }, { label: 'Key' }, { label: 'Created' }, { label: 'Last used' }, { label: 'Actions', className: 'col-actions' }],
      rows,
      empty: 'No API keys yet. Create one for each application that sends mail.',
    }));
  }
  renderTable();

  replace(body,
    h('p', { class: 'page-intro', text: 'Keys for the send API (/v5/mail/send, /v6/mail/send, /v3/mail/send). A key alone does not let anyone send as any address: the sender rules still apply.' }),
    h('section', { class: 'card', 'aria-labelledby': 'new-key-title' },
      h('h2', { id: 'new-key-title', text: 'Create a key' }),
      h('p', { class: 'card-sub', text: 'Name each key after the application that uses it, so it can be revoked on its own.' }),
      form, createMsg.el, reveal),
    h('section', { class: 'card', 'aria-labelledby': 'keys-title' },
      h('h2', { id: 'keys-title', text: 'Keys' }),
      listMsg.el, tableSlot));
}
