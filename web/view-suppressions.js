// Monitoring › Suppressions: the addresses the account no longer sends to (hard bounces,
// complaints, manual entries), searched and filtered by the API, paged with "Load more";
// Admins and the Technical Team add and remove entries (the server checks it too).
import { api } from './http.js';
import { h, replace, uid, time, badge, messageSlot, table } from './dom.js';
import { confirmDialog } from './dialogs.js';
import { parseAddresses } from './view-mail-settings.js';

export const SUPPRESSION_REASONS = {
  hard_bounce: ['Hard bounce', 'bad'],
  complaint: ['Complaint', 'warn'],
  manual: ['Manual', 'neutral'],
};
const PAGE = 50;
const ADD_MAX = 1000;

function reasonBadge(reason) {
  const [label, tone] = SUPPRESSION_REASONS[reason] || [reason, 'neutral'];
  return badge(label, tone);
}

/** A link to the message's timeline in Monitoring › Messages. */
export function messageLink(id) {
  if (!id) return h('span', { class: 'muted', text: '—' });
  return h('a', { href: `#/messages?id=${encodeURIComponent(id)}`, class: 'mono message-link', title: id, 'aria-label': `Message ${id}` },
    `${id.slice(0, 12)}…`);
}

/** The query of one page of the list: the filters, and before the last entry shown. */
function listPath(email, reason, before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (email) q.set('email', email);
  if (reason) q.set('reason', reason);
  if (before) q.set('before', String(before));
  return `/api/suppressions?${q}`;
}

