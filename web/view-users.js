// Settings › Users (Admins only): who may log in to this account, and with which role.
import { api } from './http.js';
import { h, replace, uid, time, messageSlot, field, table, badge } from './dom.js';
import { ROLES, roleLabel } from './perms.js';
import { confirmDialog } from './dialogs.js';

function roleSelect(selected) {
  return h('select', { name: 'role' },
    ROLES.map((r) => h('option', { value: r.value, selected: r.value === selected, text: r.label })));
}

export async function renderUsers(body, session) {
  let users = (await api('GET', '/api/users')).users;

  // --- Add -------------------------------------------------------------------------
  const email = field({ label: 'Email', type: 'email', name: 'email', autocomplete: 'off' });
  const role = field({ label: 'Role', control: roleSelect('marketing') });
  const password = field({ label: 'Password', type: 'password', name: 'new-password', autocomplete: 'new-password', hint: '8 to 1024 characters. Share it with the person safely.' });
  const add = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add user');
  const addMsg = messageSlot();
  const fields = { email, role, password };
  const addForm = h('form', { class: 'grid-form', novalidate: true },
    email.wrap, role.wrap, password.wrap, h('div', { class: 'form-actions' }, add));

  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    addMsg.clear();
    Object.values(fields).forEach((f) => f.setError(''));
    add.disabled = true;
    try {
      const u = await api('POST', '/api/users', { email: email.input.value.trim(), role: role.input.value, password: password.input.value });
      email.input.value = '';
      password.input.value = '';
      users = (await api('GET', '/api/users')).users;
      renderTable();
      addMsg.show(`${u.email} was added as ${roleLabel(u.role)}.`, 'success');
    } catch (err) {
      if (err.sessionEnded) return;
      const f = fields[err.field];
      if (f) {
        f.setError(err.message);
        f.input.focus();
      } else {
        addMsg.show(err.message, 'error');
      }
    } finally {
      add.disabled = false;
    }
  });

  // --- The list --------------------------------------------------------------------
  const tableSlot = h('div');
  const listMsg = messageSlot();

  function renderTable() {
    const rows = users.map((u) => {
      const me = u.id === session.user.id;
      const select = roleSelect(u.role);
      const selectId = uid('role');
      select.id = selectId;
      const change = h('button', { type: 'button', class: 'btn btn-secondary btn-small', disabled: true, 'aria-label': `Change role of ${u.email}` }, 'Change role');
      const rowMsg = messageSlot('row-msg');
      select.addEventListener('change', () => {
        change.disabled = select.value === u.role;
      });
      change.addEventListener('click', async () => {
        rowMsg.clear();
        change.disabled = true;
        try {
          const updated = await api('PATCH', `/api/users/${u.id}`, { role: select.value });
          u.role = updated.role;
          rowMsg.show(`Now ${roleLabel(u.role)}.`, 'success');
        } catch (err) {
          if (err.sessionEnded) return;
          select.value = u.role;
          rowMsg.show(err.message, 'error');
        }
      });
      const remove = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', 'aria-label': `Remove ${u.email}` }, 'Remove');
      remove.addEventListener('click', async () => {
        listMsg.clear();
        const yes = await confirmDialog({
          title: `Remove ${u.email}?`,
          message: h('p', { text: me ? 'This is you: you will be logged out at once.' : 'Their sessions end at once and they can no longer log in.' }),
          confirmLabel: 'Remove',
          danger: true,
        });
        if (!yes) return;
        try {
          await api('DELETE', `/api/users/${u.id}`);
          users = (await api('GET', '/api/users')).users;
          renderTable();
          listMsg.show(`${u.email} was removed.`, 'success');
        } catch (err) {
          if (!err.sessionEnded) rowMsg.show(err.message, 'error');
        }
      });
      return [
        h('span', null, h('span', { class: 'address', text: u.email }), me ? [' ', badge('You', 'info')] : null),
        h('div', { class: 'role-cell' },
          h('label', { for: selectId, class: 'visually-hidden', text: `Role of ${u.email}` }),
          select, change, rowMsg.el),
        time(u.created_at),
        h('div', { class: 'row-actions' }, remove),
      ];
    });
    replace(tableSlot, table({
      caption: 'Users',
      columns: [{ label: 'Email' }, { label: 'Role' }, { label: 'Added' }, { label: 'Actions', className: 'col-actions' }],
      rows,
      empty: 'No users.',
    }));
  }
  renderTable();

  replace(body,
    h('p', { class: 'page-intro', text: 'People who can log in to this account. Admins verify sender addresses and manage users; the Technical Team manages domains and API keys; Analytics and Marketing add senders (Analytics may also switch Authorized sender email ID).' }),
    h('section', { class: 'card', 'aria-labelledby': 'add-user-title' },
      h('h2', { id: 'add-user-title', text: 'Add a user' }),
      addForm, addMsg.el),
    h('section', { class: 'card', 'aria-labelledby': 'users-title' },
      h('h2', { id: 'users-title', text: 'Current users' }),
      listMsg.el, tableSlot));
}
