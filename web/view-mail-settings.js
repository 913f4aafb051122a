// Settings › General › Mail Settings: the Authorized sender email ID switch and, while it is
// off, Monitor mode (both confirmed with the user's password), the preflight (the From
// addresses the switch would refuse, with Add these addresses), adding sender addresses,
// and the list of senders.
import { api } from './http.js';
import { h, replace, uid, badge, time, switchButton, setSwitch, messageSlot, table, wrapEmail } from './dom.js';
import { passwordDialog, confirmDialog } from './dialogs.js';

const DOMAIN_STATUS = {
  verified: ['Verified', 'ok'],
  pending: ['Verification Pending', 'warn'],
  failed: ['Failed', 'bad'],
  awaiting_approval: ['Awaiting Approval', 'warn'],
  rejected: ['Rejected', 'bad'],
};

/** Splits what was typed into addresses: commas, semicolons, spaces and new lines. */
export function parseAddresses(text) {
  return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
}

// With owner confirmation (issue 19) a pending sender may wait for an Admin, its owner or
// both; the note says which. Verified by Admins alone, there is nothing more to say.
function waitingNote(sender) {
  const waits = sender.waiting_for || [];
  if (sender.status === 'verified' || (!waits.includes('owner') && !sender.owner_confirmed_at)) return null;
  const who = waits.map((w) => (w === 'admin' ? 'Admin' : 'owner')).join(' and ');
  return h('span', { class: 'hint waiting', text: ` Waiting for ${who}` });
}

function statusBadge(sender) {
  if (sender.status === 'verified') return badge('Verified', 'ok');
  const note = waitingNote(sender);
  return note ? h('span', null, badge('Verification Pending', 'warn'), note) : badge('Verification Pending', 'warn');
}

function domainCell(sender) {
  const d = sender.domain;
  if (!d) return h('span', { class: 'text-bad', text: 'Not an approved sending domain' });
  const [label, tone] = DOMAIN_STATUS[d.status] || [d.status, 'neutral'];
  return h('span', { class: 'domain-cell' },
    h('span', { class: 'domain-name', text: d.name }), ' ',
    badge(label, tone),
    d.active ? null : [' ', badge('Inactive', 'bad')]);
}

function personCell(email, at, fallback) {
  if (!email && !at) return h('span', { class: 'muted', text: fallback });
  return h('span', { class: 'person' },
    h('span', { class: email ? 'person-email' : 'muted' }, email ? wrapEmail(email) : 'A removed user'),
    at ? h('span', { class: 'person-time' }, time(at)) : null);
}

const PREFLIGHT_DAYS = 7;

const LIST_STATUS = {
  verified: ['Verified', 'ok'],
  pending: ['Verification Pending', 'warn'],
  unlisted: ['Not listed', 'bad'],
};