export async function renderSuppressions(body, session) {
  const canManage = session.can('suppression.manage');
  let entries = [];
  let more = false;
  let shown = { email: '', reason: '' };
  const listMsg = messageSlot();
  const tableSlot = h('div', { class: 'table-slot' });
  const count = h('p', { class: 'counts', role: 'status', 'aria-live': 'polite' });
  const loadMore = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  const listTitle = h('h2', { id: 'suppress-list-title', tabindex: '-1', text: 'Suppressed addresses' });

  // --- Filters ----------------------------------------------------------------------
  const search = h('input', { id: uid('search'), type: 'search', name: 'email', autocomplete: 'off', spellcheck: 'false', placeholder: 'bob@example.org' });
  const reasonSelect = h('select', { id: uid('reason') },
    h('option', { value: '', text: 'All reasons' }),
    Object.entries(SUPPRESSION_REASONS).map(([v, [l]]) => h('option', { value: v, text: l })));
  const searchButton = h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Search');
  const filters = h('form', { class: 'filters', role: 'search', novalidate: true },
    h('div', { class: 'field field-grow' }, h('label', { for: search.id, text: 'Email address' }), search),
    h('div', { class: 'field' }, h('label', { for: reasonSelect.id, text: 'Reason' }), reasonSelect),
    h('div', { class: 'form-actions' }, searchButton));

  /** The first page for the filters as they are now (append: the page after the last shown). */
  async function load(append = false) {
    const filter = append ? shown : { email: search.value.trim(), reason: reasonSelect.value };
    const before = append && entries.length ? entries[entries.length - 1].id : null;
    const page = (await api('GET', listPath(filter.email, filter.reason, before))).suppressions;
    shown = filter;
    entries = append ? entries.concat(page) : page;
    more = page.length === PAGE;
    renderTable();
  }

  async function reload() {
    listMsg.clear();
    searchButton.disabled = true;
    try {
      await load();
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
    } finally {
      searchButton.disabled = false;
    }
  }

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    reload();
  });
  reasonSelect.addEventListener('change', () => reload());
  // Clearing the search box (its × or Escape) shows every address again.
  search.addEventListener('search', () => {
    if (!search.value) reload();
  });

  loadMore.addEventListener('click', async () => {
    listMsg.clear();
    loadMore.disabled = true;
    const first = entries.length;
    try {
      await load(true);
      // Focus goes to the first new row's address, not back to the top of the page.
      tableSlot.querySelectorAll('tbody tr')[first]?.querySelector('.address')?.focus();
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
    } finally {
      loadMore.disabled = false;
    }
  });

  function filtered() {
    return Boolean(shown.email || shown.reason);
  }

  function renderTable() {
    const columns = [{ label: 'Email' }, { label: 'Reason' }, { label: 'Since' }, { label: 'Message' }, { label: 'Detail' }];
    if (canManage) columns.push({ label: 'Actions', className: 'col-actions' });
    replace(tableSlot, table({
      caption: 'Suppressed addresses',
      className: 'suppressions',
      columns,
      rows: entries.map((s) => [
        // No <wbr>: Chromium breaks there even in nowrap, and the address is the row's key.
        h('span', { class: 'address', tabindex: '-1', text: s.email }),
        reasonBadge(s.reason),
        time(s.created_at),
        messageLink(s.message_id),
        s.detail ? h('span', { class: 'detail mono', text: s.detail }) : h('span', { class: 'muted', text: '—' }),
        canManage ? h('div', { class: 'row-actions' }, removeButton(s)) : null,
      ].filter((cell) => cell !== null)),
      empty: filtered() ? 'No suppressed address matches the filter.' : 'No suppressed address. Postern sends to every recipient.',
    }));
    loadMore.hidden = !more;
    const n = entries.length;
    count.textContent = `Showing ${n} ${n === 1 ? 'address' : 'addresses'}${more ? '; there are more' : ''}, newest first.`;
  }

  function removeButton(s) {
    const btn = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', 'aria-label': `Remove ${s.email}` }, 'Remove');
    btn.addEventListener('click', async () => {
      listMsg.clear();
      const yes = await confirmDialog({
        title: `Remove ${s.email} from the suppression list?`,
        message: h('p', { text: 'Postern will deliver to this address again, starting with the next message sent to it.' }),
        confirmLabel: 'Remove',
        danger: true,
      });
      if (!yes) return;
      btn.disabled = true;
      let text = `${s.email} was removed: the next message to it is delivered.`;
      let tone = 'success';
      try {
        await api('DELETE', `/api/suppressions/${encodeURIComponent(s.email)}`);
      } catch (err) {
        if (err.sessionEnded) return;
        text = err.status === 404 ? `${s.email} was no longer on the list.` : `Could not remove ${s.email}: ${err.message}`;
        tone = err.status === 404 ? 'info' : 'error';
        btn.disabled = false;
      }
      await load().catch(() => {});
      listMsg.show(text, tone);
      // The row and its button are gone: focus goes to the top of the list.
      listTitle.focus();
    });
    return btn;
  }

  // --- Adding addresses (suppression.manage) -----------------------------------------
  function addForm() {
    const textarea = h('textarea', {
      id: uid('emails'), name: 'emails', rows: '3', spellcheck: 'false', autocomplete: 'off',
      placeholder: 'bob@example.org, carol@example.net',
    });
    const hint = h('p', { class: 'hint', id: uid('hint'), text: `One or more addresses, separated by commas, spaces or new lines (at most ${ADD_MAX}). Postern stops sending to them until they are removed.` });
    const error = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    textarea.setAttribute('aria-describedby', hint.id);
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add');
    const result = messageSlot();
    const form = h('form', { class: 'add-senders', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: textarea.id, text: 'Addresses to suppress' }), hint, textarea, error),
      h('div', { class: 'form-actions' }, save),
      result.el);

    function setError(text) {
      error.textContent = text || '';
      error.hidden = !text;
      if (text) {
        textarea.setAttribute('aria-invalid', 'true');
        textarea.setAttribute('aria-describedby', `${hint.id} ${error.id}`);
        textarea.focus();
      } else {
        textarea.removeAttribute('aria-invalid');
        textarea.setAttribute('aria-describedby', hint.id);
      }
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      setError('');
      result.clear();
      const emails = parseAddresses(textarea.value);
      if (!emails.length) return setError('Enter at least one email address.');
      if (emails.length > ADD_MAX) return setError(`That is ${emails.length} addresses; add at most ${ADD_MAX} at a time.`);
      save.disabled = true;
      save.textContent = 'Adding…';
      try {
        const r = await api('POST', '/api/suppressions', { emails });
        const listed = emails.length - r.added;
        result.show(`${r.added} added.${listed > 0 ? ` ${listed} ${listed === 1 ? 'was' : 'were'} already listed.` : ''}`, 'success');
        textarea.value = '';
        await load().catch(() => {});
      } catch (err) {
        if (err.sessionEnded) return;
        // "emails[3]": the API names the address it would not take.
        const at = /^emails\[(\d+)\]$/.exec(err.field || '');
        const bad = at ? emails[Number(at[1])] : null;
        setError(bad !== undefined && bad !== null && !err.message.includes(bad) ? `${bad}: ${err.message}` : err.message);
      } finally {
        save.disabled = false;
        save.textContent = 'Add';
      }
    });

    return h('section', { class: 'card', 'aria-labelledby': 'suppress-add-title' },
      h('h2', { id: 'suppress-add-title', text: 'Add addresses' }),
      form);
  }

  await load();
  replace(body,
    h('p', { class: 'page-intro' },
      'Postern does not send to these addresses: hard bounces and spam complaints are added as they come back, and people add others. A message to a suppressed address is still accepted; the address is left out at delivery and its timeline says so. ',
      h('a', { href: '#/reports', text: 'Returned reports' }), ' lists what came back and could not be read.'),
    canManage ? addForm() : null,
    h('section', { class: 'card', 'aria-labelledby': 'suppress-list-title' },
      listTitle,
      filters,
      count,
      listMsg.el,
      tableSlot,
      h('div', { class: 'form-actions' }, loadMore)));
}
