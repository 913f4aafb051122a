// Postern's panel: session bootstrap, the page shell (header, navigation) and hash routes.
import { api, setCsrfToken, onUnauthorized } from './http.js';
import { h, replace } from './dom.js';
import { changePasswordDialog } from './dialogs.js';
import { roleLabel } from './perms.js';
import { renderLogin } from './view-login.js';
import { renderMailSettings } from './view-mail-settings.js';
import { renderDomains } from './view-domains.js';
import { renderUsers } from './view-users.js';
import { renderKeys } from './view-keys.js';
import { renderActivity } from './view-activity.js';
import { renderMessages } from './view-messages.js';
import { renderWebhooks } from './view-webhooks.js';
import { renderSuppressions } from './view-suppressions.js';
import { renderReports } from './view-reports.js';
import { renderOverview } from './view-overview.js';

const ROUTES = [
  { path: '/mail-settings', title: 'Mail Settings', trail: ['Settings', 'General'], render: renderMailSettings },
  { path: '/domains', title: 'Approved Sending Domains', trail: ['Settings'], render: renderDomains },
  { path: '/users', title: 'Users', trail: ['Settings'], render: renderUsers, perm: 'user.manage' },
  { path: '/api-keys', title: 'API Keys', trail: ['Settings'], render: renderKeys, perm: 'key.manage' },
  { path: '/webhooks', title: 'Webhooks', trail: ['Settings'], render: renderWebhooks, perm: 'webhook.manage' },
  { path: '/overview', title: 'Overview', trail: ['Monitoring'], render: renderOverview },
  { path: '/activity', title: 'Activity', trail: ['Monitoring'], render: renderActivity },
  { path: '/messages', title: 'Messages', trail: ['Monitoring'], render: renderMessages },
  { path: '/suppressions', title: 'Suppressions', trail: ['Monitoring'], render: renderSuppressions },
  { path: '/reports', title: 'Returned reports', trail: ['Monitoring'], render: renderReports },
];
// The page after login: how the account's mail is doing.
const DEFAULT_ROUTE = '/overview';

const root = document.getElementById('app');
let session = null; // {user, account, role, roleLabel, can(perm)}
let shell = null; // {main, nav, flash}
let firstRoute = true;

/** The route's path: the hash up to its query ("#/messages?id=…" is /messages). */
function currentPath() {
  const hash = window.location.hash.replace(/^#/, '').split('?')[0];
  return ROUTES.some((r) => r.path === hash) ? hash : DEFAULT_ROUTE;
}

/** The hash's query, for a view opened on one item ("#/messages?id=…"). */
function currentParams() {
  const hash = window.location.hash;
  const q = hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
}

function startSession(data) {
  setCsrfToken(data.csrf_token);
  const role = data.user.role;
  const permissions = new Set(data.permissions || []);
  session = {
    user: data.user,
    account: data.account,
    role,
    roleLabel: roleLabel(role),
    can: (perm) => permissions.has(perm),
  };
}

function endSession() {
  session = null;
  shell = null;
  setCsrfToken(null);
}

function showLogin(notice) {
  endSession();
  document.title = 'Log in · Postern';
  renderLogin(root, {
    notice,
    onLoggedIn(data) {
      startSession(data);
      showApp();
    },
  });
}

onUnauthorized(() => {
  if (!session) return;
  showLogin({ text: 'Your session has ended. Log in again to continue.', tone: 'warn' });
});

async function logOut(button) {
  button.disabled = true;
  try {
    await api('DELETE', '/api/session', undefined, { allow401: true });
  } catch {
    // Whatever the server says, this browser's session is over.
  }
  showLogin({ text: 'You have logged out.', tone: 'info' });
}

async function changePassword() {
  const changed = await changePasswordDialog({
    email: session.user.email,
    submit: (current, next) => api('PUT', '/api/users/me/password', { current_password: current, new_password: next }),
  });
  if (changed && shell) shell.flash.show('Password changed. Other sessions were signed out.');
}

function navLink(route) {
  return h('a', { href: `#${route.path}`, class: 'nav-link', 'data-path': route.path, text: route.title });
}

function buildShell() {
  const byPath = Object.fromEntries(ROUTES.map((r) => [r.path, r]));
  const visible = (path) => !byPath[path].perm || session.can(byPath[path].perm);
  const item = (path) => (visible(path) ? h('li', null, navLink(byPath[path])) : null);

  const nav = h('nav', { id: 'sidenav', class: 'sidenav', 'aria-label': 'Main' },
    h('ul', { class: 'nav-tree' },
      h('li', null,
        h('span', { class: 'nav-group', text: 'Settings' }),
        h('ul', null,
          h('li', null,
            h('span', { class: 'nav-subgroup', text: 'General' }),
            h('ul', null, item('/mail-settings'))),
          item('/domains'),
          item('/users'),
          item('/api-keys'),
          item('/webhooks'))),
      h('li', null,
        h('span', { class: 'nav-group', text: 'Monitoring' }),
        h('ul', null, item('/overview'), item('/activity'), item('/messages'), item('/suppressions'), item('/reports')))));

  const menuButton = h('button', {
    type: 'button', class: 'btn btn-secondary menu-toggle', 'aria-expanded': 'false', 'aria-controls': 'sidenav',
  }, 'Menu');
  menuButton.addEventListener('click', () => {
    const open = menuButton.getAttribute('aria-expanded') !== 'true';
    menuButton.setAttribute('aria-expanded', open ? 'true' : 'false');
    nav.classList.toggle('open', open);
  });
  nav.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) {
      menuButton.setAttribute('aria-expanded', 'false');
      nav.classList.remove('open');
    }
  });

  const logout = h('button', { type: 'button', class: 'btn btn-secondary logout' }, 'Log out');
  logout.addEventListener('click', () => logOut(logout));
  const password = h('button', { type: 'button', class: 'btn btn-secondary change-password' }, 'Change password');
  password.addEventListener('click', () => changePassword());

  const main = h('main', { id: 'main', class: 'content', tabindex: '-1' });
  const skip = h('a', { class: 'skip-link', href: '#main' }, 'Skip to content');
  skip.addEventListener('click', (ev) => {
    ev.preventDefault();
    main.focus();
  });

  const header = h('header', { class: 'topbar' },
    h('div', { class: 'brand' },
      h('img', { src: 'favicon.svg', alt: '', width: '28', height: '28' }),
      h('span', { class: 'brand-name', text: 'Postern' }),
      h('span', { class: 'brand-account', text: session.account.name })),
    menuButton,
    h('div', { class: 'who' },
      h('span', { class: 'who-email', text: session.user.email }),
      h('span', { class: 'badge badge-role', text: session.roleLabel })),
    h('div', { class: 'account-actions' }, password, logout));

  const flash = flashNotice(password);
  replace(root, skip, header, h('div', { class: 'layout' }, nav, main), flash.el);
  return { main, nav, flash };
}