/** Why the switch on would refuse an address, in words. */
const WOULD_REFUSE = {
  sender_not_authorized: 'Not a sender address',
  sender_pending_verification: 'Not verified yet',
  sender_auth_no_senders: 'No sender address is verified',
  domain_not_approved: 'Domain not approved',
  domain_not_verified: 'Domain not verified',
  domain_inactive: 'Domain inactive',
};

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** The sentence the switch's password dialog and the preflight card share. */
function refusedSentence(p) {
  if (!p.sends) return `nothing was sent in the last ${p.days} days, so nothing would have been refused.`;
  return `${p.would_refuse} of the ${plural(p.sends, 'send', 'sends')} of the last ${p.days} days would have been refused.`;
}

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export async function renderMailSettings(body, session) {
  const canToggle = session.can('sender_auth.toggle');
  const canAdd = session.can('sender.add');
  const canVerify = session.can('sender.verify');
  const canRemove = session.can('sender.remove');

  let settings;
  let senders;
  let preflight;
  async function load() {
    const [s, list, p] = await Promise.all([
      api('GET', '/api/settings/sender-auth'),
      api('GET', '/api/senders'),
      api('GET', `/api/senders/preflight?days=${PREFLIGHT_DAYS}`),
    ]);
    settings = s;
    senders = list.senders;
    preflight = p;
  }
  await load();

  // --- The switch ------------------------------------------------------------------
  const stateText = h('p', { class: 'switch-state', id: uid('state') });
  const reasonId = uid('reason');
  const sw = switchButton({
    label: 'Authorized sender email ID',
    checked: settings.enabled,
    disabled: !canToggle,
    describedBy: canToggle ? stateText.id : `${stateText.id} ${reasonId}`,
    onToggle: (next) => toggle(next),
  });
  const reason = canToggle ? null
    : h('p', { class: 'reason', id: reasonId, text: `Your role (${session.roleLabel}) cannot change this setting` });
  // Monitor mode: a switch of its own, shown while the protection is off.
  const monitorText = h('p', { class: 'switch-state', id: uid('mstate') });
  const monitorSw = switchButton({
    label: 'Monitor mode',
    checked: settings.mode === 'monitor',
    disabled: !canToggle,
    describedBy: canToggle ? monitorText.id : `${monitorText.id} ${reasonId}`,
    onToggle: (next) => setMonitor(next),
  });
  const monitorRow = h('div', { class: 'switch-row switch-row-sub' }, monitorSw, h('div', { class: 'switch-text' }, monitorText));
  const alertSlot = h('div', { class: 'alert-slot' });
  const counts = h('p', { class: 'counts' });
  const toggleMsg = messageSlot();

  function renderState() {
    const monitoring = settings.mode === 'monitor';
    setSwitch(sw, settings.enabled);
    replace(stateText,
      h('strong', { text: settings.enabled ? 'On' : 'Off' }), ' — ',
      settings.enabled
        ? 'only verified sender addresses below may send.'
        : 'any address on an approved, verified and active sending domain may send.');
    monitorRow.hidden = settings.enabled;
    setSwitch(monitorSw, monitoring);
    replace(monitorText,
      h('strong', { text: monitoring ? 'Monitor mode is on' : 'Monitor mode is off' }), ' — ',
      monitoring
        ? 'nothing is refused; each send the switch would refuse is delivered, counted in the preflight below and flagged to the sender (X-Postern-Policy header, SMTP reply).'
        : 'turn it on to see, without refusing anything, which sends Authorized sender email ID would refuse.');
    replace(counts,
      h('span', null, h('strong', { text: String(settings.verified) }), ' verified'),
      h('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }),
      h('span', null, h('strong', { text: String(settings.pending) }), ' pending verification'));
    const dropping = settings.enabled && settings.verified === 0;
    const current = alertSlot.firstChild;
    if (dropping && !current) {
      alertSlot.append(h('div', { class: 'notice notice-error notice-strong', role: 'alert' },
        h('p', { class: 'notice-title', text: 'All outgoing email is being dropped.' }),
        h('p', { text: 'Authorized sender email ID is on and no sender address is verified. Add a sender address and have an Admin verify it — or turn the setting off — to send again.' })));
    } else if (!dropping && current) {
      alertSlot.replaceChildren();
    }
  }

  /** The password dialog's account of what switching on would have refused (a fresh
   * preflight; when it cannot be read the dialog goes on without it). */
  async function refusedNote() {
    try {
      preflight = await api('GET', `/api/senders/preflight?days=${PREFLIGHT_DAYS}`);
    } catch (err) {
      if (err.sessionEnded) throw err;
      return null;
    }
    return h('div', { class: `notice ${preflight.would_refuse ? 'notice-warn' : 'notice-info'} preflight-note` },
      h('p', { class: 'notice-title', text: capitalized(refusedSentence(preflight)) }),
      preflight.would_refuse ? h('p', { text: 'Those addresses are listed under Preflight: add them and have them verified first, or their mail will be refused.' }) : null);
  }

  async function toggle(next) {
    toggleMsg.clear();
    const noVerified = settings.verified === 0;
    let note = null;
    if (next) {
      try {
        note = await refusedNote();
      } catch {
        return;
      }
    }
    const intro = next
      ? [
        h('p', { text: 'From now on only verified sender addresses may send. Mail from any other address will be refused.' }),
        note,
        noVerified ? h('div', { class: 'notice notice-error' },
          h('p', { class: 'notice-title', text: 'No sender address is verified yet.' }),
          h('p', { text: 'All outgoing email will be dropped as soon as this is on, until an address is verified. Turn on Monitor mode first to see which addresses you send from, then add and verify them.' })) : null,
        h('p', { text: 'Enter your login password to confirm.' }),
      ]
      : [
        h('p', { text: 'Any address on an approved, verified and active sending domain will be able to send again, verified or not.' }),
        h('p', { text: 'Enter your login password to confirm.' }),
      ];
    const ok = await passwordDialog({
      title: next ? 'Turn on Authorized sender email ID' : 'Turn off Authorized sender email ID',
      intro,
      confirmLabel: 'Confirm',
      async submit(password) {
        const r = await api('PUT', '/api/settings/sender-auth', { mode: next ? 'on' : 'off', password });
        settings = { enabled: r.enabled, mode: r.mode, verified: r.verified, pending: r.pending };
      },
    });
    if (!ok) return;
    renderState();
    renderPreflight();
    // While everything is being dropped the alert says all there is to say.
    if (!(settings.enabled && settings.verified === 0)) {
      toggleMsg.show(settings.enabled ? 'Authorized sender email ID is on.' : 'Authorized sender email ID is off.', 'success');
    }
  }

  async function setMonitor(next) {
    toggleMsg.clear();
    const ok = await passwordDialog({
      title: next ? 'Turn on Monitor mode' : 'Turn off Monitor mode',
      intro: [
        h('p', {
          text: next
            ? 'Nothing will be refused. Each send that Authorized sender email ID would refuse is delivered and counted, so you can add and verify those addresses before switching on.'
            : 'Sends are no longer checked against the sender addresses; nothing is refused either way.',
        }),
        h('p', { text: 'Enter your login password to confirm.' }),
      ],
      confirmLabel: 'Confirm',
      async submit(password) {
        const r = await api('PUT', '/api/settings/sender-auth', { mode: next ? 'monitor' : 'off', password });
        settings = { enabled: r.enabled, mode: r.mode, verified: r.verified, pending: r.pending };
      },
    });
    if (!ok) return;
    renderState();
    renderPreflight();
    toggleMsg.show(next ? 'Monitor mode is on.' : 'Monitor mode is off.', 'success');
  }

  // --- The preflight ----------------------------------------------------------------
  const preflightCard = h('section', { class: 'card preflight' });
  const preflightMsg = messageSlot();
  const preflightSummary = h('p', { class: 'preflight-summary' });
  const preflightSlot = h('div', { class: 'table-slot' });
  const addThese = h('button', { type: 'button', class: 'btn btn-primary' }, 'Add these addresses');

  /** The addresses the switch would refuse that are not on the list yet. */
  function unlisted() {
    return preflight.addresses.filter((a) => a.would_refuse && a.status === 'unlisted').map((a) => a.email);
  }

  addThese.addEventListener('click', async () => {
    preflightMsg.clear();
    const addresses = unlisted().slice(0, 500);
    if (!addresses.length) return;
    addThese.disabled = true;
    try {
      const r = await api('POST', '/api/senders', { addresses });
      const mail = r.verification_email;
      let text = `${plural(r.added.length, 'address', 'addresses')} added as Verification Pending.`;
      if (mail && mail.sent) text += ' A verification email with a Verify All Emails link went to the Admins.';
      else if (mail) text += ` A verification email went to the Admins less than a minute ago; use Resend verification email in ${mail.retry_after} seconds.`;
      await load();
      renderState();
      renderSenders();
      renderPreflight();
      preflightMsg.show(text, 'success');
    } catch (err) {
      if (!err.sessionEnded) preflightMsg.show(err.message, 'error');
    } finally {
      addThese.disabled = false;
    }
  });

  function renderPreflight() {
    preflightCard.hidden = settings.enabled;
    replace(preflightSummary,
      `${plural(preflight.addresses.length, 'From address', 'From addresses')} used. With Authorized sender email ID on, `,
      h('strong', { text: refusedSentence(preflight) }));
    const refused = preflight.addresses.filter((a) => a.would_refuse);
    const rows = refused.map((a) => {
      const [label, tone] = LIST_STATUS[a.status] || [a.status, 'neutral'];
      return [
        h('span', { class: 'address', text: a.email }),
        h('span', { class: 'num', text: String(a.sends) }),
        badge(label, tone),
        h('span', { text: WOULD_REFUSE[a.would_refuse] || a.would_refuse }),
        time(a.last_seen),
      ];
    });
    const t = table({
      caption: 'Addresses that would be refused',
      columns: [{ label: 'Email' }, { label: 'Sends' }, { label: 'On the list' }, { label: 'Would be refused' }, { label: 'Last sent' }],
      rows,
      empty: preflight.sends ? 'None: every address sent from would still be accepted.' : 'No mail sent in this period yet.',
    });
    replace(preflightSlot, t);
    addThese.hidden = !canAdd || unlisted().length === 0;
  }

  const textareaId = uid('addresses');
  const hintId = uid('hint');
  const errorId = uid('err');
  const textarea = h('textarea', {
    id: textareaId, name: 'addresses', rows: '3', spellcheck: 'false', autocomplete: 'off',
    'aria-describedby': hintId, placeholder: 'news@example.com, billing@example.com',
  });
  const fieldError = h('p', { class: 'field-error', id: errorId, hidden: true });
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');
  const results = h('div', { class: 'results', role: 'status', 'aria-live': 'polite' });
  const addForm = h('form', { class: 'add-senders', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: textareaId, text: 'Sender email addresses' }),
      h('p', { class: 'hint', id: hintId, text: 'One or more addresses, separated by commas, spaces or new lines. New addresses start as Verification Pending and the Admins get a verification email.' }),
      textarea, fieldError),
    h('div', { class: 'form-actions' }, save),
    results);

  function setFieldError(text) {
    fieldError.textContent = text || '';
    fieldError.hidden = !text;
    if (text) {
      textarea.setAttribute('aria-invalid', 'true');
      textarea.setAttribute('aria-describedby', `${hintId} ${errorId}`);
    } else {
      textarea.removeAttribute('aria-invalid');
      textarea.setAttribute('aria-describedby', hintId);
    }
  }

  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setFieldError('');
    results.replaceChildren();
    const addresses = parseAddresses(textarea.value);
    if (!addresses.length) {
      setFieldError('Enter at least one email address.');
      textarea.focus();
      return;
    }
    if (addresses.length > 500) {
      setFieldError(`That is ${addresses.length} addresses; save at most 500 at a time.`);
      textarea.focus();
      return;
    }
    save.disabled = true;
    save.textContent = 'Saving…';
    try {
      const r = await api('POST', '/api/senders', { addresses });
      showResults(r);
      const invalid = r.rejected.filter((x) => x.code !== 'already_exists').map((x) => x.address);
      textarea.value = invalid.join('\n');
      await load();
      renderState();
      renderPreflight();
      renderSenders();
    } catch (err) {
      if (!err.sessionEnded) {
        setFieldError(err.message);
        textarea.focus();
      }
    } finally {
      save.disabled = false;
      save.textContent = 'Save';
    }
  });

  function showResults(r) {
    const items = [];
    for (const a of r.added) {
      items.push(h('li', { class: 'result result-ok' },
        h('span', { class: 'result-address', text: a.address }), ' ',
        h('span', { text: 'added — Verification Pending' })));
    }
    for (const x of r.rejected) {
      const already = x.code === 'already_exists';
      items.push(h('li', { class: `result ${already ? 'result-neutral' : 'result-bad'}` },
        h('span', { class: 'result-address', text: x.address || '(empty)' }), ' ',
        h('span', { text: already ? `already present — ${x.message}` : `invalid — ${x.message}` })));
    }
    const parts = [];
    const invalidCount = r.rejected.filter((x) => x.code !== 'already_exists').length;
    const already = r.rejected.length - invalidCount;
    parts.push(`${r.added.length} added`);
    if (already) parts.push(`${already} already present`);
    if (invalidCount) parts.push(`${invalidCount} invalid`);
    let summary = `${parts.join(', ')}.`;
    const mail = r.verification_email;
    if (mail && mail.sent) summary += ' A verification email with a Verify All Emails link went to the Admins.';
    else if (mail) summary += ` A verification email went to the Admins less than a minute ago; use Resend verification email in ${mail.retry_after} seconds to send one for these.`;
    if (invalidCount) summary += ' Invalid addresses are left in the box to correct.';
    replace(results,
      h('p', { class: 'results-summary', text: summary }),
      h('ul', { class: 'result-list' }, items));
  }

  // --- The senders table ------------------------------------------------------------
  const listMsg = messageSlot();
  const resend = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Resend verification email');
  const tableSlot = h('div', { class: 'table-slot' });

  resend.addEventListener('click', async () => {
    listMsg.clear();
    resend.disabled = true;
    try {
      const r = await api('POST', '/api/senders/verification-email');
      const n = r.addresses.length;
      listMsg.show([
        `Verification email sent to the Admins for ${n} pending ${n === 1 ? 'address' : 'addresses'}. The Verify All Emails link works until `,
        time(r.expires_at), '.',
      ], 'success');
    } catch (err) {
      if (err.sessionEnded) return;
      if (err.code === 'no_pending_senders') {
        listMsg.show('Every sender address is already verified, so there is no verification email to send.', 'info');
      } else {
        listMsg.show(err.message, 'error');
      }
    } finally {
      resend.disabled = false;
    }
  });

  async function verify(sender) {
    listMsg.clear();
    try {
      await api('POST', `/api/senders/${sender.id}/verify`);
      await load();
      renderState();
      renderPreflight();
      renderSenders(sender.id);
      listMsg.show(`${sender.address} is verified and may send.`, 'success');
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(`Could not verify ${sender.address}: ${err.message}`, 'error');
    }
  }

  async function sendLink(sender) {
    listMsg.clear();
    try {
      await api('POST', `/api/senders/${sender.id}/confirmation-email`);
      await load();
      renderSenders(sender.id);
      listMsg.show(`A confirmation link went to ${sender.address}. It works once, for 48 hours.`, 'success');
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(`Could not send the link to ${sender.address}: ${err.message}`, 'error');
    }
  }

  async function remove(sender) {
    listMsg.clear();
    const yes = await confirmDialog({
      title: `Remove ${sender.address}?`,
      message: h('p', { text: 'It can no longer send while Authorized sender email ID is on. Adding it again starts it as Verification Pending.' }),
      confirmLabel: 'Remove',
      danger: true,
    });
    if (!yes) return;
    try {
      await api('DELETE', `/api/senders/${sender.id}`);
      await load();
      renderState();
      renderPreflight();
      renderSenders();
      tableSlot.querySelector('table')?.focus();
      listMsg.show(`${sender.address} was removed.`, 'success');
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(`Could not remove ${sender.address}: ${err.message}`, 'error');
    }
  }

  function renderSenders(focusId) {
    const rows = senders.map((s) => {
      const actions = h('div', { class: 'row-actions' });
      if (canVerify && s.status !== 'verified' && (s.waiting_for || ['admin']).includes('admin')) {
        actions.append(h('button', { type: 'button', class: 'btn btn-small btn-primary', 'aria-label': `Verify ${s.address}`, 'data-id': String(s.id), onclick: () => verify(s) }, 'Verify'));
      }
      if (session.can('sender.add') && (s.waiting_for || []).includes('owner')) {
        actions.append(h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Send the confirmation link to ${s.address} again`, 'data-id': String(s.id), onclick: () => sendLink(s) }, 'Send link'));
      }
      if (canRemove) {
        actions.append(h('button', { type: 'button', class: 'btn btn-small btn-ghost-danger', 'aria-label': `Remove ${s.address}`, 'data-id': String(s.id), onclick: () => remove(s) }, 'Remove'));
      }
      const verifiedBy = s.status !== 'verified'
        ? h('span', { class: 'muted', text: '—' })
        : s.verified_via === 'link' && !s.verified_by
          ? personCell('Verify All link', s.verified_at, '—')
          : personCell(s.verified_by, s.verified_at, '—');
      return [
        h('span', { class: 'address', text: s.address }),
        statusBadge(s),
        domainCell(s),
        personCell(s.added_by, s.added_at, '—'),
        verifiedBy,
        actions.childNodes.length ? actions : h('span', { class: 'muted', text: '—' }),
      ];
    });
    const t = table({
      caption: 'Senders',
      columns: [
        { label: 'Email' }, { label: 'Status' }, { label: 'Domain' },
        { label: 'Added by' }, { label: 'Verified by' }, { label: 'Actions', className: 'col-actions' },
      ],
      rows,
      empty: 'No sender addresses yet. Add the addresses your application sends from.',
    });
    t.querySelector('table').setAttribute('tabindex', '-1');
    replace(tableSlot, t);
    if (focusId !== undefined) {
      const btn = tableSlot.querySelector(`button[data-id="${focusId}"]`);
      (btn || tableSlot.querySelector('table')).focus();
    }
  }

  renderState();
  renderSenders();
  renderPreflight();

  const headingId = uid('h');
  replace(preflightCard,
    h('div', { class: 'card-head card-head-row' },
      h('div', null,
        h('h2', { id: `${headingId}-preflight`, text: 'Preflight' }),
        h('p', { class: 'card-sub', text: `Every From address sent from in the last ${PREFLIGHT_DAYS} days (API and SMTP), and those Authorized sender email ID would refuse if it were on now.` })),
      addThese),
    preflightSummary,
    preflightMsg.el,
    preflightSlot);
  preflightCard.setAttribute('aria-labelledby', `${headingId}-preflight`);
  replace(body,
    h('p', { class: 'page-intro', text: 'How mail sent through the API is checked before it leaves.' }),
    h('section', { class: 'card', 'aria-labelledby': headingId },
      h('div', { class: 'card-head' },
        h('h2', { id: headingId, text: 'Authorized sender email ID' }),
        h('p', { class: 'card-sub', text: 'Holding an API key is not enough to send as any address: with this on, only sender addresses that were added here and verified by an Admin may appear as From. The From domain must also be an approved, verified and active sending domain.' })),
      h('div', { class: 'switch-row' }, sw, h('div', { class: 'switch-text' }, stateText, reason)),
      monitorRow,
      alertSlot,
      toggleMsg.el,
      counts),
    preflightCard,
    h('section', { class: 'card', 'aria-labelledby': `${headingId}-add` },
      h('h2', { id: `${headingId}-add`, text: 'Add sender addresses' }),
      addForm),
    h('section', { class: 'card', 'aria-labelledby': `${headingId}-list` },
      h('div', { class: 'card-head card-head-row' },
        h('h2', { id: `${headingId}-list`, text: 'Senders' }),
        resend),
      listMsg.el,
      tableSlot));
}
