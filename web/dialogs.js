// Modal dialogs on the native <dialog> element: showModal() makes the rest of the page
// inert, Escape closes, and focus goes back to whatever opened the dialog.
import { h, uid, field, messageSlot } from './dom.js';

/**
 * The frame every dialog here shares: a titled form with an intro (the dialog's
 * description), the given content, and the action buttons at the bottom. className adds to
 * the dialog's class (modal-wide for tables).
 */
export function modalForm({ title, intro = [], content = [], actions, className = '' }) {
  const titleId = uid('dlg-title');
  const descId = uid('dlg-desc');
  const form = h('form', { class: 'modal-body', novalidate: true },
    h('h2', { id: titleId, class: 'modal-title', text: title }),
    h('div', { id: descId, class: 'modal-intro' }, intro),
    content,
    h('div', { class: 'modal-actions' }, actions));
  const dialog = h('dialog', { class: `modal ${className}`.trim(), 'aria-labelledby': titleId, 'aria-describedby': descId }, form);
  return { dialog, form };
}

/** Shows a <dialog> modally, focusing focusTarget; on close it is removed and focus goes back
 * to the element that opened it. */
export function openModal(dialog, focusTarget) {
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
    const pw = field({ label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const msg = messageSlot('dialog-msg');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: 'btn btn-primary' }, confirmLabel);
    const { dialog, form } = modalForm({ title, intro, content: [pw.wrap, msg.el], actions: [cancel, confirm] });
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
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}` }, confirmLabel);
    const { dialog, form } = modalForm({ title, intro: message, actions: [cancel, confirm] });
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

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

/**
 * Change password: the current password and the new one twice. Checks locally that the new
 * ones match and are 8 to 1024 characters, then runs submit(current, next). The API's
 * refusals (wrong current password, lockout, a new password it will not take) are shown
 * in the dialog, which stays open. Resolves true once submit succeeded, false when
 * cancelled.
 */
export function changePasswordDialog({ email, submit }) {
  return new Promise((resolve) => {
    // For password managers: which login the new password belongs to.
    const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', value: email, readonly: true, hidden: true, tabindex: '-1' });
    const current = field({ label: 'Current password', type: 'password', name: 'current-password', autocomplete: 'current-password', required: true });
    const next = field({ label: 'New password', type: 'password', name: 'new-password', autocomplete: 'new-password', required: true, hint: `At least ${PASSWORD_MIN} characters.` });
    const again = field({ label: 'Confirm new password', type: 'password', name: 'confirm-password', autocomplete: 'new-password', required: true });
    const msg = messageSlot('dialog-msg');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Change password');
    const { dialog, form } = modalForm({
      title: 'Change password',
      intro: h('p', { text: 'Your other sessions will be signed out. This one stays logged in.' }),
      content: [username, current.wrap, next.wrap, again.wrap, msg.el],
      actions: [cancel, confirm],
    });
    let done = false;
    let busy = false;

    function fail(f, text) {
      f.setError(text);
      f.input.focus();
    }

    cancel.addEventListener('click', () => dialog.close());
    // Escape does nothing while the request is on its way: its answer must be seen.
    dialog.addEventListener('cancel', (ev) => {
      if (busy) ev.preventDefault();
    });
    dialog.addEventListener('close', () => {
      if (!done) resolve(false);
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (busy) return;
      msg.clear();
      for (const f of [current, next, again]) f.setError('');
      const pw = next.input.value;
      if (!current.input.value) return fail(current, 'Enter your current password.');
      if (pw.length < PASSWORD_MIN) return fail(next, `Use at least ${PASSWORD_MIN} characters.`);
      if (pw.length > PASSWORD_MAX) return fail(next, `Use at most ${PASSWORD_MAX} characters.`);
      if (again.input.value !== pw) return fail(again, 'The new passwords do not match. Type the new password again.');

      busy = true;
      confirm.disabled = true;
      cancel.disabled = true;
      confirm.textContent = 'Changing…';
      try {
        await submit(current.input.value, pw);
        done = true;
        busy = false;
        resolve(true);
        dialog.close();
        return;
      } catch (err) {
        busy = false;
        if (err.sessionEnded) {
          dialog.close();
          return;
        }
        confirm.disabled = false;
        cancel.disabled = false;
        confirm.textContent = 'Change password';
        if (err.code === 'password_incorrect') {
          current.input.value = '';
          fail(current, 'The current password is incorrect.');
        } else if (err.field === 'new_password') {
          fail(next, err.message);
        } else if (err.field === 'current_password') {
          fail(current, err.message);
        } else {
          // too_many_attempts and anything unexpected: the API's words.
          msg.show(err.message, 'error');
          if (err.code === 'too_many_attempts') current.input.value = '';
          current.input.focus();
        }
      }
    });
    openModal(dialog, current.input);
  });
}