/**
 * A confirmation about the user's own account (a changed password), pinned to the corner
 * of the window so it is seen wherever the page is scrolled; it stays until dismissed or
 * until another page is opened. The live region is always in the page, so its text is
 * announced; Dismiss sits outside it and gives focus back to `returnFocus`.
 */
function flashNotice(returnFocus) {
  const text = h('div', { class: 'flash-text', role: 'status', 'aria-live': 'polite' });
  const dismiss = h('button', { type: 'button', class: 'btn btn-small btn-secondary', hidden: true }, 'Dismiss');
  const el = h('div', { class: 'flash' }, text, dismiss);
  function clear() {
    text.textContent = '';
    dismiss.hidden = true;
    el.classList.remove('open');
  }
  dismiss.addEventListener('click', () => {
    clear();
    returnFocus.focus();
  });
  return {
    el,
    clear,
    show(message) {
      el.classList.add('open');
      dismiss.hidden = false;
      text.textContent = message;
    },
  };
}

async function route() {
  if (!session || !shell) return;
  const path = currentPath();
  const r = ROUTES.find((x) => x.path === path);
  document.title = `${r.title} · Postern`;
  for (const a of shell.nav.querySelectorAll('a[data-path]')) {
    if (a.dataset.path === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }

  const heading = h('h1', { tabindex: '-1', text: r.title });
  const crumbs = h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' },
    h('ol', null, r.trail.map((t) => h('li', { text: t })), h('li', { 'aria-current': 'page', text: r.title })));
  const body = h('div', { class: 'page-body' }, h('p', { class: 'loading', text: 'Loading…' }));
  shell.flash.clear();
  replace(shell.main, crumbs, heading, body);
  if (!firstRoute) heading.focus();
  firstRoute = false;

  if (r.perm && !session.can(r.perm)) {
    replace(body, h('p', { class: 'notice notice-info', text: `Your role (${session.roleLabel}) cannot open ${r.title}. Ask an Admin of your account.` }));
    return;
  }
  try {
    await r.render(body, session, currentParams());
  } catch (err) {
    if (err && err.sessionEnded) return;
    const retry = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Try again');
    retry.addEventListener('click', () => route());
    replace(body, h('div', { class: 'notice notice-error', role: 'alert' },
      h('p', { text: (err && err.message) || 'This page could not be loaded.' }), retry));
  }
}

function showApp() {
  shell = buildShell();
  firstRoute = true;
  if (!window.location.hash || currentPath() !== window.location.hash.slice(1).split('?')[0]) {
    window.history.replaceState(null, '', `#${currentPath()}`);
  }
  route();
}

window.addEventListener('hashchange', () => route());

async function boot() {
  try {
    const data = await api('GET', '/api/session', undefined, { allow401: true });
    startSession(data);
    showApp();
  } catch (err) {
    showLogin(err.status === 401 ? null : { text: err.message, tone: 'error' });
  }
}

boot();
