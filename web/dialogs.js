// Modal dialogs on the native <dialog> element: showModal() makes the rest of the page
// inert, Escape closes, and focus goes back to whatever opened the dialog.
import { h, uid, field, messageSlot } from './dom.js';

function openModal(dialog, focusTarget) {
  const opener = document.activeElement;
  document.body.append(dialog);
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
  });
  dialog.showModal();
  if (focusTarget) focusTarget.focus();
}

/**
 * Asks for the user's login password, then runs submit(password). The dialog stays open
 * and shows the API's message when submit throws (wrong password, too many attempts);
 * resolves true once submit succeeded, false when cancelled.
 */
export function passwordDialog({ title, intro = [], confirmLabel = 'Confirm', submit }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const descId = uid('dlg-desc');
    const pw = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const msg = messageSlot('dialog-msg');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: 'btn btn-primary' }, confirmLabel);
    const form = h('form', { class: 'modal-body', novalidate: true },
      h('h2', { id: titleId, class: 'modal-title', text: title }),
      h('div', { id: descId, class: 'modal-intro' }, intro),
      pw.wrap,
      msg.el,
      h('div', { class: 'modal-actions' }, cancel, confirm));
    const dialog = h('dialog', { class: 'modal', 'aria-labelledby': titleId, 'aria-describedby': descId }, form);
    let done = false;

    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      if (!done) resolve(false);
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      msg.clear();
      pw.setError('');
      if (!pw.input.value) {
        pw.setError('Enter your login password.');
        pw.input.focus();
        return;
      }
      confirm.disabled = true;
      cancel.disabled = true;
      confirm.textContent = 'Checking…';
      try {
        await submit(pw.input.value);
        done = true;
        resolve(true);
        dialog.close();
      } catch (err) {
        if (err.sessionEnded) {
          dialog.close();
          return;
        }
        if (err.code === 'password_incorrect') pw.setError(err.message);
        else msg.show(err.message, 'error');
        pw.input.value = '';
        confirm.disabled = false;
        cancel.disabled = false;
        confirm.textContent = confirmLabel;
        pw.input.focus();
      }
    });
    openModal(dialog, pw.input);
  });
}

/** A yes/no question. Resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const descId = uid('dlg-desc');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirmLabel);
    const form = h('form', { class: 'modal-body', novalidate: true },
      h('h2', { id: titleId, class: 'modal-title', text: title }),
      h('div', { id: descId, class: 'modal-intro' }, message),
      h('div', { class: 'modal-actions' }, cancel, confirm));
    const dialog = h('dialog', { class: 'modal', 'aria-labelledby': titleId, 'aria-describedby': descId }, form);
    let answer = false;
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      answer = true;
      dialog.close();
    });
    dialog.addEventListener('close', () => resolve(answer));
    openModal(dialog, cancel);
  });
}
