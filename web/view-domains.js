// Settings › Approved Sending Domains: add a domain, publish its DNS records, check them,
// switch a domain on or off, rotate its DKIM key, remove it; one held for the operator says so.
// An SPF record the domain already publishes is shown merged with Postern's include, with
// the record(s) it replaces.
import { api } from './http.js';
import { h, replace, uid, badge, time, switchButton, setSwitch, messageSlot, field, copyButton } from './dom.js';
import { confirmDialog } from './dialogs.js';

const DOMAIN_STATUS = {
  verified: ['Verified', 'ok'],
  pending: ['Verification Pending', 'warn'],
  failed: ['Failed', 'bad'],
  awaiting_approval: ['Awaiting Approval', 'warn'],
  rejected: ['Rejected', 'bad'],
};
const RECORD_STATUS = {
  ok: ['OK', 'ok'],
  missing: ['Missing', 'bad'],
  mismatch: ['Mismatch', 'bad'],
  unknown: ['Unknown', 'neutral'],
};
// What each record is for, as shown under its status.
const PURPOSE = {
  ownership: 'Ownership',
  dkim: 'DKIM',
  dkim_next: 'DKIM (next key — publish it; it takes over at the next check)',
  dkim_retired: 'DKIM (retired key — keep a few days)',
  spf: 'SPF',
};
// An advised SPF record that merges the one the domain publishes: it replaces it.
const PURPOSE_MERGED = 'SPF (replaces the SPF record published now)';
// The same, short, for the Copy buttons' accessible names.
const RECORD_NOUN = {
  ownership: 'Ownership',
  dkim: 'DKIM key',
  dkim_next: 'next DKIM key',
  dkim_retired: 'retired DKIM key',
  spf: 'SPF',
};
const STATUS_HELP = {
  pending: 'Publish the required records at your DNS host, then check them. Mail from this domain is refused until it is verified.',
  failed: 'A required record has been missing for longer than the grace period. Mail from this domain is refused until the records are found again.',
  verified: 'Mail from this domain may be sent, and is DKIM-signed. Keep the records published: Postern checks them again every day.',
  awaiting_approval: 'The records check out. An operator of this Postern installation must approve the domain before mail from it is sent; until then it is refused. Ask your Postern operator to approve it.',
  rejected: 'An operator of this Postern installation rejected this domain: mail from it is refused. Ask your Postern operator if you think this is a mistake.',
};
// Under the status help of a domain held for the operator whose records do not check out yet.
const APPROVAL_NEXT = 'Once the records check out, an operator of this Postern installation must also approve the domain before mail from it is sent.';

export async function renderDomains(body, session) {
  const canManage = session.can('domain.manage');
  let domains = (await api('GET', '/api/domains')).domains;

  // --- Add -------------------------------------------------------------------------
  const name = field({ label: 'Domain', name: 'domain', placeholder: 'example.com', autocomplete: 'off', inputmode: 'url' });
  name.input.spellcheck = false;
  const add = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add domain');
  const addMsg = messageSlot();
  const reasonId = uid('reason');
  if (!canManage) {
    name.input.disabled = true;
    add.disabled = true;
    add.setAttribute('aria-describedby', reasonId);
  }
  const addForm = h('form', { class: 'inline-form', novalidate: true },
    name.wrap, h('div', { class: 'form-actions' }, add));
  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    name.setError('');
    addMsg.clear();
    const value = name.input.value.trim();
    if (!value) {
      name.setError('Enter a domain, like example.com.');
      name.input.focus();
      return;
    }
    add.disabled = true;
    try {
      const d = await api('POST', '/api/domains', { domain: value });
      name.input.value = '';
      domains = (await api('GET', '/api/domains')).domains;
      renderList();
      const approval = d.approval === 'required' ? ' An operator must then approve it before mail from it is sent.' : '';
      addMsg.show(`${d.name} was added. Publish its records below, then choose Check DNS records.${approval}`, 'success');
      list.querySelector(`[data-domain-id="${d.id}"] h2`)?.focus();
    } catch (err) {
      if (err.sessionEnded) return;
      name.setError(err.message);
      name.input.focus();
    } finally {
      add.disabled = false;
    }
  });

  // --- The list --------------------------------------------------------------------
  const list = h('div', { class: 'domain-list' });

  async function reload(focusSelector) {
    domains = (await api('GET', '/api/domains')).domains;
    renderList();
    if (focusSelector) list.querySelector(focusSelector)?.focus();
  }

  /** Puts the API's new copy of a domain in the list, re-renders, focuses `focusSelector`
   * in its card and shows `notice` ({text, tone}) in the card's message slot `slot`. */
  function rerender(updated, focusSelector, slot, notice) {
    const i = domains.findIndex((x) => x.id === updated.id);
    if (i >= 0) domains[i] = updated;
    renderList();
    const card = list.querySelector(`[data-domain-id="${updated.id}"]`);
    card?.querySelector(focusSelector)?.focus();
    card?.dispatchEvent(new CustomEvent('notice', { detail: { slot, ...notice } }));
  }

  /** The text with a <wbr> after each dot, so long DNS names wrap between labels. */
  function breakable(text) {
    return text.split(/(?<=\.)/).flatMap((part, i) => (i ? [h('wbr'), part] : [part]));
  }

  /** Under an advised record that replaces what the domain publishes (SPF merged with
   * an existing record): the API's note, and the records it replaces, so the user edits
   * that record instead of adding a second one. */
  function replacedNote(r, valueCode) {
    const id = uid('replaces');
    valueCode.setAttribute('aria-describedby', id);
    return h('div', { class: 'record-note', id },
      h('p', { text: r.note }),
      h('p', { class: 'muted', text: r.replaces.length === 1 ? 'Published now:' : 'Published now (publish only the record above):' }),
      h('ul', { class: 'record-replaced' }, r.replaces.map((v) => h('li', null, h('code', { class: 'dns-value dns-long', text: v })))));
  }

  function recordTable(d) {
    const columns = ['Type', 'Name', 'Value', 'Status'];
    const rows = d.records.map((r) => {
      const nameCode = h('code', { class: 'dns-value dns-name' }, breakable(r.name));
      const valueCode = h('code', { class: 'dns-value dns-long', text: r.value });
      const replaces = r.replaces?.length ? r.replaces : null;
      const purpose = replaces ? PURPOSE_MERGED : PURPOSE[r.purpose] || r.purpose;
      const noun = replaces ? `merged ${RECORD_NOUN[r.purpose]}` : RECORD_NOUN[r.purpose] || r.purpose;
      const [label, tone] = RECORD_STATUS[r.status] || [r.status, 'neutral'];
      return [
        h('span', { class: 'mono', text: r.type }),
        h('div', { class: 'copy-cell' }, nameCode, copyButton(() => r.name, `Copy name of the ${noun} record for ${d.name}`, nameCode)),
        h('div', { class: 'copy-cell' }, valueCode, copyButton(() => r.value, `Copy value of the ${noun} record for ${d.name}`, valueCode),
          replaces ? replacedNote(r, valueCode) : null),
        h('div', { class: 'req' },
          badge(label, tone),
          h('span', { class: r.required ? 'req-required' : 'req-advisory', text: r.required ? 'Required' : 'Advisory' }),
          h('span', { class: 'muted req-purpose', text: purpose })),
      ];
    });
    const head = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', text: c }))));
    const tbody = h('tbody', null, rows.map((cells, i) => h('tr', { 'data-purpose': d.records[i].purpose },
      cells.map((c, j) => h('td', { 'data-label': columns[j] }, c)))));
    return h('div', { class: 'table-wrap table-wrap-stack' },
      h('table', { class: 'data stack records' }, h('caption', { class: 'visually-hidden', text: `DNS records for ${d.name}` }), head, tbody));
  }

  function domainCard(d) {
    const [label, tone] = DOMAIN_STATUS[d.status] || [d.status, 'neutral'];
    const msg = messageSlot();
    const headingId = uid('dom');

    const activeText = h('span', { class: 'switch-label', id: uid('active'), text: d.active ? 'Active' : 'Inactive' });
    const sw = switchButton({
      label: `Active: ${d.name}`,
      checked: d.active,
      disabled: !canManage,
      describedBy: canManage ? null : reasonId,
      onToggle: async (next, btn) => {
        msg.clear();
        btn.disabled = true;
        try {
          const updated = await api('PATCH', `/api/domains/${d.id}`, { active: next });
          Object.assign(d, updated);
          setSwitch(btn, d.active);
          activeText.textContent = d.active ? 'Active' : 'Inactive';
          inactiveBadge.hidden = d.active;
          msg.show(d.active ? `${d.name} is active: mail from it may be sent.` : `${d.name} is inactive: mail from it is refused.`, 'success');
        } catch (err) {
          if (!err.sessionEnded) msg.show(err.message, 'error');
        } finally {
          btn.disabled = false;
        }
      },
    });
    const inactiveBadge = badge('Inactive', 'bad');
    inactiveBadge.hidden = d.active;

    const check = h('button', { type: 'button', class: 'btn btn-secondary btn-small', disabled: !canManage, 'aria-label': `Check DNS records for ${d.name}` }, 'Check DNS records');
    check.addEventListener('click', async () => {
      msg.clear();
      check.disabled = true;
      check.textContent = 'Checking…';
      try {
        const updated = await api('POST', `/api/domains/${d.id}/check`);
        const [lab] = DOMAIN_STATUS[updated.status] || [updated.status];
        rerender(updated, 'button.check', 'main', updated.check_error
          ? { text: `The lookup did not finish: ${updated.check_error}. Nothing was changed.`, tone: 'warn' }
          : { text: `Checked just now: ${lab}.`, tone: updated.status === 'verified' ? 'success' : 'info' });
      } catch (err) {
        if (!err.sessionEnded) {
          msg.show(err.message, 'error');
          check.disabled = false;
          check.textContent = 'Check DNS records';
        }
      }
    });
    check.classList.add('check');

    const remove = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', disabled: !canManage, 'aria-label': `Remove ${d.name}` }, 'Remove');
    remove.addEventListener('click', async () => {
      msg.clear();
      const yes = await confirmDialog({
        title: `Remove ${d.name}?`,
        message: h('p', { text: 'Mail from this domain will be refused. Adding it again gives it new records to publish.' }),
        confirmLabel: 'Remove',
        danger: true,
      });
      if (!yes) return;
      try {
        await api('DELETE', `/api/domains/${d.id}`);
        await reload();
        addMsg.show(`${d.name} was removed.`, 'success');
        list.focus();
      } catch (err) {
        if (!err.sessionEnded) msg.show(err.message, 'error');
      }
    });

    // Rotate DKIM key (managers only): the new key's record is added as dkim_next.
    let rotateRow = null;
    const rotateMsg = messageSlot('rotate-msg');
    if (canManage) {
      const rotate = h('button', { type: 'button', class: 'btn btn-secondary btn-small rotate', 'aria-label': `Rotate DKIM key for ${d.name}`, 'aria-describedby': rotateMsg.id }, 'Rotate DKIM key');
      rotate.addEventListener('click', async () => {
        rotateMsg.clear();
        msg.clear();
        rotate.disabled = true;
        rotate.textContent = 'Rotating…';
        try {
          const updated = await api('POST', `/api/domains/${d.id}/dkim/rotate`);
          rerender(updated, 'button.rotate', 'rotate', {
            text: 'A new DKIM key was made. Publish its record (marked “next key” above) at your DNS host: it takes over at the first check that finds it, and the current key signs until then.',
            tone: 'success',
          });
        } catch (err) {
          if (err.sessionEnded) return;
          rotate.disabled = false;
          rotate.textContent = 'Rotate DKIM key';
          rotateMsg.show(err.message, err.code === 'rotation_pending' ? 'warn' : 'error');
          rotate.focus();
        }
      });
      rotateRow = h('div', { class: 'dkim-rotate' }, rotate, rotateMsg.el);
    }

    const card = h('article', { class: 'card domain', 'data-domain-id': String(d.id), 'aria-labelledby': headingId },
      h('div', { class: 'domain-head' },
        h('div', { class: 'domain-title' },
          h('h2', { id: headingId, tabindex: '-1', text: d.name }),
          badge(label, tone), inactiveBadge),
        h('div', { class: 'domain-controls' },
          h('div', { class: 'switch-inline' }, sw, activeText),
          check, remove)),
      h('p', { class: 'domain-meta' },
        h('span', null, 'Added ', time(d.created_at)),
        h('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
        h('span', null, 'Last checked ', time(d.checked_at, 'never'))),
      h('p', { class: 'domain-help', text: STATUS_HELP[d.status] || '' }),
      d.approval === 'required' && d.status !== 'awaiting_approval' ? h('p', { class: 'domain-help', text: APPROVAL_NEXT }) : null,
      d.check_error ? h('p', { class: 'notice notice-warn', text: `The last lookup did not finish: ${d.check_error}` }) : null,
      msg.el,
      h('h3', { class: 'records-title', text: 'DNS records to publish' }),
      recordTable(d),
      h('p', { class: 'hint', text: 'Status: OK — found as shown; Missing — no such record; Mismatch — a record of that kind with another value; Unknown — not checked yet, or the lookup failed. Long DKIM values may need splitting into several quoted strings at some DNS hosts.' }),
      rotateRow);
    card.addEventListener('notice', (ev) => (ev.detail.slot === 'rotate' ? rotateMsg : msg).show(ev.detail.text, ev.detail.tone));
    return card;
  }

  function renderList() {
    if (!domains.length) {
      replace(list, h('div', { class: 'card empty-card' },
        h('p', { text: 'No sending domains yet. Add the domain your mail is sent from; mail from any other domain is refused.' })));
      return;
    }
    replace(list, domains.map(domainCard));
  }

  renderList();
  list.setAttribute('tabindex', '-1');

  replace(body,
    h('p', { class: 'page-intro', text: 'Mail may only be sent from domains listed here that are verified and active. A parent domain does not cover its subdomains.' }),
    h('section', { class: 'card', 'aria-labelledby': 'add-domain-title' },
      h('h2', { id: 'add-domain-title', text: 'Add a sending domain' }),
      addForm,
      canManage ? null : h('p', { class: 'reason', id: reasonId, text: `Your role (${session.roleLabel}) cannot manage sending domains. Ask an Admin or the Technical Team.` }),
      addMsg.el),
    list);
}
